"""`azrdp explain` through the CLI: formats, exit codes, streams, no Azure SDK import, plain output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from azrdp.cli.app import app

ANSI = "\x1b["


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_json_answer_for_0x904_extended_0x7() -> None:
    code, out, err = run("explain", "0x904", "--extended", "0x7", "-o", "json")
    assert code == 0, err
    assert err == ""
    doc = json.loads(out)
    assert doc["schemaVersion"] == "2"
    assert doc["code"]["name"] == "disconnectReasonAtClientWinsockFDCLOSE"
    assert doc["extended"]["name"] == "exDiscReasonServerDeniedConnection"
    assert doc["pair"]["inference"] is True


def test_piped_output_defaults_to_json() -> None:
    code, out, _ = run("explain", "2308")
    assert code == 0
    assert json.loads(out)["code"]["hex"] == "0x904"


def test_query_applies_before_formatting() -> None:
    code, out, _ = run("explain", "0x1104", "--query", "code.status", "-o", "tsv")
    assert code == 0
    assert out == "undocumented\n"


def test_table_output_lists_each_answering_table() -> None:
    code, out, _ = run("explain", "0x7", "-o", "table")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["Code", "Status", "Table", "Name", "Layer"]
    assert any("exDiscReasonServerDeniedConnection" in line for line in lines)
    assert any("ERRINFO_SERVER_DENIED_CONNECTION" in line for line in lines)


def test_unknown_code_exits_0_and_says_unknown() -> None:
    code, out, _ = run("explain", "0xABCDE", "-o", "json")
    assert code == 0
    assert json.loads(out)["code"]["status"] == "unknown"


@pytest.mark.parametrize("args", [["explain", "banana"], ["explain", "0x904", "--extended", "nope"]])
def test_bad_code_is_one_line_error_exit_2(args: list[str]) -> None:
    code, out, err = run(*args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and lines[1].startswith("fix: ")
    assert "Traceback" not in err


def test_invalid_query_is_usage_error() -> None:
    code, out, err = run("explain", "0x904", "--query", "[[[")
    assert code == 2 and out == ""
    assert err.startswith("error: ")


@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {}])
def test_output_is_plain_without_a_tty(env: dict[str, str]) -> None:
    for fmt in ("json", "jsonc", "table", "tsv"):
        code, out, err = run("explain", "0x904", "--extended", "0x7", "-o", fmt, env=env)
        assert code == 0
        assert ANSI not in out and ANSI not in err


def test_human_view_with_no_color_has_no_escape_codes() -> None:
    from rich.console import Console

    from azrdp.cli.explain import _human
    from azrdp.codes import explain, explanation_doc

    console = Console(record=True, no_color=True, force_terminal=False, width=100)
    _human(explanation_doc(explain("0x904", "0x7")), console)
    text = console.export_text(styles=False)
    assert ANSI not in text
    assert "Likely causes on an Azure Windows VM" in text
    assert "azrdp diagnose VM -g RG" in text
    assert "Together (inference)" in text


def test_explain_never_imports_the_azure_sdk() -> None:
    script = (
        "import sys\n"
        "from azrdp.cli.app import app\n"
        "from typer.testing import CliRunner\n"
        "result = CliRunner().invoke(app, ['explain', '0x904', '--extended', '0x7', '-o', 'json'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
