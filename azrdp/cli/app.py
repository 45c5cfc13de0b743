"""The root `azrdp` command.

Each command lives in its own module under azrdp.cli with a `register(app)` function; the modules
are listed once in COMMAND_MODULES. Command modules must stay cheap to import: azure.* and the
emulator are imported inside the command functions, so `azrdp --help` never loads the SDK.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from azrdp import __version__

# azure-identity logs its failures as multi-line warnings; azrdp reports them once, as one error
# line. With --debug the root handler shows them again.
logging.getLogger("azure").addHandler(logging.NullHandler())

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


class AzrdpGroup(TyperGroup):
    """The root command, with flag errors printed like every other azrdp error.

    Typer would draw a boxed panel around "Invalid value for ..." with the usage text; azrdp prints
    one `error:` line and one `fix:` line on stderr instead, with the same exit code (2). Ctrl-C or
    Ctrl-D at a prompt (Typer's Abort) is an interruption: exit 130, not 1.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        # Typer vendors Click (pinned below 0.29 in pyproject): its exception types live here.
        from typer._click import exceptions as click_errors

        from azrdp.cli.terminal import Terminal, usage_error_message
        from azrdp.errors import ExitCode, UsageError

        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click_errors.NoArgsIsHelpError:
            sys.exit(int(ExitCode.USAGE))  # the help text is already printed
        except click_errors.ClickException as exc:
            what, fix = usage_error_message(exc, self._command_path(args))
            Terminal().error(UsageError(what, fix=fix))
            sys.exit(exc.exit_code)
        except typer.Abort:
            # The cursor is still on the prompt's line.
            Terminal().err.print("\nerror: Interrupted at the prompt.", markup=False)
            sys.exit(int(ExitCode.INTERRUPTED))
        sys.exit(code if isinstance(code, int) else 0)

    def _command_path(self, args: Sequence[str] | None) -> str:
        """`azrdp check` or `azrdp checks show`, from the words before the first option."""
        path = ["azrdp"]
        group: Any = self
        for word in args if args is not None else sys.argv[1:]:
            sub = getattr(group, "commands", {}).get(word)
            if sub is None:
                break
            path.append(word)
            group = sub
        return " ".join(path)


app = typer.Typer(
    name="azrdp",
    cls=AzrdpGroup,
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
