"""The root `azrdp` command.

Each command lives in its own module under azrdp.cli with a `register(app)` function; COMMANDS maps
each command name to its module. Command modules must stay cheap to import: azure.* and the
emulator are imported inside the command functions, so `azrdp --help` never loads the SDK.

Start-up: `main()` registers only the module of the command being run (`azrdp explain ...` neither
imports nor builds the other nine commands); the root help, an unknown command and the shell
completion options get them all. `app` (what tests and the docs build use) is the whole CLI, built
on first access.
"""

from __future__ import annotations

import gc
import importlib
import sys
import types
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from azrdp import __version__

# Command name -> the module under azrdp.cli that registers it (tests check the two agree).
COMMANDS: dict[str, str] = {
    "check": "check",
    "diagnose": "diagnose",
    "repair": "repair",
    "undo": "repair",
    "history": "repair",
    "probe": "probe",
    "explain": "explain",
    "checks": "checks_cmd",
    "emulator": "emulator",
    "demo": "demo",
}
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(COMMANDS.values()))


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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"azrdp {__version__}")
        raise typer.Exit()


def root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Find out why a Windows VM on Azure refuses Remote Desktop, explain it, and fix it safely."""
    gc.enable()  # off during start-up (azrdp.cli.entry); a command is about to run


def build_app(modules: Sequence[str] = COMMAND_MODULES) -> typer.Typer:
    """The root command with the commands of `modules` registered."""
    built = typer.Typer(
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
    built.callback()(root)
    for name in modules:
        importlib.import_module(f"azrdp.cli.{name}").register(built)
    return built


def modules_for(args: Sequence[str]) -> tuple[str, ...]:
    """The command modules a command line needs: the named command's alone, else all of them
    (root options such as --help and the completion ones, no command, an unknown one)."""
    if args and args[0] in COMMANDS:
        return (COMMANDS[args[0]],)
    return COMMAND_MODULES


def __getattr__(name: str) -> Any:
    """`app`: the whole CLI, built on first access (PEP 562)."""
    if name == "app":
        built = build_app()
        globals()["app"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _defer(module: str, name: str) -> None:
    """Put a stand-in for `module` in sys.modules whose `name` loads the real module on first use
    (a call, or a class attribute such as `Traceback.from_exception`), then hands over to it."""
    if module in sys.modules:
        return
    stand_in = types.ModuleType(module, f"Loads {module} on first use (azrdp start-up).")

    def real() -> Any:
        if sys.modules.get(module) is stand_in:
            del sys.modules[module]
        return getattr(importlib.import_module(module), name)

    class Deferred(type):
        def __getattr__(cls, attr: str) -> Any:
            return getattr(real(), attr)

    class StandIn(metaclass=Deferred):  # a class: typer's annotations say `Markdown | Text`
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            return real()(*args, **kwargs)

    StandIn.__name__ = StandIn.__qualname__ = name
    setattr(stand_in, name, StandIn)
    sys.modules[module] = stand_in


def defer_help_imports() -> None:
    """Typer's rich help module imports rich.markdown (markdown-it and its regular expressions) and
    rich.traceback (pygments) at import: about 50 ms for things `--help` never uses (azrdp renders
    help in "rich" markup mode; tracebacks appear only with --debug). Stand-ins take their places
    until something asks for them."""
    _defer("rich.markdown", "Markdown")
    _defer("rich.traceback", "Traceback")


def outline(full: typer.Typer) -> typer.Typer:
    """The same commands, groups, help texts and panels without their parameters: the root help
    lists only names and one line each, and building every option of every command costs more than
    all the rest of `azrdp --help`."""
    import copy
    import inspect

    def nothing() -> None:
        """A command stand-in without parameters."""

    out = copy.copy(full)
    out.registered_commands = []
    for info in full.registered_commands:
        stand_in = copy.copy(info)
        stand_in.help = info.help if info.help is not None else inspect.getdoc(info.callback)
        stand_in.callback = nothing
        out.registered_commands.append(stand_in)
    out.registered_groups = []
    for group in full.registered_groups:
        stand_in_group = copy.copy(group)
        if group.typer_instance is not None:
            stand_in_group.typer_instance = outline(group.typer_instance)
        out.registered_groups.append(stand_in_group)
    return out


def main() -> None:
    args = sys.argv[1:]
    defer_help_imports()
    built = build_app(modules_for(args))
    if not args or args[0] in ("-h", "--help"):
        built = outline(built)  # the root help: names and one line per command
    built(prog_name="azrdp")
