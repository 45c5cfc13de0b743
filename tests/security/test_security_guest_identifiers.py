"""What a guest reports is stored in the local journal only in the shape the scripts write it.

The run id and backup folder of an executor run come back in the guest's output; the journal keeps
them and `history` shows them for years. A compromised guest could report any text there (markup,
a path elsewhere, escape sequences): the report is refused as off-contract before anything is
recorded. The same holds for the run ids of mode records and history and of the facts' run list.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from azrdp import journal
from azrdp.cli.app import app
from azrdp.emulator import Emulator
from azrdp.emulator.server import RunCommandOutput
from azrdp.emulator.windows.runcommand import handle_run_command
from azrdp.guest import envelope as ge
from azrdp.guest import facts as gf
from azrdp.guest import scripts
from azrdp.guest.wire import pack, unpack

RUN = "0123456789ab"
RG, VM = "rg-rdp", "vm-rdp01"
ROOT = gf.BACKUP_ROOT


def execute_line(run_id: str | None, backup_dir: str | None) -> str:
    run = ge.RunResult(run_id, "applied", backup_dir, (), (), True)
    return ge.render_line(ge.GuestReport(ge.VERSION, "execute", "2026-01-01T00:00:00Z", run=run)) + "\n"


def test_the_backup_root_is_the_scripts() -> None:
    assert f"$BackupRoot = '{ROOT}'" in scripts.collector_text()


def test_what_the_executor_writes_is_accepted() -> None:
    parsed = ge.parse_output(execute_line(RUN, f"{ROOT}\\{RUN}"), run_id=RUN)
    assert parsed.run is not None and parsed.run.backup_dir == f"{ROOT}\\{RUN}"
    history = ge.GuestReport(
        ge.VERSION, "history", "t", history=(ge.HistoryRun(RUN, "t", "applied", "", ()),)
    )
    assert ge.parse_output(ge.render_line(history)).history


@pytest.mark.parametrize(
    ("run_id", "backup_dir"),
    [
        (RUN, f"[link=https://evil.example]{ROOT}[/link]"),
        (RUN, f"{ROOT}\\{RUN}\\..\\..\\..\\Windows"),
        (RUN, f"{ROOT}\\{RUN}\x1b]52;c;eA==\x07"),
        (RUN, f"{ROOT}\\{RUN}\u202e"),
        (RUN, f"{ROOT}\\ffffffffffff"),
        (RUN, f"c:\\programdata\\azrdp\\backups\\{RUN}"),
        (RUN, "\\\\evil.example\\share"),
        (RUN, ROOT),
        (RUN, None),
        ("ffffffffffff", f"{ROOT}\\ffffffffffff"),  # another run than asked for
        ("[/x]", f"{ROOT}\\[/x]"),
        (None, f"{ROOT}\\{RUN}"),
    ],
)
def test_anything_else_is_refused(run_id: str | None, backup_dir: str | None) -> None:
    with pytest.raises(ge.ContractError, match="does not follow the contract"):
        ge.parse_output(execute_line(run_id, backup_dir), run_id=RUN)


@pytest.mark.parametrize("hostile", ["[red]x[/red]", "0123456789ab\u202e", "../../x", "ABCDEF012345"])
def test_run_ids_in_records_history_and_facts_are_checked(hostile: str) -> None:
    records = ge.RunRecords(hostile, "t", "b", "applied", "", (), (), True)
    with pytest.raises(ge.ContractError):
        ge.parse_output(
            ge.render_line(ge.GuestReport(ge.VERSION, "records", "t", records=records)), run_id=RUN
        )
    history = ge.GuestReport(
        ge.VERSION, "history", "t", history=(ge.HistoryRun(RUN, "t", "applied", hostile, ()),)
    )
    with pytest.raises(ge.ContractError):
        ge.parse_output(ge.render_line(history))
    facts = gf.Facts(azrdp=gf.AzrdpFacts("S-1-5-18", (gf.RunFacts(hostile, "t", "b", "applied", True, ""),)))
    with pytest.raises(ge.ContractError):
        ge.parse_output(ge.render_line(ge.GuestReport(ge.VERSION, "collect", "t", facts)))


def tampered(field: str, value: Any) -> Callable[[dict[str, Any], dict[str, Any]], RunCommandOutput]:
    """The Windows model, with one field of its run result (`r`) replaced on the wire."""

    def handler(vm: dict[str, Any], body: dict[str, Any]) -> RunCommandOutput:
        out = handle_run_command(vm, body)
        lines = out.stdout.splitlines()
        for index, line in enumerate(lines):
            if line.startswith(ge.MARKER):
                data = unpack(line[len(ge.MARKER) :])
                if isinstance(data.get("r"), dict):
                    data["r"][field] = value
                lines[index] = ge.MARKER + pack(data)
        return dataclasses.replace(out, stdout="\n".join(lines) + "\n")

    return handler


@pytest.mark.parametrize(
    "value",
    [
        "[link=https://evil.example]x[/link]",
        "C:\\Windows\\System32",
        "C:\\ProgramData\\azrdp\\backups\\x\u202e",
    ],
)
def test_a_hostile_backup_folder_never_reaches_the_journal(
    live_emulator: Callable[..., Emulator], value: str
) -> None:
    emu = live_emulator("guest-rdp-cert-expired")
    emu.guest_handler = tampered("dir", value)
    result = CliRunner().invoke(app, ["repair", VM, "-g", RG, "--yes", "-o", "json"])
    assert result.exit_code == 1, result.output
    # That VM's error (a fleet's other VMs go on): the document says why, nothing else ran.
    (vm,) = json.loads(result.stdout)["vms"]
    assert "does not follow the contract" in vm["error"]["message"]
    assert "Unexpected" not in result.stderr
    path = journal.journal_path()
    stored = path.read_text(encoding="utf-8") if path.exists() else ""
    assert "backups\\\\x" not in stored and "evil" not in stored and "System32" not in stored
    # The intent, written before the executor was sent, stays unconfirmed: undo asks the guest.
    assert [e.kind for e in journal.entries()] == ["guest-run", "run"]
    (change,) = journal.changes(vm["id"], vm["runId"])
    assert change.outcome == journal.UNCONFIRMED
    assert change.details["backupDir"] == f"C:\\ProgramData\\azrdp\\backups\\{vm['runId']}"
