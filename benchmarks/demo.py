"""`azrdp demo` beside its floors (issue 15): ARM requests, Run Commands and seconds.

    python benchmarks/demo.py [--runs 3] [--runcommand-seconds 3]

The demo diagnoses its eleven VMs, repairs the broken ones with the diagnosis's fresh facts, and
diagnoses again. Its floors, derived from what each step must do at least under the in-guest
contract (docs/guest-contract.md) and ARM's wire:

Run Commands (23): the first diagnosis runs the collector on every running VM with a Ready agent
(8 of 11: web03 is deallocated, jump01's and jump02's agents are not Ready); the repair, handed
those facts, runs the executor on each VM with an in-guest repair (app01-app05: 5) and the
collector on the VM it starts (web03: 1), whose guest was unknown; the second diagnosis runs the
collector on every running Ready VM (9).

Requests (90): every Run Command at least 2 (the POST, one GET of its Location once done): 46.
The control plane: a group's check is 9 (VM models, one status page, NICs, NSGs, VNets, public
IPs, load balancers, route tables, the admin-rule POST of its one VNet), twice (the diagnoses): 18;
the repair's check of its 8 named VMs through their group's listings, 9, plus the boot diagnostics
POST a named VM stuck at boot gets (1); its writes: the NSG rule (a GET so nothing is overwritten,
the PUT, one poll: 3), the VM start (the POST, one poll: 2, then one instance view for the agent:
1); the re-read of the 2 VMs it changed (models, two instance views, six network listings, the
admin rules: 10). 46 + 18 + 10 + 6 + 10 = 90.

Time: the three steps' Run Commands run one wave after another (each step needs the one before),
so 3 x the run's duration, plus the emulator's own start, measured here; the rest is loopback.

Targets: at most 2x the request floor and 1.5x the time floor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

RUN_COMMAND_FLOOR = 8 + 5 + 1 + 9
REQUEST_FLOOR = 2 * RUN_COMMAND_FLOOR + 9 + 9 + (9 + 1) + (3 + 2 + 1) + 10


def emulator_start_seconds() -> float:
    from azrdp.emulator import Emulator
    from azrdp.emulator.demo import demo_scenario

    samples = []
    for _ in range(3):
        start = time.perf_counter()
        with Emulator(demo_scenario()):
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runcommand-seconds", type=float, default=3.0)
    args = parser.parse_args()
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb"}
    summaries = []
    for _ in range(args.runs):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "azrdp",
                "demo",
                "--runcommand-seconds",
                str(args.runcommand_seconds),
                "-o",
                "json",
            ],
            env=env,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"the demo failed ({done.returncode}): {done.stderr.decode()[-1500:]}")
        summaries.append(json.loads(done.stdout)["summary"])
    requests = statistics.median(s["requests"] for s in summaries)
    run_commands = statistics.median(s["runCommands"] for s in summaries)
    seconds = statistics.median(s["elapsedSeconds"] for s in summaries)
    time_floor = 3 * args.runcommand_seconds + emulator_start_seconds()
    print(f"azrdp demo, Run Commands of {args.runcommand_seconds:g} s, median of {args.runs}")
    rows = [
        ("Run Commands", run_commands, RUN_COMMAND_FLOOR, ""),
        ("ARM requests", requests, REQUEST_FLOOR, "<= 2x"),
        ("seconds", seconds, time_floor, "<= 1.5x"),
    ]
    print(f"{'':16}{'demo':>8}{'floor':>8}{'ratio':>8}{'target':>9}")
    for label, value, floor, target in rows:
        print(f"{label:16}{value:>8.1f}{floor:>8.1f}{value / floor:>7.2f}x{target:>9}")
    ok = requests <= 2 * REQUEST_FLOOR and seconds <= 1.5 * time_floor
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
