"""Fleet check with the rest of the way in: `fleet:N` against `fleet-paths:N`, side by side.

    python benchmarks/fleet_paths.py [--vms 240] [--page-size 50] [--latency-ms 50] [--runs 3]

`fleet-paths:N` is `fleet:N` plus one load balancer whose NAT rules lead to some VMs of rg-fleet-00,
a 0.0.0.0/0 route to an appliance on rg-fleet-01's workloads subnet and a Virtual Network Manager
admin Deny on rg-fleet-02's VNet. Both run `azrdp check --all` through the Python API with the
default options (no --verify, --effective, --boot-diagnostics or --health), so the figures show
what reading load balancers, route tables and admin rules adds to a default fleet check: the
ARM requests by kind (they stay O(pages): one listing each, one admin-rule POST per VNet, one GET
per load balancer frontend IP), and the wall time (median of --runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter

from azrdp.emulator import Emulator


def run(spec: str, page_size: int, latency_ms: float, runs: int) -> tuple[Counter[str], float, int]:
    from azrdp.azure.auth import resolve_context
    from azrdp.azure.clients import Clients
    from azrdp.engine.check import CheckOptions, run_check
    from azrdp.targets import parse_targets

    walls: list[float] = []
    kinds: Counter[str] = Counter()
    total = 0
    with Emulator(spec, page_size=page_size, latency_ms=latency_ms, throttle=False) as emu:
        saved = dict(os.environ)
        os.environ.update(emu.exports())
        try:
            for _ in range(runs):
                emu.clear_requests()
                clients = Clients(resolve_context())
                start = time.perf_counter()
                result = run_check(parse_targets(all_vms=True), CheckOptions(), clients=clients)
                walls.append(time.perf_counter() - start)
                clients.close()
                total = len(result.vms)
                kinds = Counter(
                    f"{r.method} {r.path.rstrip('/').rsplit('/', 1)[-1]}"
                    if r.method == "POST"
                    or (
                        r.path.rstrip("/").rsplit("/", 2)[-2].lower() != "providers"
                        and not r.path.lower().endswith(
                            (
                                "virtualmachines",
                                "networkinterfaces",
                                "networksecuritygroups",
                                "virtualnetworks",
                                "publicipaddresses",
                                "loadbalancers",
                                "routetables",
                            )
                        )
                    )
                    else f"{r.method} list {r.path.rstrip('/').rsplit('/', 1)[-1]}"
                    for r in emu.requests
                )
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return kinds, statistics.median(walls), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=240)
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base, base_wall, n = run(f"fleet:{args.vms}", args.page_size, args.latency_ms, args.runs)
    paths, paths_wall, m = run(f"fleet-paths:{args.vms}", args.page_size, args.latency_ms, args.runs)
    print(
        f"azrdp check --all, {args.vms} VMs, page size {args.page_size}, {args.latency_ms:.0f} ms per request"
    )
    print(f"{'requests':<58} {'fleet':>8} {'fleet-paths':>12}")
    for key in sorted(set(base) | set(paths)):
        print(f"  {key:<56} {base[key]:>8} {paths[key]:>12}")
    print(f"  {'total':<56} {sum(base.values()):>8} {sum(paths.values()):>12}")
    print(f"{'VMs checked':<58} {n:>8} {m:>12}")
    print(
        f"{'wall, median of ' + str(args.runs):<58} {base_wall:>7.2f}s {paths_wall:>11.2f}s"
        f"   ratio {paths_wall / base_wall:.2f}"
    )


if __name__ == "__main__":
    main()
