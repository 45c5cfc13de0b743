"""Foreign text is inert in every view: what a guest, ARM or an old journal says is shown as typed.

Rich reads `[...]` in a str as markup: a guest's StdErr `[link=https://evil]x[/link]` became a
hyperlink with spoofed text, `[red on red]` hid text and `[/x]` crashed the whole view (exit 1,
every result lost). Bidi overrides reversed text and zero-width or tag characters hid it.

Each view is fuzzed with hypothesis: the document of a real run (the emulator, the real SDK) has
every string that is not an azrdp enum replaced by a hostile one, and the view, rendered on
azrdp's own terminal with colour on and off, must not crash, must write no escape sequence of its
own but rich's colour codes, no control or invisible character, and must show the text literally.
"""

from __future__ import annotations

import ast
import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hostile_text import (
    FRAGMENTS,
    MARKUP,
    assert_inert,
    fuzz_view,
    hostile_doc,
    long_payloads,
    payloads,
    rendered,
    squeeze,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import azrdp
from azrdp.cli import check as check_cli
from azrdp.cli import checks_cmd, demo, emulator, explain, repair
from azrdp.cli.app import app
from azrdp.cli.params import OutputFormat
from azrdp.cli.render import emit, format_document
from azrdp.cli.terminal import ProgressView, Terminal
from azrdp.emulator import Emulator
from azrdp.emulator.server import RunCommandOutput
from azrdp.engine import Progress
from azrdp.errors import GuestError
from azrdp.text import json_text, printable, printable_doc

RG, VM = "rg-rdp", "vm-rdp01"
FUZZ = settings(max_examples=10, deadline=None)
View = Callable[[Mapping[str, Any], Any], None]


def invoke_json(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, [*args, "-o", "json"])
    assert result.exit_code in (0, 4, 5), result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def fleet(doc: dict[str, Any], copies: int = 4) -> dict[str, Any]:
    """The same VMs several times: more than three VMs are one table row each."""
    return {**doc, "vms": [copy.deepcopy(vm) for vm in doc["vms"] for _ in range(copies)]}


# --- documents of real runs ------------------------------------------------------------------------


@pytest.fixture
def diagnose_doc(live_emulator: Callable[..., Emulator]) -> dict[str, Any]:
    """A diagnosed VM with findings, plus one whose guest step failed and one that could not be read."""
    live_emulator("guest-rdp-cert-expired")
    doc = invoke_json("diagnose", VM, "-g", RG)
    ran = doc["vms"][0]
    ran["guest"]["stderr"] = "a warning from the guest"
    ran["guest"]["sectionErrors"] = [{"section": "certificates", "message": "access denied"}]
    failed = copy.deepcopy(ran)
    failed["status"] = "error"
    failed["guest"] = {"status": "error", "error": {"code": "GuestError", "message": "m", "fix": "f"}}
    unread = {**copy.deepcopy(ran), "status": "error", "error": {"code": "NotFound", "message": "gone"}}
    doc["vms"] = [ran, failed, unread]
    return doc


def test_check_views(live_emulator: Callable[..., Emulator]) -> None:
    live_emulator("nsg-blocked")
    doc = invoke_json("check", VM, "-g", RG, "--source-ip", "203.0.113.7")
    fuzz_view(doc, check_cli.human_view)
    fuzz_view(fleet(doc), check_cli.human_view)


def test_diagnose_views(diagnose_doc: dict[str, Any]) -> None:
    fuzz_view(diagnose_doc, check_cli.human_view)  # panels
    fuzz_view(fleet(diagnose_doc), check_cli.human_view)  # the fleet table


def test_repair_undo_and_history_views(live_emulator: Callable[..., Emulator]) -> None:
    live_emulator("guest-rdp-cert-expired")
    planned = invoke_json("repair", VM, "-g", RG, "--dry-run")
    done = invoke_json("repair", VM, "-g", RG, "--yes")
    run_id = done["vms"][0]["runId"]
    history = invoke_json("history", VM, "-g", RG, "--guest")
    undone = invoke_json("undo", VM, "-g", RG, "--run-id", run_id, "--yes")
    for doc in (planned, done):
        fuzz_view(doc, repair.human_view)
        fuzz_view(fleet(doc), repair.human_view)
    fuzz_view(undone, repair._undo_view)
    fuzz_view(history, repair._history_view)
    unread = copy.deepcopy(history)
    unread["vms"][0]["guestRuns"] = {"error": "agent not ready"}
    fuzz_view(unread, repair._history_view)

    @FUZZ
    @given(payload=payloads, color=st.booleans())
    def plan(payload: str, color: bool) -> None:
        vms = printable_doc(hostile_doc(planned["vms"], payload))  # as repair's prompt does
        out = rendered(lambda term: repair.plan_table(vms, term.err, title="Plan"), color=color)
        assert_inert(out, payload)

    plan()


def test_explain_checks_emulator_and_demo_views() -> None:
    fuzz_view(azrdp.explain("0x904", extended="0x7"), explain._human)
    catalog = checks_cmd._catalog_doc()
    some = {key: catalog[key][:2] for key in ("checks", "repairs", "probeFindings")}
    fuzz_view(catalog | some, checks_cmd._list_human)
    fuzz_view({"item": catalog["checks"][0]}, checks_cmd._show_human)
    fuzz_view({"scenarios": [{"name": "n", "description": "d"}]}, emulator._human)
    row = {
        "name": "vm",
        "failure": "why",
        "before": ["nsg-denies-rdp"],
        "repairs": ["nsg-allow-rdp"],
        "after": [],
        "warningsAfter": ["agent-not-ready"],
        "repairStatus": "repaired",
        "rebootRequired": False,
        "runId": "0123456789ab",
    }
    summary = dict.fromkeys(
        ("total", "blockedBefore", "repaired", "notVerified", "blockedAfter", "runCommands", "requests"), 1
    )
    demo_doc = {"vms": [row, {**row, "after": ["x"], "rebootRequired": True}], "summary": summary}
    fuzz_view(demo_doc | {"summary": {**summary, "elapsedSeconds": 1.5}}, demo._human)


# --- errors, warnings, progress and machine formats ---------------------------------------------


@FUZZ
@given(payload=payloads, color=st.booleans())
def test_errors_warnings_and_progress_lines(payload: str, color: bool) -> None:
    def view(term: Terminal) -> None:
        term.verbose = True
        term.error(GuestError(payload, payload, payload))
        term.warn(payload)
        term.info(payload)
        with term.status(payload) as update:
            update(payload)
        with ProgressView(term, fleet=True, message=payload) as progress:
            progress(Progress("vm", payload, 1, 2))
            progress(Progress("start", payload + " (2 s)"))

    assert_inert(rendered(view, color=color), payload)


@FUZZ
@given(payload=payloads)
def test_the_live_progress_bar_and_spinner(payload: str) -> None:
    """With stderr a terminal the spinner and bar take the text (rich reads a str there as markup)."""

    def view(term: Terminal) -> None:
        with term.status(payload) as update:
            update(payload)
        with ProgressView(term, fleet=True, message=payload) as progress:
            progress(Progress("vm", payload, 1, 2))
            term.err.file.flush()

    assert_inert(rendered(view, color=True))


@FUZZ
@given(payload=st.one_of(payloads, long_payloads), output=st.sampled_from(list(OutputFormat)))
def test_machine_formats(payload: str, output: OutputFormat) -> None:
    doc = {"vms": [{"name": payload, "resourceGroup": "rg", "findings": [], payload: [payload]}]}
    text = format_document(doc, output)
    assert_inert(text)
    if output in (OutputFormat.json, OutputFormat.jsonc):
        assert json.loads(text) == doc  # escaped, never lost: the reader gets the same strings back
    if output is OutputFormat.yaml:
        import yaml

        assert yaml.safe_load(text) == doc


@FUZZ
@given(payload=payloads)
def test_coloured_jsonc(payload: str) -> None:
    out = rendered(lambda term: emit({"name": payload}, term, OutputFormat.jsonc), color=True)
    assert_inert(out)


def test_bidi_and_invisible_characters_are_shown_escaped() -> None:
    assert printable("admin\u202etxt.exe") == "admin\\u202etxt.exe"
    assert printable("a\u200bb\ufeff\U000e0041") == "a\\u200bb\\ufeff\\U000e0041"
    assert printable("\ud800") == "\\ud800"
    assert printable("ok\x1b[31m") == "ok?[31m"
    assert printable("tab\tnew\nline\r\n") == "tab\tnew\nline\n"
    assert json_text("x\u202ey\U000e0041\ud800\x85", indent=None) == '"x\\u202ey\\udb40\\udc41\\ud800\\u0085"'


def test_every_format_separator_and_surrogate_character_is_escaped() -> None:
    """The hand-written ranges cover Unicode's Cf, Zl, Zp and Cs categories of this Python."""
    import sys
    import unicodedata

    missed = [
        hex(cp)
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) in ("Cf", "Zl", "Zp", "Cs") and printable(chr(cp)) == chr(cp)
    ]
    assert missed == []


def test_the_large_fleet_json_stream_escapes_like_emit(live_emulator: Callable[..., Emulator]) -> None:
    """check's chunked JSON (fleets over 200 VMs) escapes C1 and bidi like every other json."""
    emu = live_emulator("fleet:201:1")
    name = emu.store.list("Microsoft.Compute/virtualMachines")[0]["name"]
    with emu.store.lock:
        emu.vm("rg-fleet-00", name)["_emulator"]["agentMessage"] = "\u202eevil\x85"  # type: ignore[index]
    emu.set_vm_power("rg-fleet-00", name, "running")
    emu.set_vm_agent("rg-fleet-00", name, "notReady")
    result = CliRunner().invoke(app, ["check", "-g", "rg-fleet-00"])
    assert "\\u202eevil\\u0085" in result.stdout
    assert "\u202e" not in result.stdout and "\x85" not in result.stdout
    doc = json.loads(result.stdout)
    assert len(doc["vms"]) == 201
    assert any("\u202eevil\x85" in f["evidence"] for vm in doc["vms"] for f in vm["findings"])


# --- end to end: a hostile guest and a hostile agent, through the CLI ------------------------------

HOSTILE_STDERR = (
    "[/x][link=https://evil.example/x]Verified[/link]\x1b]8;;https://evil.example\x1b\\ok\u202eexe"
)


@pytest.mark.parametrize("color", [True, False])
@pytest.mark.parametrize("command", [["diagnose"], ["check", "--guest"]])
def test_a_hostile_guest_stderr_in_the_fleet_table(
    live_emulator: Callable[..., Emulator],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    color: bool,
) -> None:
    emu = live_emulator("fleet:6:1")
    emu.guest_handler = lambda vm, body: RunCommandOutput("", HOSTILE_STDERR + "\nsecond line\n")
    monkeypatch.setattr(Terminal, "stdout_is_tty", property(lambda self: True))
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("FORCE_COLOR" if color else "NO_COLOR", "1")
    result = CliRunner().invoke(app, [*command, "-g", "rg-fleet-00"])
    assert result.exit_code == 1, result.output  # the guest steps failed: exit 1, every VM shown
    assert "Unexpected" not in result.stderr
    assert "Top finding" in result.stdout  # the fleet table, not panels
    assert ("\x1b[" in result.stdout) is color
    assert_inert(result.stdout)
    assert_inert(result.stderr, HOSTILE_STDERR)  # the StdErr warning line, whole
    shown = squeeze(printable(HOSTILE_STDERR))
    assert shown in squeeze(result.stdout)  # the rows of the VMs whose guest step failed, folded


def test_a_hostile_agent_message_in_the_panel(
    live_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guest agent's status message and version are written inside the VM and read from ARM."""
    emu = live_emulator("healthy")
    with emu.store.lock:
        state = emu.vm(RG, VM)["_emulator"]  # type: ignore[index]
        state["agentMessage"] = HOSTILE_STDERR
    emu.set_vm_agent(RG, VM, "notReady")
    monkeypatch.setattr(Terminal, "stdout_is_tty", property(lambda self: True))
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "4000")
    result = CliRunner().invoke(app, ["check", VM, "-g", RG])
    assert result.exit_code == 0, result.output  # agent-not-ready is a warning
    assert_inert(result.stdout)
    assert squeeze(printable(HOSTILE_STDERR)) in squeeze(result.stdout)


def test_history_shows_a_hostile_old_journal_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    """A journal written by an older azrdp (or edited) is foreign text too."""
    from azrdp import journal

    sub = "00000000-0000-0000-0000-000000000001"
    vm_id = f"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web01"
    for number, fragment in enumerate((*MARKUP, HOSTILE_STDERR)):
        journal.record(
            journal.JournalEntry(
                f"{number:012x}",
                vm_id,
                "run",
                {"steps": {fragment: fragment}, "backupDir": fragment},
                time=fragment,
            )
        )
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", sub)
    monkeypatch.setattr(Terminal, "stdout_is_tty", property(lambda self: True))
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("FORCE_COLOR", "1")
    result = CliRunner().invoke(app, ["history", "web01", "-g", "rg"])
    assert result.exit_code == 0, result.output
    assert_inert(result.stdout)
    for fragment in MARKUP:
        assert squeeze(fragment) in squeeze(result.stdout)


# --- the safe path is the only path --------------------------------------------------------------

CLI = Path(azrdp.__file__).parent / "cli"


def _calls(name: str) -> list[tuple[str, int]]:
    found = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == name:
                    found.append((path.name, node.lineno))
    return found


def test_no_markup_is_ever_parsed_in_the_cli() -> None:
    """Consoles are built in one place, with markup and emoji off; nothing parses markup by hand."""
    assert [f for f, _ in _calls("Console")] == ["terminal.py"]
    source = (CLI / "terminal.py").read_text(encoding="utf-8")
    assert "markup=False," in source and "emoji=False," in source
    for path in sorted(CLI.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for banned in ("from_markup", "markup=True", "rich.markup", "render_markup", "emoji=True"):
            assert banned not in text, (path.name, banned)
    # rich reads a str as markup in these whatever the console says: only Text may reach them.
    for name in ("Panel", "TextColumn"):
        for file, line in _calls(name):
            assert file in ("terminal.py", "views.py", "probe.py"), (name, file, line)
    terminal = Terminal(no_color=True)
    console = terminal.console("stdout")
    assert console._markup is False and console._emoji is False


def test_every_fragment_is_inert_in_the_fleet_table() -> None:
    """One VM per fragment in one table: each shown as typed, none acted on."""
    vms = [
        {"name": f"vm{i}", "resourceGroup": fragment, "status": "error", "error": {"message": fragment}}
        for i, fragment in enumerate(FRAGMENTS)
    ]
    doc = {"vms": vms, "summary": {"total": len(vms)}}
    out = rendered(lambda term: emit(doc, term, None, human=check_cli.human_view), color=True)
    assert_inert(out)
    for fragment in MARKUP:
        assert fragment in out


def test_the_debug_http_log_is_printable() -> None:
    """--debug logs URLs and headers, which carry ARM's text (nextLink, Location)."""
    import subprocess
    import sys

    code = (
        "import logging\n"
        "from azrdp.cli.terminal import enable_http_debug_logging\n"
        "enable_http_debug_logging()\n"
        "logging.getLogger('azure.core.pipeline.policies.http_logging_policy').debug("
        "'Location: %s', 'https://x/\\x1b]52;c;eA==\\x07\\u202e[link=https://evil]y[/link]')\n"
    )
    run = [sys.executable, "-c", code]
    done = subprocess.run(run, capture_output=True, text=True, timeout=60, check=True)
    assert "Location: https://x/?]52;c;eA==?\\u202e[link=https://evil]y[/link]" in done.stderr
    assert_inert(done.stderr)


def test_hostile_text_decoded_from_the_guest_report(
    live_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Strings decoded from the marker line (OS version, a section's error) are foreign text too."""
    import dataclasses

    from azrdp.emulator.windows.runcommand import handle_run_command
    from azrdp.guest import envelope as ge
    from azrdp.guest.wire import pack, unpack

    def handler(vm: dict[str, Any], body: dict[str, Any]) -> RunCommandOutput:
        out = handle_run_command(vm, body)
        lines = out.stdout.splitlines()
        for index, line in enumerate(lines):
            if line.startswith(ge.MARKER):
                data = unpack(line[len(ge.MARKER) :])
                data["f"]["os"]["ver"] = HOSTILE_STDERR
                data["f"]["err"] = [["cert", HOSTILE_STDERR]]
                lines[index] = ge.MARKER + pack(data)
        return dataclasses.replace(out, stdout="\n".join(lines) + "\n", stderr=HOSTILE_STDERR)

    emu = live_emulator("guest-rdp-cert-expired")
    emu.guest_handler = handler
    monkeypatch.setattr(Terminal, "stdout_is_tty", property(lambda self: True))
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "4000")
    result = CliRunner().invoke(app, ["diagnose", VM, "-g", RG])
    assert "Unexpected" not in result.stderr and result.exit_code in (1, 4), result.output
    assert_inert(result.stdout)
    assert_inert(result.stderr)
    assert squeeze(printable(HOSTILE_STDERR)) in squeeze(result.stdout)


@pytest.mark.parametrize("color", [True, False])
def test_hostile_executor_output_through_the_guest_output_fault(
    live_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch, color: bool
) -> None:
    """The emulator plays the villain: the executor runs, then its StdOut and StdErr are foreign text.
    The repair's view, its settle hints and the document stay inert."""
    from azrdp.emulator import Fault
    from azrdp.emulator.faults import FaultPlan

    emu = live_emulator("guest-rdp-disabled")
    hostile = "".join(FRAGMENTS)
    emu.faults = FaultPlan([Fault("guest-output", after=1, stdout=hostile, stderr=hostile)])
    monkeypatch.setattr(Terminal, "stdout_is_tty", property(lambda self: True))
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("FORCE_COLOR" if color else "NO_COLOR", "1")
    result = CliRunner().invoke(app, ["repair", VM, "-g", RG, "--yes"])
    assert result.exit_code == 1, result.output
    assert "Unexpected" not in result.stderr
    assert_inert(result.stdout)
    assert_inert(result.stderr)
    assert squeeze("azrdp history vm-rdp01 -g rg-rdp --guest") in squeeze(result.stdout)  # settle hint
    doc = json.loads(CliRunner().invoke(app, ["repair", VM, "-g", RG, "--yes", "-o", "json"]).stdout)
    assert_inert(json.dumps(doc))
