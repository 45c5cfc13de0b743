"""The local journal decides what `azrdp undo` deletes in Azure: it must be the user's own, private
file, never one another user prepared, can write, or points a symlink at."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures_emulator import run_commands

from azrdp import journal
from azrdp.emulator import Emulator
from azrdp.engine.repair import RepairOptions, run_repair
from azrdp.engine.undo import run_undo
from azrdp.errors import UsageError
from azrdp.targets import parse_targets

SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
VM_ID = f"{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web01"
RUN = "a1b2c3d4e5f6"
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX owner and mode bits")


def _good_entry() -> journal.JournalEntry:
    return journal.record(journal.JournalEntry(RUN, VM_ID, "run", {"steps": {"rdp-listener": "applied"}}))


@posix_only
def test_the_journal_is_created_private() -> None:
    _good_entry()
    assert journal.config_dir().stat().st_mode & 0o077 == 0
    assert journal.journal_path().stat().st_mode & 0o077 == 0


@posix_only
def test_a_directory_others_can_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # e.g. AZRDP_CONFIG_DIR under a world-writable place someone else prepared
    monkeypatch.setenv("AZRDP_CONFIG_DIR", str(shared))
    with pytest.raises(UsageError) as info:
        _good_entry()
    assert str(shared) in info.value.message and "chmod" in info.value.fix
    with pytest.raises(UsageError):
        list(journal.entries())
    assert not journal.journal_path().exists()


@posix_only
def test_a_journal_file_others_can_write_is_refused() -> None:
    _good_entry()
    journal.journal_path().chmod(0o666)
    with pytest.raises(UsageError) as info:
        list(journal.entries())
    assert "journal" in info.value.message
    with pytest.raises(UsageError):
        _good_entry()


@posix_only
def test_a_symlinked_journal_file_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "planted.jsonl"
    elsewhere.write_text("")
    journal.config_dir().mkdir(parents=True, mode=0o700)
    journal.journal_path().symlink_to(elsewhere)
    with pytest.raises(UsageError) as info:
        _good_entry()
    assert "symbolic link" in info.value.why
    with pytest.raises(UsageError):
        list(journal.entries())
    assert elsewhere.read_text() == ""


@posix_only
def test_a_config_dir_that_is_a_symlink_to_the_users_own_private_dir_is_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "dotfiles" / "azrdp"
    real.mkdir(parents=True, mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    monkeypatch.setenv("AZRDP_CONFIG_DIR", str(link))
    _good_entry()
    assert [e.run_id for e in journal.entries()] == [RUN]


def test_ensure_writable_creates_the_private_directory() -> None:
    assert not journal.config_dir().exists()
    journal.ensure_writable()
    assert journal.config_dir().is_dir()
    if sys.platform != "win32":
        assert journal.config_dir().stat().st_mode & 0o077 == 0


@posix_only
def test_a_repair_with_an_unsafe_journal_changes_nothing(
    live_emulator: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before the first change: a repair that could not journal would be half-recorded."""
    emu = live_emulator("guest-rdp-disabled")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("AZRDP_CONFIG_DIR", str(shared))
    targets = parse_targets("vm-rdp01", resource_group="rg-rdp")
    with pytest.raises(UsageError):
        run_repair(targets, RepairOptions(), confirm=None)
    assert run_commands(emu) == []
    with pytest.raises(UsageError):
        run_undo(targets, RUN)
    assert run_commands(emu) == []
    # Planning changes nothing and writes no journal: a dry run still works.
    assert run_repair(targets, RepairOptions(dry_run=True)).exit_code == 4


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_a_directory_or_journal_of_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    monkeypatch.setenv("AZRDP_CONFIG_DIR", str(theirs))
    os.chown(theirs, 12345, 12345)
    with pytest.raises(UsageError) as info:
        _good_entry()
    assert "another user (uid 12345)" in info.value.message
    os.chown(theirs, 0, 0)
    _good_entry()
    os.chown(journal.journal_path(), 12345, 12345)
    with pytest.raises(UsageError) as info:
        list(journal.entries())
    assert "another user (uid 12345)" in info.value.message
