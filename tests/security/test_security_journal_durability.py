"""The journal survives a torn write and a careless umask.

A process killed mid-write leaves half a line at the end of the journal. The next entry used to be
appended to it, so both were one damaged line, skipped together: undo then missed the NSG rule
that entry recorded, left the Allow rule in place and exited 0. And with `umask 000` the parents
of the config directory that azrdp created were world-writable.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from azrdp import journal
from azrdp.cli.app import app
from azrdp.emulator import Emulator

SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
VM_ID = f"{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web01"
TORN = b'{"details":{"rule":"azrdp-allow-rdp-0123456789ab"},"entryId":"7f3a'
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and umask")


def _torn_journal() -> None:
    journal.ensure_writable()
    fd = os.open(journal.journal_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(fd, TORN)
    os.close(fd)


def test_an_entry_after_a_torn_line_is_kept() -> None:
    _torn_journal()
    entry = journal.record(journal.JournalEntry("a1b2c3d4e5f6", VM_ID, "run", {"steps": {}}))
    assert [e.entry_id for e in journal.entries()] == [entry.entry_id]
    raw = journal.journal_path().read_bytes()
    assert raw.startswith(TORN + b"\n") and raw.endswith(b"\n")


def test_a_whole_last_line_gets_no_blank_line() -> None:
    first = journal.record(journal.JournalEntry("a1b2c3d4e5f6", VM_ID, "run", {}))
    second = journal.record(journal.JournalEntry("a1b2c3d4e5f6", VM_ID, "run", {}))
    assert b"\n\n" not in journal.journal_path().read_bytes()
    assert [e.entry_id for e in journal.entries()] == [first.entry_id, second.entry_id]


def _rules(emu: Emulator) -> list[str]:
    nsgs = emu.store.list("Microsoft.Network/networkSecurityGroups", emu.subscription_id)
    return [str(r["name"]) for nsg in nsgs for r in nsg["properties"].get("securityRules", [])]


def test_undo_after_a_torn_line_deletes_the_rule_the_repair_added(
    live_emulator: Callable[..., Emulator],
) -> None:
    emu = live_emulator("subnet-blocked")
    _torn_journal()
    result = CliRunner().invoke(
        app, ["repair", "vm-rdp01", "-g", "rg-rdp", "--source-ip", "203.0.113.7", "--yes", "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    added = [name for name in _rules(emu) if name.startswith("azrdp-allow-rdp-")]
    assert len(added) == 1
    run_id = added[0].removeprefix("azrdp-allow-rdp-")
    undo = CliRunner().invoke(app, ["undo", "vm-rdp01", "-g", "rg-rdp", "--run-id", run_id, "--yes"])
    assert undo.exit_code == 0, undo.output
    assert [name for name in _rules(emu) if name.startswith("azrdp-allow-rdp-")] == []


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@posix_only
def test_directories_azrdp_creates_are_private_under_umask_000(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_000: None
) -> None:
    base = tmp_path / "place"
    base.mkdir(mode=0o755)
    config = base / "a" / "b" / "azrdp"
    monkeypatch.setenv("AZRDP_CONFIG_DIR", str(config))
    journal.record(journal.JournalEntry("a1b2c3d4e5f6", VM_ID, "run", {}))
    for created in (base / "a", base / "a" / "b", config):
        assert stat.S_IMODE(created.stat().st_mode) == 0o700, created
    assert stat.S_IMODE(journal.journal_path().stat().st_mode) == 0o600
    assert stat.S_IMODE(base.stat().st_mode) == 0o755  # what was there already is left alone


@posix_only
def test_the_default_config_directory_under_umask_000(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_000: None
) -> None:
    home = tmp_path / "user"
    home.mkdir(mode=0o750)
    monkeypatch.delenv("AZRDP_CONFIG_DIR")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    journal.ensure_writable()
    for created in (home / ".config", home / ".config" / "azrdp"):
        assert stat.S_IMODE(created.stat().st_mode) == 0o700, created
