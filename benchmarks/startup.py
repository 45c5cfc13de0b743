"""Startup cost of `azrdp --help` and `azrdp explain 0x904`, side by side with a bare `python -c pass`.

Runs the installed console script through subprocess, 10 times each (after one warm-up run), and
prints the median wall time of each next to the bare interpreter. Target (issue 7): at most 0.25 s
more than bare Python, because neither command imports the Azure SDK.

    python benchmarks/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BUDGET_SECONDS = 0.25


def console_script() -> str:
    beside = Path(sys.executable).with_name("azrdp")
    if beside.exists():
        return str(beside)
    found = shutil.which("azrdp")
    if not found:
        raise SystemExit("azrdp is not installed in this environment: pip install -e .")
    return found


def median_seconds(argv: list[str], runs: int) -> float:
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb"}
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def azure_modules_loaded(args: list[str]) -> list[str]:
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from azrdp.cli.app import app\n"
        f"CliRunner().invoke(app, {args!r})\n"
        "print(' '.join(sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.split()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    script = console_script()
    cases = [
        ("python -c pass (baseline)", [sys.executable, "-c", "pass"], None),
        ("azrdp --help", [script, "--help"], ["--help"]),
        (
            "azrdp explain 0x904",
            [script, "explain", "0x904", "-o", "json"],
            ["explain", "0x904", "-o", "json"],
        ),
    ]
    baseline = 0.0
    over_budget = False
    print(f"median of {args.runs} runs, {sys.version.split()[0]} on {sys.platform}")
    print(f"{'command':<28} {'median s':>9} {'vs bare':>9}  azure.* imported")
    for label, argv, cli_args in cases:
        median = median_seconds(argv, args.runs)
        if cli_args is None:
            baseline = median
            print(f"{label:<28} {median:>9.3f} {'':>9}  -")
            continue
        extra = median - baseline
        over_budget |= extra > BUDGET_SECONDS
        loaded = azure_modules_loaded(cli_args)
        print(f"{label:<28} {median:>9.3f} {extra:>+9.3f}  {', '.join(loaded) or 'none'}")
    print(
        f"budget: at most +{BUDGET_SECONDS:.2f} s over bare Python -> {'EXCEEDED' if over_budget else 'met'}"
    )
    return 1 if over_budget else 0


if __name__ == "__main__":
    sys.exit(main())
