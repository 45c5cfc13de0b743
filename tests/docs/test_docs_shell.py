"""Shell completion works, and output without a terminal or with NO_COLOR is plain."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from azrdp.cli.app import app

ANSI = "\x1b["


def _azrdp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "azrdp", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_show_completion_prints_a_bash_script() -> None:
    done = _azrdp("--show-completion", "bash")
    assert done.returncode == 0, done.stderr
    assert "_azrdp_completion()" in done.stdout
    assert "complete -o default -F _azrdp_completion azrdp" in done.stdout


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [("azrdp exp", "1", {"explain"}), ("azrdp checks ", "2", {"list", "show"})],
)
def test_bash_completion_protocol_completes_commands(words: str, cword: str, expected: set[str]) -> None:
    done = _azrdp(env={"_AZRDP_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword})
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) == expected


def test_install_completion_is_offered() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "--install-completion" in result.stdout
    assert "--show-completion" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["explain", "--help"],
        ["explain", "0x904", "--extended", "0x7"],
        ["explain", "0x1104", "-o", "table"],
        ["checks", "list"],
        ["checks", "list", "-o", "table"],
        ["checks", "show", "no-such-id"],
        ["explain", "not-a-code"],
    ],
)
@pytest.mark.parametrize("env", [{}, {"NO_COLOR": "1"}, {"NO_COLOR": "1", "FORCE_COLOR": "1"}])
def test_no_escape_codes_without_a_terminal_or_with_no_color(args: list[str], env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code in (0, 2), result.output
    assert ANSI not in result.stdout
    assert ANSI not in result.stderr
