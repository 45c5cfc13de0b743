"""Fleet diagnose: `azrdp diagnose` over 100 VMs with a 2 s simulated Run Command each.

    python benchmarks/diagnose_fleet.py [--vms 100] [--seconds 2] [--concurrency 10]

Baseline (issue 5): the ideal wall time ceil(VMs / concurrency) x run seconds; azrdp must stay
within 1.5x of it at the default concurrency. Every VM is made running with a Ready agent, so
each gets exactly one Run Command (counted from the emulator's request log). The control-plane
check of the fleet runs first and is included in the wall time.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

from azrdp.emulator import Emulator
from azrdp.engine.diagnose import DEFAULT_GUEST_CONCURRENCY


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=2.0, help="simulated Run Command duration")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_GUEST_CONCURRENCY)
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="azrdp-bench-")
    os.environ["HOME"] = home
    os.environ["AZURE_CONFIG_DIR"] = os.path.join(home, ".azure")
    # azrdp's production poll interval (2 s, AZRDP_POLLING_INTERVAL) is kept: it is part of the cost.

    with Emulator(f"fleet:{args.vms}:4", runcommand_seconds=args.seconds, throttle=False) as emu:
        vms = emu.store.list("Microsoft.Compute/virtualMachines")
        for vm in vms:
            rg = vm["id"].split("/")[4]
            emu.set_vm_power(rg, vm["name"], "running")
            emu.set_vm_agent(rg, vm["name"], "ready")
        os.environ.update(emu.exports())

        from azrdp.engine.check import CheckOptions
        from azrdp.engine.diagnose import DiagnoseOptions, run_diagnose
        from azrdp.targets import parse_targets

        start = time.perf_counter()
        result = run_diagnose(
            parse_targets(all_vms=True),
            DiagnoseOptions(check=CheckOptions(), concurrency=args.concurrency),
        )
        wall = time.perf_counter() - start
        runs = [r for r in emu.requests if r.method == "POST" and r.path.lower().endswith("/runcommand")]

    ran = sum(1 for vm in result.vms if getattr(vm, "guest", None) and vm.guest.status == "ran")  # type: ignore[attr-defined]
    ideal = math.ceil(args.vms / args.concurrency) * args.seconds
    ratio = wall / ideal
    print(f"VMs: {args.vms}, simulated Run Command: {args.seconds:.1f} s, concurrency: {args.concurrency}")
    print(f"Run Commands sent: {len(runs)} (guest diagnoses that ran: {ran})")
    print(f"{'':28}{'wall time':>12}")
    print(f"{'ideal ceil(N/c) x run':28}{ideal:>11.1f}s")
    print(f"{'azrdp diagnose (engine)':28}{wall:>11.1f}s   {ratio:.2f}x ideal (target <= 1.5x)")
    ok = ratio <= 1.5 and len(runs) == args.vms == ran
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
