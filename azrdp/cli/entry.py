"""The `azrdp` console script and `python -m azrdp`: start-up, before anything heavy is imported.

Start-up creates many long-lived objects (Typer, Click, Rich, the commands) and no garbage, so the
cyclic garbage collector's passes over them are pure cost: about 20 ms of `azrdp --help`
(benchmarks/startup.py). It is off until the root callback, which runs before any command does,
turns it back on; help and usage errors end the process before that.
"""

from __future__ import annotations

import gc


def main() -> None:
    gc.disable()
    from azrdp.cli.app import main as run

    run()
