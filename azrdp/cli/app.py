"""The root `azrdp` command.

Each command lives in its own module under azrdp.cli with a `register(app)` function; the modules
are listed once in COMMAND_MODULES. Command modules must stay cheap to import: azure.* and the
emulator are imported inside the command functions, so `azrdp --help` never loads the SDK.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from azrdp import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "check",
    "diagnose",
    "repair",
    "probe",
    "explain",
    "checks_cmd",
    "emulator",
    "demo",
)

app = typer.Typer(
    name="azrdp",
    help=(
        "Find out why a Windows VM on Azure refuses Remote Desktop, explain it, and fix it safely.\n\n"
        "Exit codes: 0 healthy, 1 error, 2 usage, 3 not found, 4 RDP blockers found, "
        "5 repair not verified, 130 interrupted."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"azrdp {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Find out why a Windows VM on Azure refuses Remote Desktop, explain it, and fix it safely."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"azrdp.cli.{_name}").register(app)


def main() -> None:
    app(prog_name="azrdp")
