"""One terminal object per command: the result goes to stdout, everything else to stderr.

Colour is decided once: --no-color / NO_COLOR / AZURE_CORE_NO_COLOR -> off; TERM=dumb -> off;
FORCE_COLOR -> on; else whether the stream is a TTY. Machine formats never carry ANSI codes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer

from azrdp.errors import AzrdpError, ExitCode
from azrdp.text import printable, printable_doc

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

__all__ = ["ProgressView", "Terminal", "handle_errors", "inert", "printable", "printable_doc"]

P = ParamSpec("P")
R = TypeVar("R")


def inert(text: object, style: str = "") -> Text:
    """Foreign text (a guest's, ARM's, an RDP server's, an old journal's) as rich Text: printable,
    never read as markup, so `[link=...]`, `[/x]` or `:emoji:` show as typed."""
    from rich.text import Text

    return Text(printable(str(text)), style=style)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _env_no_color() -> bool:
    # NO_COLOR disables colour whatever its value (no-color.org), as long as it is set and not empty.
    return bool(os.environ.get("NO_COLOR")) or _truthy(os.environ.get("AZURE_CORE_NO_COLOR"))


@dataclass
class Terminal:
    no_color: bool = False
    verbose: bool = False
    debug: bool = False
    only_show_errors: bool = False
    _consoles: dict[str, Console] = field(default_factory=dict, repr=False)

    @classmethod
    def for_command(
        cls,
        *,
        no_color: bool = False,
        verbose: bool = False,
        debug: bool = False,
        only_show_errors: bool = False,
    ) -> Terminal:
        """The terminal of one command run; --debug also turns on the redacted HTTP log."""
        if debug:
            enable_http_debug_logging()
        return cls(no_color=no_color, verbose=verbose, debug=debug, only_show_errors=only_show_errors)

    @property
    def color(self) -> bool:
        if self.no_color or _env_no_color() or os.environ.get("TERM") == "dumb":
            return False
        if os.environ.get("FORCE_COLOR"):
            return True
        return sys.stdout.isatty()

    @property
    def stdout_is_tty(self) -> bool:
        return sys.stdout.isatty()

    @property
    def interactive(self) -> bool:
        """Prompts are allowed: stdin and stderr are terminals and CI is unset."""
        return sys.stdin.isatty() and sys.stderr.isatty() and not os.environ.get("CI")

    @property
    def show_progress(self) -> bool:
        return sys.stderr.isatty() and os.environ.get("TERM") != "dumb" and not self.only_show_errors

    def console(self, stream: str = "stdout") -> Console:
        if stream not in self._consoles:
            from rich.console import Console

            target = sys.stdout if stream == "stdout" else sys.stderr
            color = self.color and target.isatty() if stream == "stderr" else self.color
            # markup and emoji off: a string printed or put in a table is shown as it is, so text
            # from a guest or ARM can never become a style, a hyperlink or a crash ("[/x]").
            self._consoles[stream] = Console(
                file=target,
                markup=False,
                emoji=False,
                no_color=not color,
                force_terminal=color or None,
                highlight=False,
                soft_wrap=not target.isatty(),
                width=None if target.isatty() else 120,
            )
        return self._consoles[stream]

    @property
    def err(self) -> Console:
        return self.console("stderr")

    def info(self, message: str) -> None:
        """A progress or status line: only with --verbose, or on a terminal."""
        if self.only_show_errors:
            return
        if self.verbose or self.show_progress:
            self.err.print(printable(message), markup=False)

    def warn(self, message: str) -> None:
        if not self.only_show_errors:
            self.err.print(
                f"warning: {printable(message)}", markup=False, style=None if not self.color else "yellow"
            )

    def error(self, err: AzrdpError) -> None:
        self.err.print(f"error: {printable(err.message)}", markup=False, style="red" if self.color else None)
        if err.fix:
            self.err.print(f"fix: {printable(err.fix)}", markup=False)

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[Callable[[str], None]]:
        """A spinner on a terminal, plain lines with --verbose, silence otherwise."""
        if self.show_progress:
            # A spinner's text is read as markup when it is a str: always hand it Text.
            with self.err.status(inert(message)) as live:
                yield lambda text: live.update(inert(text))
        else:
            self.info(message)
            yield self.info


@dataclass
class Interruptions:
    """Ctrl-C during a repair or undo, as `interruptible()` handles it."""

    prompting: bool = False  # the main thread waits at a prompt: Ctrl-C there declines and stops
    count: int = 0


@contextlib.contextmanager
def interruptible(stop: Any, grace: float, settle: str) -> Iterator[Interruptions]:
    """SIGINT for a command that changes things: the first asks `stop` to stop (no new work; what
    is in flight gets `grace` seconds) and says so; the second exits 130 at once, without a
    traceback. `settle` is the command that shows what was changed."""
    import signal
    import threading

    state = Interruptions()
    if threading.current_thread() is not threading.main_thread():
        yield state  # signals reach the main thread only; Ctrl-C there raises as usual
        return

    def write(text: str) -> None:
        with contextlib.suppress(OSError):
            os.write(2, printable(text).encode("utf-8", errors="replace") + b"\n")

    def handler(signum: int, frame: Any) -> None:
        state.count += 1
        if state.count > 1:
            write(f"azrdp: interrupted again: exiting now (130). `{settle}` lists what was changed.")
            os._exit(int(ExitCode.INTERRUPTED))
        stop.request()
        if state.prompting:
            raise KeyboardInterrupt  # the prompt's own Ctrl-C: declined, and the run stops
        write(
            f"azrdp: stopping: nothing new starts; the steps in flight get up to {grace:g} s, then the "
            "result lists every change. Ctrl-C again exits at once."
        )

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def exit_now_if_abandoned(unfinished: int, code: int) -> None:
    """Work abandoned after an interruption may still be waiting on Azure: once the result is out,
    end the process without waiting for those threads (everything journalled is on disk)."""
    if unfinished:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


class ProgressView:
    """Progress events from the engine on stderr, one implementation for every command.

    On a terminal: a spinner, or a bar with done/total for fleets; `pause()` clears it for a
    prompt and `resume()` brings it back. With --verbose off a terminal: plain lines, one per phase
    (messages that only tick an elapsed time or a counter print again only every hundredth step).
    Otherwise nothing.
    """

    def __init__(self, term: Terminal, *, fleet: bool = False, message: str = "Starting") -> None:
        self.term = term
        self.fleet = fleet
        self.message = message
        self._live: Any = None
        self._task: Any = None
        self._last_head = ""
        self._last_done = -1

    def __enter__(self) -> ProgressView:
        self.resume(self.message)
        return self

    def __exit__(self, *exc: object) -> None:
        self.pause()

    def resume(self, message: str) -> None:
        self.message = message
        if not self.term.show_progress or self._live is not None:
            self._plain(message)
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}", markup=False)]
        if self.fleet:
            columns += [BarColumn(), MofNCompleteColumn()]
        self._live = Progress(*columns, console=self.term.err, transient=True)
        self._live.start()
        self._task = self._live.add_task(printable(message), total=None)

    def pause(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __call__(self, event: Any) -> None:
        if self._live is not None:
            total = event.total or None
            self._live.update(
                self._task, description=printable(event.message), completed=event.done, total=total
            )
        else:
            counter = event.kind in ("vm", "guest") and event.total > 1
            if not counter:
                self._plain(event.message)
            elif event.done != self._last_done and (event.done == event.total or event.done % 100 == 0):
                self._last_done = event.done
                self._plain(event.message)

    def _plain(self, message: str) -> None:
        if not self.term.verbose or self.term.only_show_errors:
            return
        head = message.split(" (")[0]  # "Running ... (3 s)" ticks every second: one line per phase
        if head != self._last_head:
            self._last_head = head
            self.term.err.print(printable(message), markup=False, highlight=False)


def enable_http_debug_logging() -> None:
    """--debug: the HTTP exchange on stderr, Authorization redacted.

    Only azure-core's HTTP logging policy, which redacts every header not on its allow list; never
    the raw network trace (`logging_enable`) nor msal/identity at DEBUG, which can carry tokens.
    """
    import logging

    class PrintableFormatter(logging.Formatter):
        # Logged URLs and headers carry ARM's text (nextLink, Location): shown like any foreign text.
        def format(self, record: logging.LogRecord) -> str:
            return printable(super().format(record))

    root = logging.getLogger()
    if not root.handlers:  # as logging.basicConfig, with the printable formatter
        handler = logging.StreamHandler()
        handler.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.DEBUG)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn azrdp errors into one what/why + fix pair on stderr and their exit code; no tracebacks.

    With --debug (or AZRDP_DEBUG) unexpected errors keep their traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        debug = bool(kwargs.get("debug")) or _truthy(os.environ.get("AZRDP_DEBUG"))
        term = Terminal(no_color=bool(kwargs.get("no_color")))
        try:
            return func(*args, **kwargs)
        except AzrdpError as err:
            term.error(err)
            raise typer.Exit(int(err.exit_code)) from None
        except KeyboardInterrupt:
            term.err.print("error: Interrupted.", markup=False)
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if debug:
                raise
            term.err.print(
                f"error: Unexpected {type(exc).__name__}: {printable(str(exc))}",
                markup=False,
                highlight=False,
            )
            term.err.print("fix: Rerun with --debug for the traceback, and report it.", markup=False)
            raise typer.Exit(int(ExitCode.ERROR)) from None

    return wrapper


def usage_error_message(exc: Exception, command: str = "azrdp") -> tuple[str, str]:
    """A Typer flag error (bad value, unknown option, missing argument) as azrdp's what + fix.

    `command` names the command when the error carries no context (a flag missing its value).
    """
    from typer._click import core as click_core
    from typer._click import exceptions as click_errors

    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        command = ctx.command_path
    fix = f"Run `{command} --help` for the options."
    if isinstance(exc, click_errors.NoSuchOption):
        what = f"`{command}` has no option {exc.option_name}."
        if exc.possibilities:
            fix = f"Did you mean {' or '.join(sorted(exc.possibilities))}? " + fix
        return what, fix
    param = getattr(exc, "param", None)
    if (
        isinstance(exc, click_errors.BadParameter)
        and not isinstance(exc, click_errors.MissingParameter)
        and param is not None
        and ctx is not None
    ):
        opts = sorted(param.opts, key=len)
        flags = "/".join(opts) if param.param_type_name == "option" else param.human_readable_name
        source = ctx.get_parameter_source(param.name) if param.name else None
        if source is click_core.ParameterSource.ENVIRONMENT:
            names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
            env = next((name for name in names if os.environ.get(name)), None)
            if env:
                what = f"Invalid value for {flags} (from ${env}): {_sentence(exc.message)}"
                return what, f"Correct or unset {env}, or pass {opts[-1]}."
        return f"Invalid value for {flags}: {_sentence(exc.message)}", fix
    message = exc.format_message() if isinstance(exc, click_errors.ClickException) else str(exc)
    return _sentence(message), fix


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith((".", "?", "!")) else text + "."
