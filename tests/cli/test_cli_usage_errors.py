"""Flag errors look like every other azrdp error: one `error:` line, one `fix:` line, exit 2.

Typer's default is a boxed panel with the usage text; these tests pin the az-style lines instead,
and the environment-variable edge cases around them.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from azrdp.cli import terminal
from azrdp.cli.app import app


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env, input=input)


def assert_one_error(stderr: str) -> tuple[str, str]:
    lines = stderr.splitlines()
    assert len(lines) == 2, stderr
    assert lines[0].startswith("error: ") and lines[1].startswith("fix: ")
    assert "╭" not in stderr and "Usage:" not in stderr
    return lines[0], lines[1]


def test_bad_output_value_is_one_line_naming_the_flag() -> None:
    result = invoke("check", "vm1", "-g", "rg", "-o", "xml")
    assert result.exit_code == 2
    assert result.stdout == ""
    what, fix = assert_one_error(result.stderr)
    assert what.startswith("error: Invalid value for -o/--output: 'xml' is not one of 'json'")
    assert fix == "fix: Run `azrdp check --help` for the options."


def test_bad_value_from_the_environment_names_the_variable() -> None:
    result = invoke("explain", "0x904", env={"AZRDP_OUTPUT": "xml"})
    assert result.exit_code == 2
    assert result.stdout == ""
    what, fix = assert_one_error(result.stderr)
    assert "(from $AZRDP_OUTPUT)" in what
    assert fix == "fix: Correct or unset AZRDP_OUTPUT, or pass --output."


def test_cloud_from_azure_cloud_is_named_without_a_python_list() -> None:
    result = invoke("history", "vm1", "-g", "rg", env={"AZURE_CLOUD": "Mars"})
    assert result.exit_code == 2
    what, _ = assert_one_error(result.stderr)
    assert "(from $AZURE_CLOUD)" in what and "['" not in what


def test_unknown_option_suggests_the_close_one() -> None:
    result = invoke("check", "vm1", "-g", "rg", "--sourceip", "1.2.3.4")
    assert result.exit_code == 2
    assert result.stdout == ""
    what, fix = assert_one_error(result.stderr)
    assert what == "error: `azrdp check` has no option --sourceip."
    assert "--source-ip" in fix


def test_flag_without_its_value_names_the_subcommand() -> None:
    result = invoke("checks", "list", "--kind")
    assert result.exit_code == 2
    what, fix = assert_one_error(result.stderr)
    assert what == "error: Option '--kind' requires an argument."
    assert fix == "fix: Run `azrdp checks list --help` for the options."


def test_missing_argument() -> None:
    result = invoke("explain")
    assert result.exit_code == 2
    what, _ = assert_one_error(result.stderr)
    assert what == "error: Missing argument 'CODE'."


@pytest.mark.parametrize("value", ["1", "x", "true", "0"])
def test_no_color_with_any_value_is_not_a_usage_error(value: str) -> None:
    # no-color.org: any non-empty NO_COLOR turns colour off; it must never be rejected.
    result = invoke("explain", "0x904", "-o", "tsv", env={"NO_COLOR": value})
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("0x904\t")
    assert result.stderr == ""


def test_no_color_env_turns_colour_off_even_when_forced() -> None:
    term = terminal.Terminal()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TERM", "xterm-256color")
        mp.setenv("FORCE_COLOR", "1")
        assert term.color
        mp.setenv("NO_COLOR", "anything")
        assert not term.color


def test_interrupted_prompt_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terminal.Terminal, "interactive", property(lambda self: True))
    # No input: the confirmation prompt reads EOF, which is what Ctrl-D (and Ctrl-C) raise as Abort.
    result = invoke("undo", "vm1", "-g", "rg", "--run-id", "0123456789ab", input="")
    assert result.exit_code == 130
    assert result.stdout.strip() == ""  # CliRunner echoes the (empty) typed input there
    assert result.stderr.splitlines()[-1] == "error: Interrupted at the prompt."


def test_version_and_help_exit_zero() -> None:
    version = invoke("--version")
    assert version.exit_code == 0 and version.stdout.startswith("azrdp ")
    assert invoke("--help").exit_code == 0
    bare = invoke()
    assert bare.exit_code == 2 and "Usage" in bare.stdout


@pytest.mark.parametrize("command", ["check", "diagnose", "repair", "undo", "history", "probe"])
def test_help_groups_target_output_and_global_options(command: str) -> None:
    result = invoke(command, "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = result.stdout
    for panel in ("─ Target ", "─ Output ", "─ Global options "):
        assert panel in text, panel
    assert "[env var: AZRDP_DEFAULTS_GROUP, AZURE_DEFAULTS_GROUP]" in text
    assert "[env var: NO_COLOR, AZURE_CORE_NO_COLOR]" in text
    assert "[env var: AZRDP_OUTPUT]" in text
