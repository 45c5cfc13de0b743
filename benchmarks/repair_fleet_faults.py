"""A fleet repair under throttling and faults (issue 12): every VM reported exactly once.

    python benchmarks/repair_fleet_faults.py [--vms 1200] [--seconds 0.2] [--concurrency 10]
                                             [--faults JSON] [--before 4864863]

The emulator serves `fleet:N:1` (N VMs in one group; some stopped, some without a Ready agent, NSGs
that deny RDP) with its default ARM throttling (250 reads +25/s, 200 writes +10/s), every
running guest with Remote Desktop turned off, and a few injected faults (by default 1 % of Run
Command outputs garbled after the script ran, 1 % of Run Commands refused with 409 and 0.5 % of
requests answered 503). `azrdp repair -g rg-fleet-00 --yes --source-ip ...` runs in its own process, once
with this tree and once with the --before commit (main before issue 12's second part, extracted
with `git archive`), each with a journal of its own.

Baseline named in the issue: at 1,200 VMs under the default throttling a repair aborted after
45 s having started 31 VMs and sent 284 guest repairs, none reported (one VM's error sank the run).
Printed: VMs in the scenario, VMs reported (and distinct), changes listed, errors, Run Commands
sent, exit code and wall time, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any

from gitref import checkout

from azrdp.emulator import Emulator

TS = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server"
SOURCE_IP = "203.0.113.7"
DEFAULT_FAULTS = json.dumps(
    [
        {"kind": "guest-output", "probability": 0.01, "stdout": "AZRDP2:%%garbled%%"},
        {"kind": "runcommand-in-progress", "probability": 0.01},
        {"kind": "503", "probability": 0.005},
    ]
)


def _error_code(vm: dict[str, Any]) -> str:
    """The VM's error code, or its in-guest diagnosis's (prefixed guest:)."""
    if vm.get("error"):
        return str(vm["error"].get("code"))
    guest = (vm.get("guest") or {}).get("error") or {}
    return f"guest:{guest.get('code')}"


def run(args: argparse.Namespace, source: str, scratch: str) -> dict[str, Any]:
    with Emulator(
        f"fleet:{args.vms}:1", runcommand_seconds=args.seconds, faults=args.faults, seed=args.seed
    ) as emu:
        vms = emu.store.list("Microsoft.Compute/virtualMachines")
        with emu.store.lock:
            for vm in vms:
                vm["guest"] = {"registry": {TS: {"fDenyTSConnections": 1}}}
        config = tempfile.mkdtemp(dir=scratch)
        env = {
            **os.environ,
            **emu.exports(),
            "PYTHONPATH": source,
            "AZRDP_CONFIG_DIR": config,
            "AZRDP_POLLING_INTERVAL": "0.5",
        }
        command = [
            sys.executable,
            "-m",
            "azrdp",
            "repair",
            "-g",
            "rg-fleet-00",
            "--yes",
            "--source-ip",
            SOURCE_IP,
            "--concurrency",
            str(args.concurrency),
            "-o",
            "json",
        ]
        start = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=source, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        requests = emu.requests
    try:
        doc = json.loads(done.stdout) if done.stdout.strip() else None
    except json.JSONDecodeError:
        doc = None
    reported = doc["vms"] if doc else []
    statuses = Counter(v["status"] for v in reported)
    distinct = doc["summary"].get("changes", "-") if doc else "-"
    lines = sum(len(v.get("changed", [])) for v in reported)
    return {
        "scenario": len(vms),
        "reported": len(reported),
        "distinct": len({v["id"].lower() for v in reported}),
        "changes": distinct,
        "lines": lines,
        "errors": statuses.get("error", 0),
        "codes": Counter(_error_code(v) for v in reported if v["status"] == "error"),
        "statuses": statuses,
        "run_commands": sum(
            1 for r in requests if r.method == "POST" and r.path.lower().endswith("/runcommand")
        ),
        "throttled": sum(1 for r in requests if r.status == 429),
        "exit": done.returncode,
        "wall": wall,
        "stderr": done.stderr.strip().splitlines()[:1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--vms", type=int, default=1200)
    parser.add_argument("--seconds", type=float, default=0.2, help="simulated Run Command duration")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--faults", default=DEFAULT_FAULTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--before", default="4864863", help="main before issue 12's second part")
    args = parser.parse_args()

    now = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    with tempfile.TemporaryDirectory() as scratch:
        before_tree = checkout(args.before, tempfile.mkdtemp(dir=scratch))
        results = {"now": run(args, now, scratch)}
        if before_tree:
            results[f"before ({args.before})"] = run(args, before_tree, scratch)
    print(
        f"fleet:{args.vms}:1, default ARM throttling, Run Command {args.seconds:g} s, concurrency "
        f"{args.concurrency}, faults {args.faults}"
    )
    rows = [
        ("VMs in the scenario", "scenario"),
        ("VMs reported", "reported"),
        ("  distinct", "distinct"),
        ("changes listed (journal)", "changes"),
        ("`changed` lines (per VM)", "lines"),
        ("VMs with an error", "errors"),
        ("Run Commands sent", "run_commands"),
        ("requests throttled (429)", "throttled"),
        ("exit code", "exit"),
    ]
    names = list(results)
    print(f"{'':28}" + "".join(f"{n:>24}" for n in names))
    for label, key in rows:
        print(f"{label:28}" + "".join(f"{results[n][key]!s:>24}" for n in names))
    print(f"{'wall time':28}" + "".join(f"{results[n]['wall']:>23.1f}s" for n in names))
    for name in names:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(results[name]["statuses"].items()))
        print(f"{name}: {statuses or 'no document'}; stderr: {' '.join(results[name]['stderr'])[:160]}")
        codes = ", ".join(f"{k} {v}" for k, v in sorted(results[name]["codes"].items()))
        print(f"  error codes: {codes or 'none'}")
    ok = results["now"]["reported"] == results["now"]["distinct"] == results["now"]["scenario"]
    print("every VM reported exactly once: " + ("yes" if ok else "NO"))


if __name__ == "__main__":
    main()
