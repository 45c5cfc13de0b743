"""One-VM check (issue 15): `azrdp check VM -g GROUP` beside its floor and beside a bare SDK import.

    python benchmarks/one_vm.py [--runs 15] [--latency-ms 20]

Each figure is a whole process (interpreter start, imports, token, requests, answer), run in paired
rounds (one of each in turn, so a busy machine slows all alike), medians:

* `azrdp check VM -g GROUP -o json`: the console script, against the emulator's `healthy`
  scenario with --latency-ms per request;
* floor: the least a process can do for the same answer: import azure.identity and
  azure.mgmt.core, get a token from the same credential, send the same seven requests in the same
  three rounds (in parallel within a round) through an ARMPipelineClient, parse the JSON;
* peer: `python -c "import azure.mgmt.compute, azure.mgmt.network, azure.identity"` (nothing sent).

Targets: azrdp <= 1.5x the floor, and faster than the bare import.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def floor_worker() -> None:
    """The floor: the same seven requests, raw, in three rounds."""
    from azure.core.pipeline.policies import RetryPolicy
    from azure.core.rest import HttpRequest
    from azure.identity import DefaultAzureCredential
    from azure.mgmt.core import ARMPipelineClient
    from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

    endpoint = os.environ["AZRDP_ARM_ENDPOINT"]
    sub = os.environ["AZURE_SUBSCRIPTION_ID"]
    credential = DefaultAzureCredential()
    client: Any = ARMPipelineClient(
        base_url=endpoint,
        policies=[
            RetryPolicy(),
            ARMChallengeAuthenticationPolicy(credential, "https://management.azure.com/.default"),
        ],
        connection_verify=os.environ["AZRDP_CA_BUNDLE"],
    )

    def get(path: str, version: str, method: str = "GET", **params: str) -> Any:
        sep = "&" if "?" in path else "?"
        url = f"{endpoint}{path}{sep}api-version={version}" + "".join(f"&{k}={v}" for k, v in params.items())
        request = HttpRequest(method, url, json={} if method == "POST" else None)
        return client.send_request(request).json()

    vm_path = (
        f"/subscriptions/{sub}/resourceGroups/rg-rdp/providers/Microsoft.Compute/virtualMachines/vm-rdp01"
    )
    with ThreadPoolExecutor(4) as pool:
        vm_f = pool.submit(get, vm_path, "2026-04-01", **{"%24expand": "instanceView"})
        health_f = pool.submit(
            get, vm_path + "/providers/Microsoft.ResourceHealth/availabilityStatuses/current", "2025-05-01"
        )
        vm, _ = vm_f.result(), health_f.result()
        nic_id = vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"]
        nic = get(nic_id, "2026-03-01")
        ipc = nic["properties"]["ipConfigurations"][0]["properties"]
        vnet_id = ipc["subnet"]["id"].rsplit("/subnets/", 1)[0]
        group = vnet_id.split("/")[4]
        futures = [
            pool.submit(get, vnet_id, "2026-03-01"),
            pool.submit(get, ipc["publicIPAddress"]["id"], "2026-03-01"),
            pool.submit(
                get,
                f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Network/networkSecurityGroups",
                "2026-03-01",
            ),
            pool.submit(
                get, vnet_id + "/listNetworkManagerEffectiveSecurityAdminRules", "2026-03-01", "POST"
            ),
        ]
        for future in futures:
            future.result()
    print("ok")


def console_script() -> str:
    beside = Path(sys.executable).with_name("azrdp")
    found = str(beside) if beside.exists() else shutil.which("azrdp")
    if not found:
        raise SystemExit("azrdp is not installed in this environment: pip install -e .")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        floor_worker()
        return 0

    from azrdp.emulator import Emulator

    with Emulator("healthy", latency_ms=args.latency_ms, throttle=False) as emu:
        env = {
            **os.environ,
            **emu.exports(),
            "AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9",
            "NO_COLOR": "1",
            "TERM": "dumb",
        }
        cases = {
            "azrdp check VM -g GROUP": [console_script(), "check", "vm-rdp01", "-g", "rg-rdp", "-o", "json"],
            "floor (7 raw requests)": [sys.executable, os.path.abspath(__file__), "--worker", "floor"],
            "import compute+network+identity": [
                sys.executable,
                "-c",
                "import azure.mgmt.compute, azure.mgmt.network, azure.identity",
            ],
        }
        requests: dict[str, int] = {}
        for label, argv in cases.items():  # warm-up, and each one's ARM requests
            before = len(emu.requests)
            done = subprocess.run(argv, env=env, capture_output=True, check=False)
            if done.returncode not in (0,):
                raise SystemExit(f"{label} failed ({done.returncode}): {done.stderr.decode()[-1500:]}")
            requests[label] = len(emu.requests) - before
        samples: dict[str, list[float]] = {label: [] for label in cases}
        for _ in range(args.runs):
            for label, argv in cases.items():
                start = time.perf_counter()
                subprocess.run(
                    argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
                )
                samples[label].append(time.perf_counter() - start)
    medians = {label: statistics.median(values) for label, values in samples.items()}
    floor = medians["floor (7 raw requests)"]
    peer = medians["import compute+network+identity"]
    print(f"{args.runs} paired rounds, {args.latency_ms:g} ms per request, whole processes, medians")
    print(f"{'':34}{'requests':>9}{'seconds':>9}{'x floor':>9}")
    for label, median in medians.items():
        print(f"{label:34}{requests[label]:>9}{median:>9.2f}{median / floor:>8.2f}x")
    azrdp = medians["azrdp check VM -g GROUP"]
    ok = azrdp <= 1.5 * floor and azrdp < peer
    print(
        f"targets: <= 1.5x the floor ({azrdp / floor:.2f}x), faster than the bare import "
        f"({azrdp:.2f} s vs {peer:.2f} s)"
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
