"""Fleet check: `azrdp check --all` versus a naive per-VM loop with the same SDK, side by side.

    python benchmarks/fleet_check.py [--vms 1000] [--groups 20] [--latency-ms 50]
                                     [--naive-sample 100] [--rss-vms 10000]

1. 1,000 Windows VMs in 20 resource groups behind the emulator with 50 ms latency per request:
   azrdp's fleet check (list calls, in-process Python API) against the naive loop a script would
   write (VM + instance view, NIC, NIC NSG, subnet, subnet NSG, public IP, one VM after the other).
   The naive loop runs on a sample of VMs (default 100) and is scaled linearly to the fleet, which
   flatters it: at full size it would also hit ARM's read throttling. --naive-sample 0 runs it all.
2. 10,000 VMs: peak RSS of `azrdp check --all -o json` in its own process (the emulator runs in
   this one and is not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

from azrdp.emulator import Emulator


def naive_loop(emu: Emulator, vms: list[dict[str, Any]]) -> tuple[int, float]:
    """What a straightforward script does: every resource of every VM, one GET after the other."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from fixtures_emulator import sdk_clients

    compute, network = sdk_clients(emu)
    before = len(emu.requests)
    start = time.perf_counter()
    for vm in vms:
        rg = vm["id"].split("/")[4]
        model = compute.virtual_machines.get(rg, vm["name"], expand="instanceView")
        for ref in model.as_dict()["properties"]["networkProfile"]["networkInterfaces"]:
            nic_rg, nic_name = ref["id"].split("/")[4], ref["id"].rsplit("/", 1)[-1]
            nic = network.network_interfaces.get(nic_rg, nic_name).as_dict()["properties"]
            if nic.get("networkSecurityGroup"):
                nsg_id = nic["networkSecurityGroup"]["id"]
                network.network_security_groups.get(nsg_id.split("/")[4], nsg_id.rsplit("/", 1)[-1])
            ipc = nic["ipConfigurations"][0]["properties"]
            parts = ipc["subnet"]["id"].split("/")
            subnet = network.subnets.get(parts[4], parts[8], parts[10]).as_dict()["properties"]
            if subnet.get("networkSecurityGroup"):
                nsg_id = subnet["networkSecurityGroup"]["id"]
                network.network_security_groups.get(nsg_id.split("/")[4], nsg_id.rsplit("/", 1)[-1])
            if ipc.get("publicIPAddress"):
                pip_id = ipc["publicIPAddress"]["id"]
                network.public_ip_addresses.get(pip_id.split("/")[4], pip_id.rsplit("/", 1)[-1])
    return len(emu.requests) - before, time.perf_counter() - start


def azrdp_fleet(emu: Emulator) -> tuple[int, float, int]:
    from azrdp.azure.auth import resolve_context
    from azrdp.azure.clients import Clients
    from azrdp.engine.check import run_check
    from azrdp.targets import parse_targets

    os.environ.update(emu.exports())
    clients = Clients(resolve_context())
    before = len(emu.requests)
    start = time.perf_counter()
    result = run_check(parse_targets(all_vms=True), clients=clients)
    elapsed = time.perf_counter() - start
    return len(emu.requests) - before, elapsed, len(result.vms)


def cli_rss(emu: Emulator) -> tuple[float, int, float]:
    """Peak RSS (MB) of `azrdp check --all -o json` as a child process, its VM count and wall time."""
    env = dict(os.environ)
    env.update(emu.exports())
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "azrdp", "check", "--all", "-o", "json"],
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
            check=False,
        )
        elapsed = time.perf_counter() - start
        out.seek(0)
        total = len(json.loads(out.read())["vms"])
    if proc.returncode not in (0, 4):
        raise SystemExit(f"azrdp check failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak_kb / 1024, total, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--naive-sample", type=int, default=100, help="0: run the naive loop on every VM")
    parser.add_argument("--rss-vms", type=int, default=10000, help="0: skip the memory run")
    args = parser.parse_args()
    os.environ.setdefault("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")

    print(f"== {args.vms} VMs in {args.groups} resource groups, {args.latency_ms} ms per request ==")
    with Emulator(f"fleet:{args.vms}:{args.groups}", latency_ms=args.latency_ms) as emu:
        vms = list(emu.store.list("Microsoft.Compute/virtualMachines"))
        requests, wall, checked = azrdp_fleet(emu)
        assert checked == len(vms), (checked, len(vms))
        sample = vms if args.naive_sample <= 0 else vms[: args.naive_sample]
        n_requests, n_wall = naive_loop(emu, sample)
    scale = len(vms) / len(sample)
    n_requests_all, n_wall_all = n_requests * scale, n_wall * scale
    basis = "measured" if scale == 1 else f"measured on {len(sample)} VMs, x{scale:g}"
    print(f"{'':28}{'requests':>12}{'wall (s)':>12}")
    print(f"{'azrdp check --all':28}{requests:>12}{wall:>12.2f}")
    print(f"{'naive per-VM loop':28}{n_requests_all:>12.0f}{n_wall_all:>12.2f}   ({basis})")
    print(
        f"{'ratio (naive / azrdp)':28}{n_requests_all / requests:>11.1f}x{n_wall_all / wall:>11.1f}x"
        "   (target: >= 50x requests, >= 20x wall time)"
    )

    if args.rss_vms > 0:
        print(f"\n== {args.rss_vms} VMs: peak RSS of `azrdp check --all -o json` (own process) ==")
        with Emulator(f"fleet:{args.rss_vms}", latency_ms=0) as emu:
            rss, total, elapsed = cli_rss(emu)
        print(f"VMs in the result {total}, wall {elapsed:.1f} s, peak RSS {rss:.0f} MB   (target: < 300 MB)")


if __name__ == "__main__":
    main()
