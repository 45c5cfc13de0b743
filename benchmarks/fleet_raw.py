"""Fleet check on raw pages (issue 15): `check --all` at 1,000 and 5,000 VMs beside its raw-JSON floor.

    python benchmarks/fleet_raw.py [--sizes 1000,5000] [--latency-ms 20] [--runs 3] [--before 4864863]

Three ways to the same document, each in its own process against one emulator (20 ms per request,
pages of 100), timed from the first request to the serialised document (imports and the token are
outside the figure; the same for all three):

* `azrdp`: this tree's engine (`run_check`), reading raw JSON through its full pipeline
  (the generated clients' policies plus the request budget);
* `floor`: the same engine with the leanest pipeline that can talk to ARM (azure-core's
  RetryPolicy and ARM's bearer-token policy, nothing else): raw pages at their cheapest;
* `before`: the engine of the --before commit (main before issue 15), which read every listing
  through the generated SDK models and `as_dict()`.

Printed: requests, the median seconds of --runs, the ratio to the floor (target <= 1.5x), whether
the document is identical to the floor's, and the before figures beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from gitref import checkout

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def worker(mode: str) -> None:
    """Runs in the child: one timed `check --all`, printed as JSON on stdout."""
    from azrdp.azure.auth import resolve_context
    from azrdp.azure.clients import Clients
    from azrdp.engine.check import run_check
    from azrdp.targets import parse_targets

    clients = Clients(resolve_context())
    if mode == "floor":
        from azure.core.pipeline.policies import RetryPolicy
        from azure.mgmt.core import ARMPipelineClient
        from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

        from azrdp.azure.arm import ArmReader
        from azrdp.azure.auth import client_kwargs

        kw = client_kwargs(clients.ctx)
        reader = ArmReader(clients.ctx)
        reader._client = ARMPipelineClient(
            base_url=clients.ctx.arm_endpoint,
            policies=[
                RetryPolicy(),
                ARMChallengeAuthenticationPolicy(clients.ctx.credential, *kw["credential_scopes"]),
            ],
            connection_verify=kw.get("connection_verify", True),
        )
        clients._arm = reader
    clients.ctx.credential.get_token("https://management.azure.com/.default")  # outside the figure
    start = time.perf_counter()
    result = run_check(parse_targets(all_vms=True), clients=clients)
    text = json.dumps(result.to_doc(), sort_keys=True)
    elapsed = time.perf_counter() - start
    json.dump(
        {"seconds": elapsed, "vms": len(result.vms), "sha": hashlib.sha256(text.encode()).hexdigest()},
        sys.stdout,
    )


def measure(emu: Any, mode: str, source: str, runs: int) -> tuple[int, float, str, int]:
    """(requests of one run, median seconds, document hash, VMs)."""
    env = {**os.environ, **emu.exports(), "PYTHONPATH": source}
    times = []
    requests = 0
    sha = ""
    vms = 0
    for _ in range(runs):
        before = len(emu.requests)
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--worker", mode],
            env=env,
            cwd=source,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{mode} failed: {done.stderr.decode()[-1500:]}")
        out = json.loads(done.stdout)
        times.append(out["seconds"])
        requests = len(emu.requests) - before  # ARM only: tokens come from the identity endpoint
        sha, vms = out["sha"], out["vms"]
    return requests, statistics.median(times), sha, vms


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", default="4864863", help="the commit to compare with (main before #15)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return 0

    from azrdp.emulator import Emulator

    ok = True
    with tempfile.TemporaryDirectory() as scratch:
        before = checkout(args.before, scratch)
        print(
            f"check --all, {args.latency_ms:g} ms per request, pages of {args.page_size}, median of "
            f"{args.runs}; seconds from the first request to the serialised document"
        )
        header = (
            f"{'VMs':>6}  {'floor: req':>10} {'s':>6}   {'azrdp: req':>10} {'s':>6} {'x floor':>8} "
            f"{'same doc':>9}   {'before: req':>11} {'s':>6} {'x floor':>8}"
        )
        print(header)
        print("-" * len(header))
        for size in (int(s) for s in args.sizes.split(",")):
            with Emulator(
                f"fleet:{size}", latency_ms=args.latency_ms, page_size=args.page_size, throttle=False
            ) as emu:
                floor = measure(emu, "floor", ROOT, args.runs)
                now = measure(emu, "azrdp", ROOT, args.runs)
                old = measure(emu, "azrdp", before, args.runs) if before else None
            ratio = now[1] / floor[1]
            ok &= ratio <= 1.5 and now[3] == size and (old is None or now[0] <= old[0])
            old_text = f"{old[0]:>11} {old[1]:>6.2f} {old[1] / floor[1]:>7.2f}x" if old else "-"
            print(
                f"{size:>6}  {floor[0]:>10} {floor[1]:>6.2f}   {now[0]:>10} {now[1]:>6.2f} {ratio:>7.2f}x "
                f"{'yes' if now[2] == floor[2] else 'NO':>9}   {old_text}"
            )
    print("targets: azrdp <= 1.5x the floor; requests unchanged or fewer than before")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
