"""A fleet at ARM's limits (issue 15): `azrdp diagnose` and `azrdp repair --yes` over 200 VMs with
3-s Run Commands and the emulator's ARM throttling on (reads 250 + 25/s, writes 200 + 10/s).

    python benchmarks/arm_limits.py [--vms 200] [--seconds 3] [--polling-interval 2]
                                    [--commands diagnose,repair]

Each command runs in its own process (`azrdp ... -o json`), against the emulator in this one, with
the production polling (AZRDP_POLLING_INTERVAL, default 2 s: the emulator's exported 0.05 is
replaced, it is not what Azure sees). Figures, beside their targets: 429 answers (target 0), ARM
requests per VM (target <= 8), every VM once in the document, the exit code, and the wall time
beside its floor: ceil(VMs / concurrency) x Run Commands per VM x run seconds.

Every VM is running with a Ready agent; for `repair --yes` each has Remote Desktop turned off in
the guest (two Run Commands per VM: the collector, then the executor).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any

from azrdp.emulator import Emulator

TS = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server"
CONCURRENCY = 10  # azrdp's default Run Commands in flight


def fleet(vms: int, seconds: float, broken: bool) -> Emulator:
    emu = Emulator(f"fleet:{vms}:4", runcommand_seconds=seconds, throttle=True).start()
    for vm in emu.store.list("Microsoft.Compute/virtualMachines"):
        rg = vm["id"].split("/")[4]
        emu.set_vm_power(rg, vm["name"], "running")
        emu.set_vm_agent(rg, vm["name"], "ready")
        if broken:
            with emu.store.lock:
                vm["guest"] = {"registry": {TS: {"fDenyTSConnections": 1}}}
    return emu


def run(emu: Emulator, argv: list[str], polling: str, home: str) -> tuple[dict[str, Any], int, float]:
    env = {
        **os.environ,
        **emu.exports(),
        "AZRDP_POLLING_INTERVAL": polling,
        "HOME": home,
        "AZURE_CONFIG_DIR": os.path.join(home, ".azure"),
        "AZRDP_CONFIG_DIR": os.path.join(home, "azrdp"),
    }
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "azrdp", *argv, "-o", "json"], env=env, capture_output=True, check=False
    )
    wall = time.perf_counter() - start
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"no document (exit {done.returncode}): {done.stderr.decode()[-800:]}") from None
    return doc, done.returncode, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--vms", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=3.0, help="simulated Run Command duration")
    parser.add_argument("--polling-interval", default="2", help="AZRDP_POLLING_INTERVAL for azrdp")
    parser.add_argument("--commands", default="diagnose,repair")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="azrdp-bench-")
    ok = True
    print(
        f"{args.vms} VMs in 4 groups, Run Command {args.seconds:g} s, ARM throttling on, "
        f"AZRDP_POLLING_INTERVAL={args.polling_interval}, concurrency {CONCURRENCY}"
    )
    header = (
        f"{'command':<16}{'429s':>6}{'requests':>10}{'per VM':>8}{'RC POSTs':>10}{'VMs once':>10}"
        f"{'exit':>6}{'wall s':>9}{'floor s':>9}{'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for command in args.commands.split(","):
        repair = command == "repair"
        emu = fleet(args.vms, args.seconds, broken=repair)
        try:
            # repair takes no --all: every VM by id (4 groups, each read through its listings).
            ids = [vm["id"] for vm in emu.store.list("Microsoft.Compute/virtualMachines")]
            argv = ["repair", "--ids", " ".join(ids), "--yes"] if repair else ["diagnose", "--all"]
            doc, code, wall = run(emu, argv, args.polling_interval, home)
            records = emu.requests
        finally:
            emu.stop()
        statuses = Counter(r.status for r in records)
        posts = sum(1 for r in records if r.method == "POST" and r.path.lower().endswith("/runcommand"))
        ids = [vm["id"].lower() for vm in doc["vms"]]
        once = len(ids) == len(set(ids)) == args.vms
        runs_per_vm = 2 if repair else 1
        floor = math.ceil(args.vms / CONCURRENCY) * runs_per_vm * args.seconds
        per_vm = len(records) / args.vms
        expected_codes = (0, 4) if not repair else (0, 4, 5)
        good = statuses[429] == 0 and per_vm <= 8 and once and code in expected_codes
        ok &= good
        print(
            f"{'azrdp ' + command:<16}{statuses[429]:>6}{len(records):>10}{per_vm:>8.2f}{posts:>10}"
            f"{'yes' if once else 'NO':>10}{code:>6}{wall:>9.1f}{floor:>9.1f}{wall / floor:>6.2f}x"
        )
    print("targets: 0 x 429, <= 8 requests per VM, every VM once, a document and exit 0/4/5")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
