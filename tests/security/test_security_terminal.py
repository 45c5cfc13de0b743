"""Text that comes from a VM (Run Command output) or from ARM reaches the admin's terminal without
its control characters: a guest must not be able to retitle the window, write the clipboard (OSC
52), clear the screen or recolour a verdict through azrdp's output."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.cli.params import OutputFormat
from azrdp.cli.render import emit, format_document
from azrdp.cli.terminal import Terminal, printable
from azrdp.emulator import Emulator
from azrdp.emulator.server import RunCommandOutput

HOSTILE = "boom\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\x9b31m\x08\x00end"
DOC = {"vms": [{"name": "vm1", "guest": {"stderr": HOSTILE, "error": {"message": HOSTILE}}}]}


def raw_controls(text: str) -> list[str]:
    return sorted({ch for ch in text if (ord(ch) < 32 and ch not in "\n\t") or 0x7F <= ord(ch) <= 0x9F})


def test_printable_keeps_text_and_newlines() -> None:
    assert printable("a\tb\r\nc") == "a\tb\nc"
    assert raw_controls(printable(HOSTILE)) == []
    assert printable(HOSTILE).startswith("boom?]52;c;") and printable(HOSTILE).endswith("end")


@pytest.mark.parametrize(
    "output", [OutputFormat.json, OutputFormat.table, OutputFormat.tsv, OutputFormat.yaml]
)
def test_machine_formats_carry_no_raw_control_characters(output: OutputFormat) -> None:
    rows = lambda doc: [{"name": "vm1", "stderr": doc["vms"][0]["guest"]["stderr"]}]  # noqa: E731
    text = format_document(DOC, output, table_rows=rows)
    assert raw_controls(text) == []
    if output is OutputFormat.json:
        assert json.loads(text) == DOC  # JSON stays faithful: the characters are escaped, not lost


def test_the_human_view_gets_printable_text(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Mapping[str, Any]] = []
    monkeypatch.setattr(Terminal, "stdout_is_tty", property(lambda self: True))
    emit(DOC, Terminal(), None, human=lambda doc, console: seen.append(doc))
    assert raw_controls(json.dumps(seen[0], ensure_ascii=False)) == []


def test_error_lines_from_a_hostile_guest_are_printable(live_emulator: Callable[..., Emulator]) -> None:
    emu = live_emulator("guest-healthy")
    emu.guest_handler = lambda vm, body: RunCommandOutput("", HOSTILE + "\r\nsecond line\r\n")
    result = CliRunner().invoke(app, ["diagnose", "vm-rdp01", "-g", "rg-rdp", "-o", "tsv"])
    assert result.exit_code == 1, result.stderr
    assert "boom" in result.stderr
    assert raw_controls(result.stderr) == [] and raw_controls(result.stdout) == []


def test_coloured_jsonc_is_printable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    assert Terminal().color
    emit(DOC, Terminal(), OutputFormat.jsonc)
    out = capsys.readouterr().out
    assert "boom" in out
    assert [ch for ch in raw_controls(out) if ch != "\x1b"] == []  # rich's own colour codes are ESC
    assert "\x1b]" not in out and "\x1b[2J" not in out


def test_the_debug_raw_tail_is_printable(live_emulator: Callable[..., Emulator]) -> None:
    emu = live_emulator("guest-healthy")
    emu.guest_handler = lambda vm, body: RunCommandOutput("no marker " + HOSTILE + "\n", "")
    result = CliRunner().invoke(app, ["diagnose", "vm-rdp01", "-g", "rg-rdp", "--debug", "-o", "tsv"])
    assert "end of the raw Run Command output" in result.stderr
    assert "no marker boom" in result.stderr
    assert raw_controls(result.stderr) == [] and raw_controls(result.stdout) == []
