"""Start-up of `azrdp --help` and `azrdp explain 0x904`, paired with a bare `python -c pass`.

Each round runs the bare interpreter and every command once, in turn (the installed console
script, one warm-up round first), so a busy machine slows both sides of a pair alike; the figure is
the median over rounds of (command - bare), in wall time and, beside it, in CPU time (user +
system), which a busy machine inflates least. Targets (issue 15): `--help` at most +0.15 s, `explain`
at most +0.10 s; `az vm --help` is printed beside them as a peer when the Azure CLI is installed.
Neither command may import anything from azure.*.

    python benchmarks/startup.py [--runs 20]
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

TARGETS = {"azrdp --help": 0.15, "azrdp explain 0x904": 0.10}


def console_script() -> str:
    beside = Path(sys.executable).with_name("azrdp")
    if beside.exists():
        return str(beside)
    found = shutil.which("azrdp")
    if not found:
        raise SystemExit("azrdp is not installed in this environment: pip install -e .")
    return found


def seconds(argv: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU (user + system of the child) is what a busy machine
    inflates least."""
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb"}
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, _, usage = os.wait4(child.pid, 0)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def azure_modules_loaded(argv: list[str]) -> list[str]:
    """azure.* modules in sys.modules after `azrdp ARGV` ran through its real entry point."""
    probe = (
        "import sys\n"
        f"sys.argv = ['azrdp', *{argv!r}]\n"
        "from azrdp.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.'))\n"
        "sys.stderr.write(' '.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    return done.stderr.split()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    script = console_script()
    cases: dict[str, list[str]] = {
        "azrdp --help": [script, "--help"],
        "azrdp explain 0x904": [script, "explain", "0x904", "-o", "json"],
    }
    az = shutil.which("az")
    if az:
        cases["az vm --help (peer)"] = [az, "vm", "--help"]
    bare = [sys.executable, "-c", "pass"]
    for argv in [bare, *cases.values()]:
        seconds(argv)  # warm-up: bytecode and page cache
    deltas: dict[str, list[float]] = {label: [] for label in cases}
    cpu: dict[str, list[float]] = {label: [] for label in cases}
    bares: list[float] = []
    for _ in range(args.runs):
        base, base_cpu = seconds(bare)
        bares.append(base)
        for label, argv in cases.items():
            wall, used = seconds(argv)
            deltas[label].append(wall - base)
            cpu[label].append(used - base_cpu)
    print(f"{args.runs} paired rounds, Python {sys.version.split()[0]} on {sys.platform}")
    print(f"bare `python -c pass`: median {statistics.median(bares):.3f} s")
    print(f"{'command':<24} {'over bare':>10} {'(CPU)':>8} {'target':>8}  azure.* imported")
    ok = True
    for label, values in deltas.items():
        extra = statistics.median(values)
        target = TARGETS.get(label)
        loaded = azure_modules_loaded(cases[label][1:]) if label in TARGETS else []
        met = target is None or (extra <= target and not loaded)
        ok &= met
        target_text = f"+{target:.2f}" if target is not None else "peer"
        verdict = "" if target is None else ("met" if met else "MISSED")
        print(
            f"{label:<24} {extra:>+10.3f} {statistics.median(cpu[label]):>+8.3f} {target_text:>8}  "
            f"{', '.join(loaded) or 'none'}  {verdict}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
