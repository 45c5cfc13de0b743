"""Emulator benchmark: SDK throughput, 10,000-VM fleet load time, server memory.

    /work/venv/bin/python benchmarks/emulator.py [--requests 1600] [--threads 8] [--fleet 10000]

Figures are printed next to the baselines issue 2 names:
  * VM get through the real SDK with 8 client threads: at least 300 requests/s;
  * a 10,000-VM generated scenario loads in under 2 s;
  * the server process stays under 300 MB RSS (serving that fleet, after a full statusOnly listAll).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Any


def _credential() -> Any:
    from azure.core.credentials import AccessToken, AccessTokenInfo

    class Static:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken("benchmark", int(time.time()) + 3600)

        def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
            return AccessTokenInfo("benchmark", int(time.time()) + 3600)

    return Static()


def _compute(endpoint: str, ca: str, subscription: str) -> Any:
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(
        _credential(),
        subscription,
        base_url=endpoint,
        credential_scopes=["https://management.azure.com/.default"],
        connection_verify=ca,
        polling_interval=0.01,
    )


def throughput(total: int, threads: int) -> tuple[float, float]:
    """(requests/s with `threads` client threads, median server-side ms per request)."""
    from azrdp.emulator import Emulator

    with Emulator("healthy", throttle=False) as emu:
        compute = _compute(emu.endpoint, emu.ca_path, emu.subscription_id)
        compute.virtual_machines.get("rg-rdp", "vm-rdp01", expand="instanceView")  # warm the pool
        emu.clear_requests()
        per_thread = total // threads

        def work() -> None:
            for _ in range(per_thread):
                compute.virtual_machines.get("rg-rdp", "vm-rdp01", expand="instanceView")

        workers = [threading.Thread(target=work) for _ in range(threads)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
        server_ms = statistics.median(r.duration_ms for r in emu.requests)
        return per_thread * threads / elapsed, server_ms


def fleet_load(count: int, runs: int = 3) -> float:
    from azrdp.emulator import Emulator

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        Emulator(f"fleet:{count}")
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _rss_mb(pid: int) -> tuple[float, float]:
    fields = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def served_fleet(count: int) -> tuple[float, float, float, int]:
    """Serve the fleet with `azrdp emulator serve`: (seconds to page it all, RSS MB, peak RSS MB, VMs)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "azrdp", "emulator", "serve", "--scenario", f"fleet:{count}", "--no-throttle"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        exports: dict[str, str] = {}
        while len(exports) < 6:
            line = server.stdout.readline()
            if not line:
                raise RuntimeError("azrdp emulator serve ended early")
            name, _, value = line.strip().removeprefix("export ").partition("=")
            exports[name] = shlex.split(value)[0]
        compute = _compute(
            exports["AZRDP_ARM_ENDPOINT"], exports["AZRDP_CA_BUNDLE"], exports["AZURE_SUBSCRIPTION_ID"]
        )
        started = time.perf_counter()
        seen = sum(1 for _ in compute.virtual_machines.list_all(status_only="true"))
        elapsed = time.perf_counter() - started
        rss, peak = _rss_mb(server.pid)
        return elapsed, rss, peak, seen
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1600)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--fleet", type=int, default=10000)
    args = parser.parse_args()

    rps, server_ms = throughput(args.requests, args.threads)
    load_s = fleet_load(args.fleet)
    page_s, rss, peak, seen = served_fleet(args.fleet)

    rows = [
        (
            f"VM get (expand=instanceView), SDK, {args.threads} threads",
            f"{rps:,.0f} req/s",
            ">= 300 req/s",
            rps >= 300,
        ),
        ("  server time per request (median)", f"{server_ms:.2f} ms", "-", None),
        (f"fleet:{args.fleet} load (median of 3)", f"{load_s:.2f} s", "< 2 s", load_s < 2),
        (f"listAll statusOnly, {seen:,} VMs, SDK paging", f"{page_s:.2f} s", "-", None),
        ("server RSS after that listAll", f"{rss:.0f} MB", "< 300 MB", rss < 300),
        ("server peak RSS (VmHWM)", f"{peak:.0f} MB", "< 300 MB", peak < 300),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'this run':>14}  {'baseline':>14}  verdict")
    for name, value, baseline, ok in rows:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        print(f"{name:<{width}}  {value:>14}  {baseline:>14}  {verdict}")
    print(f"(python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
