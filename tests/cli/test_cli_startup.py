"""Start-up (issue 15): what `azrdp --help`, `azrdp explain` and a one-VM check load and build.

Time is measured by benchmarks/startup.py; here, what makes it: the modules each command line
imports, and that the shortcuts taken (one command module, the root help's outline, the help
modules' stand-ins) change nothing a user sees.
"""

from __future__ import annotations

import subprocess
import sys

import typer
from typer.testing import CliRunner

from azrdp.cli import app as cli


def run_main(*args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """`azrdp ARGS` through its real entry point in a fresh interpreter; stderr ends with the
    sorted names of the loaded modules that matter here."""
    script = (
        "import sys\n"
        f"{prelude}\n"
        f"sys.argv = ['azrdp', *{list(args)!r}]\n"
        "from azrdp.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "watch = ('azure', 'azrdp.cli.', 'rich.markdown', 'rich.traceback', 'markdown_it', 'pygments')\n"
        "loaded = sorted(m for m in sys.modules if m == 'azure' or m.startswith(watch))\n"
        "sys.stderr.write('\\nMODULES ' + ' '.join(loaded))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "TERM": "dumb", "NO_COLOR": "1", "COLUMNS": "100"},
    )


def modules(done: subprocess.CompletedProcess[str]) -> list[str]:
    return done.stderr.rsplit("MODULES ", 1)[1].split()


def test_every_command_maps_to_the_module_that_registers_it() -> None:
    for module in cli.COMMAND_MODULES:
        group = typer.main.get_command(cli.build_app((module,)))
        names = set(group.commands)  # type: ignore[attr-defined]
        assert names == {name for name, owner in cli.COMMANDS.items() if owner == module}, module
    assert set(cli.modules_for(["explain", "0x904"])) == {"explain"}
    assert set(cli.modules_for(["undo", "vm"])) == {"repair"}
    assert cli.modules_for(["--help"]) == cli.modules_for(["nonsense"]) == cli.COMMAND_MODULES


def test_explain_loads_its_own_command_module_and_nothing_of_azure() -> None:
    done = run_main("explain", "0x904", "-o", "json")
    assert '"value": 2308' in done.stdout
    loaded = modules(done)
    assert [m for m in loaded if m.startswith("azrdp.cli.") and m.count(".") == 2] == [
        "azrdp.cli.app",
        "azrdp.cli.explain",
        "azrdp.cli.params",
        "azrdp.cli.render",
        "azrdp.cli.terminal",
    ]
    assert not [m for m in loaded if m == "azure" or m.startswith("azure.")]


def test_the_root_help_is_typers_own_and_loads_no_markdown_nor_pygments() -> None:
    fast = run_main("--help")
    # The same help through the full CLI, with the real rich.markdown and rich.traceback in place.
    full = run_main(
        "--help",
        prelude="import rich.markdown, rich.traceback\n"
        "import azrdp.cli.app as a\n"
        "a.outline = lambda built: built",
    )
    assert fast.stdout == full.stdout
    assert "explain" in fast.stdout and "Commands" in fast.stdout
    loaded = modules(fast)
    assert not [m for m in loaded if m.startswith(("azure", "markdown_it", "pygments"))]
    assert "rich.markdown" in loaded  # the stand-in, not the module
    assert "markdown_it" in modules(full)


def test_a_commands_help_and_its_errors_are_unchanged_by_the_shortcuts() -> None:
    for args in (["check", "--help"], ["checks", "--help"], ["repair", "--nonsense"], ["nonsense"]):
        fast = run_main(*args)
        full = CliRunner().invoke(cli.build_app(), args, env={"COLUMNS": "100", "TERM": "dumb"})
        assert fast.stdout == full.stdout, args


def test_the_stand_ins_hand_over_to_rich() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from azrdp.cli.app import defer_help_imports\n"
            "defer_help_imports()\n"
            "from rich.markdown import Markdown\n"
            "from rich.traceback import Traceback\n"
            "md = Markdown('# title')\n"
            "import rich.markdown\n"
            "assert type(md) is rich.markdown.Markdown, type(md)\n"
            "try:\n    1 / 0\nexcept ZeroDivisionError as exc:\n"
            "    tb = Traceback.from_exception(type(exc), exc, exc.__traceback__)\n"
            "import rich.traceback\n"
            "assert type(tb) is rich.traceback.Traceback\n"
            "print('ok')\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_the_collector_is_off_during_start_up_and_on_when_a_command_runs() -> None:
    def gc_after(*args: str) -> str:
        script = (
            "import gc, sys\n"
            f"sys.argv = ['azrdp', *{list(args)!r}]\n"
            "from azrdp.cli.entry import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write(f'GC {gc.isenabled()}')\n"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        return done.stderr.rsplit("GC ", 1)[1]

    assert gc_after("--help") == "False"  # the process ends in start-up
    assert gc_after("explain", "0x904", "-o", "json") == "True"  # the root callback turned it on
