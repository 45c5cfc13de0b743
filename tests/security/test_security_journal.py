"""A damaged journal line costs that line only (a warning), never every undo (a traceback)."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from azrdp import journal
from azrdp.cli.app import app

SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
VM_ID = f"{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web01"
RUN = "a1b2c3d4e5f6"


def _good_entry() -> journal.JournalEntry:
    return journal.record(journal.JournalEntry(RUN, VM_ID, "run", {"steps": {"rdp-listener": "applied"}}))


def test_a_line_that_is_not_utf8_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    _good_entry()
    with journal.journal_path().open("ab") as handle:
        handle.write(b'{"runId": "\xff\xfe"}\n')
    _good_entry()
    with caplog.at_level(logging.WARNING, logger="azrdp.journal"):
        kinds = [e.kind for e in journal.entries(VM_ID)]
    assert kinds == ["run", "run"]
    assert "line 2" in caplog.text and "skipped" in caplog.text


@pytest.mark.parametrize(
    "line",
    [
        "5",
        "null",
        '["runId"]',
        '{"runId": "x"}',
        '{"entryId": "e", "runId": "r", "vmId": "v", "kind": "run", "details": "text"}',
        '{"entryId": "e", "runId": "r", "vmId": "v", "kind": "run", "details": [["a", "b"]]}',
        '{"half a line',
    ],
)
def test_malformed_lines_are_skipped_with_a_warning(line: str, caplog: pytest.LogCaptureFixture) -> None:
    _good_entry()
    with journal.journal_path().open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    with caplog.at_level(logging.WARNING, logger="azrdp.journal"):
        assert [e.kind for e in journal.entries()] == ["run"]
    assert "line 2" in caplog.text


def test_history_with_a_damaged_journal_is_no_unexpected_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _good_entry()
    with journal.journal_path().open("ab") as handle:
        handle.write(b"\xff\xfe\x00garbage\n")
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000001")
    result = CliRunner().invoke(app, ["history", "web01", "-g", "rg", "-o", "json"])
    assert "Unexpected" not in result.stderr
    assert result.exit_code == 0, result.stderr
    assert RUN in result.stdout


def test_a_damaged_shared_by_list_does_not_break_undo_views() -> None:
    from azrdp.engine.undo import _shared_with

    entry = journal.record(
        journal.JournalEntry(RUN, VM_ID, "nsg-rule-created", {"rule": "r", "sharedBy": ["junk", 5, None]})
    )
    (read,) = journal.run_entries(VM_ID, RUN)
    assert read.entry_id == entry.entry_id
    assert _shared_with(read, VM_ID) == {}
    assert journal.runs(VM_ID)[0]["runId"] == RUN
    journal.record(journal.JournalEntry("0123456789ab", VM_ID, "nsg-rule-created", {"sharedBy": 5}))
    assert len(journal.run_entries(VM_ID, "0123456789ab")) == 1
    assert {r["runId"] for r in journal.runs(VM_ID)} == {RUN, "0123456789ab"}
