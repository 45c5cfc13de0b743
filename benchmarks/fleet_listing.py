"""Fleet listing by the contract (issue 13): ARM requests and wall time, side by side with before.

    python benchmarks/fleet_listing.py [--sizes 1,1000,5000] [--latency-ms 20] [--page-size 100]
                                       [--runs 3] [--before 29d2dfb]

Before, `check --all` read VMs with one `list_all(statusOnly=true)` listing and used it as the model
too (Azure returns status only there: no tags, size or boot diagnostics), and `check -g` used
`list(GROUP, $expand=instanceView)` without a `$filter`, which the contract does not allow (the
emulator now refuses it with 400, as documented). Now the model comes from `list_all()` /
`list(GROUP)` and the status from `list_all(statusOnly=true)` (read only until a group's VMs are
all found) or, for groups of up to 3 VMs, from one instance-view GET each, joined by id.

Each figure is `azrdp check ... -o none` in its own process (so start-up counts for both sides)
against one emulator with --latency-ms per request: this tree, and the --before commit extracted
with `git archive` into a temporary directory. Requests are exact; times are medians of --runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

from gitref import checkout

from azrdp.emulator import Emulator


def _kinds(emu: Emulator, since: int) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for record in emu.requests[since:]:
        tail = record.path.rstrip("/").rsplit("/", 1)[-1].lower()
        if tail == "virtualmachines":
            tail = "VM status pages" if "statusOnly=true" in record.query else "VM model pages"
        kinds[tail] += 1
    return kinds


def run_cli(emu: Emulator, source: str, args: list[str], runs: int) -> tuple[int, float, int, Counter[str]]:
    """(requests of one run, median seconds, exit code, requests by kind) of `azrdp check ARGS`."""
    env = {**os.environ, **emu.exports(), "PYTHONPATH": source}
    times = []
    kinds: Counter[str] = Counter()
    code = 0
    for _ in range(runs):
        before = len(emu.requests)
        start = time.perf_counter()
        command = [sys.executable, "-m", "azrdp", "check", *args, "-o", "none"]
        # cwd = source: `python -m` puts the working directory first on sys.path.
        code = subprocess.run(command, env=env, cwd=source, capture_output=True, check=False).returncode
        times.append(time.perf_counter() - start)
        kinds = _kinds(emu, before)
    return sum(kinds.values()), statistics.median(times), code, kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1,1000,5000")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", default="29d2dfb", help="the commit to compare with (main before #13)")
    args = parser.parse_args()

    now = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    with tempfile.TemporaryDirectory() as scratch:
        before = checkout(args.before, scratch)
        print(
            f"latency {args.latency_ms:g} ms per request, page size {args.page_size}, median of {args.runs} "
            f"runs; before = {args.before if before else 'unavailable (no git)'}"
        )
        header = f"{'VMs':>6}  {'command':<30} {'requests':>9} {'seconds':>8}   {'before: requests':>16} "
        header += f"{'seconds':>8}"
        print(header)
        print("-" * len(header))
        for size in (int(s) for s in args.sizes.split(",")):
            scenario = "healthy" if size == 1 else f"fleet:{size}"
            with Emulator(
                scenario, latency_ms=args.latency_ms, page_size=args.page_size, throttle=False
            ) as emu:
                vms = emu.store.list("Microsoft.Compute/virtualMachines")
                group, name = vms[0]["id"].split("/")[4], vms[0]["name"]
                in_group = sum(1 for vm in vms if vm["id"].split("/")[4] == group)
                rows = [
                    ("check VM -g GROUP", [name, "-g", group]),
                    ("check --all", ["--all"]),
                    (f"check -g GROUP ({in_group} VMs)", ["-g", group]),
                ]
                for label, argv in rows:
                    new = run_cli(emu, now, argv, args.runs)
                    old = run_cli(emu, before, argv, args.runs) if before else None
                    if old is None:
                        old_text = f"{'-':>16} {'-':>8}"
                    elif old[2] not in (0, 4):
                        old_text = (
                            f"{old[0]:>16} {'failed':>8}  (exit {old[2]}: 400, $expand without $filter)"
                        )
                    else:
                        old_text = f"{old[0]:>16} {old[1]:>8.2f}"
                    first = size if label.startswith("check VM") else ""
                    print(f"{first:>6}  {label:<30} {new[0]:>9} {new[1]:>8.2f}   {old_text}")
                    if label == "check --all":
                        k = new[3]
                        network = sum(k.values()) - k["VM model pages"] - k["VM status pages"]
                        print(
                            f"{'':>6}  {'':<30} ({k['VM model pages']} model + {k['VM status pages']} status "
                            f"pages + {network} network pages)"
                        )


if __name__ == "__main__":
    main()
