"""`azrdp emulator serve` and `azrdp emulator scenarios`: the local ARM emulator from the shell.

The emulator (and with it cryptography) is imported inside the commands, so `azrdp --help` stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from azrdp.cli.params import NoColorOpt, OutputOpt, QueryOpt, seconds
from azrdp.cli.terminal import Terminal, handle_errors
from azrdp.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

emulator_app = typer.Typer(
    name="emulator",
    help="A local Azure Resource Manager emulator the real Azure SDK talks to (offline tests and demos).",
    no_args_is_help=True,
)


@emulator_app.command("serve")
@handle_errors
def serve(
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            "-s",
            envvar="AZRDP_EMULATOR_SCENARIO",
            help="Built-in scenario name, fleet:N[:groups], or a scenario JSON file.",
        ),
    ] = "healthy",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="HTTPS port on 127.0.0.1 (0: any free).")
    ] = 0,
    latency_ms: Annotated[
        float,
        typer.Option(
            "--latency-ms", min=0, callback=seconds(zero=True, unit="ms"), help="Added to every ARM response."
        ),
    ] = 0,
    jitter_ms: Annotated[
        float,
        typer.Option(
            "--jitter-ms",
            min=0,
            callback=seconds(zero=True, unit="ms"),
            help="Random extra latency, 0..N ms.",
        ),
    ] = 0,
    request_log: Annotated[
        Path | None,
        typer.Option(
            "--request-log", dir_okay=False, help="Append every request as a JSON line to this file."
        ),
    ] = None,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, help="Items per list page (nextLink).")
    ] = 100,
    faults: Annotated[
        str | None,
        typer.Option("--faults", help="Injected faults, e.g. '503:0.05,reset:0.01' or '429@3,500@7'."),
    ] = None,
    runcommand_seconds: Annotated[
        float,
        typer.Option(
            "--runcommand-seconds", min=0, callback=seconds(zero=True), help="How long a Run Command takes."
        ),
    ] = 0.2,
    no_throttle: Annotated[
        bool, typer.Option("--no-throttle", help="Disable the ARM token-bucket throttling.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed for fleet generation, jitter and faults.")] = 0,
    no_color: NoColorOpt = False,
) -> None:
    """Serve ARM on https://127.0.0.1 and print the `export` lines a shell needs; Ctrl-C stops it.

    It runs until interrupted: start it in one terminal (or in the background with stdout redirected
    to a file) and source its export lines in another shell.
    """
    import shlex
    import signal
    import sys
    import threading

    from azrdp.emulator import Emulator, parse_faults

    term = Terminal(no_color=no_color)
    fault_list = parse_faults(faults) if faults else None
    try:
        emu = Emulator(
            scenario,
            latency_ms=latency_ms,
            jitter_ms=jitter_ms,
            page_size=page_size,
            faults=fault_list,
            request_log=request_log,
            runcommand_seconds=runcommand_seconds,
            throttle=not no_throttle,
            seed=seed,
            port=port,
        )
    except ValueError as exc:
        raise UsageError("Cannot configure the emulator.", str(exc), "Check the option values.") from None
    try:
        emu.start()
    except OSError as exc:
        raise UsageError(
            f"Cannot listen on 127.0.0.1:{port}.",
            exc.strerror or str(exc),
            "Pick another --port, or leave it out to use any free port.",
        ) from None
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        for name, value in emu.exports().items():
            sys.stdout.write(f"export {name}={shlex.quote(value)}\n")
        sys.stdout.flush()
        term.err.print(
            f"azrdp emulator: scenario '{emu.scenario.name}' ({len(emu.store)} resources, subscription "
            f"{emu.subscription_id}) on {emu.endpoint}; Ctrl-C stops it.",
            markup=False,
            highlight=False,
        )
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        emu.stop()
        term.err.print("azrdp emulator: stopped.", markup=False)


def _rows(doc: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    return [{"Name": s["name"], "Description": s["description"]} for s in doc["scenarios"]]


def _human(doc: Mapping[str, Any], console: Console) -> None:
    from rich.table import Table

    table = Table(title="Built-in emulator scenarios", title_justify="left")
    table.add_column("Name", no_wrap=True, style="bold")
    table.add_column("Description", overflow="fold")
    for item in doc["scenarios"]:
        table.add_row(item["name"], item["description"])
    console.print(table)
    console.print("Use: azrdp emulator serve --scenario NAME (or a scenario JSON file).", style="dim")


@emulator_app.command("scenarios")
@handle_errors
def scenarios(output: OutputOpt = None, query: QueryOpt = None, no_color: NoColorOpt = False) -> None:
    """List the built-in scenarios."""
    from azrdp.cli.render import emit
    from azrdp.emulator.scenario import builtin_scenarios

    doc = {"scenarios": [{"name": name, "description": text} for name, text in builtin_scenarios()]}
    emit(doc, Terminal(no_color=no_color), output, query, human=_human, table_rows=_rows)


def register(app: typer.Typer) -> None:
    app.add_typer(emulator_app)
