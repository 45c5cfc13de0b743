"""What a guest reports is stored in the local journal only in the shape the script writes it.

The backup folder and run id of a repair come back in the guest's output; the journal keeps them
and `history` shows them for years. A compromised guest could report any text there (markup, a
path elsewhere, escape sequences): the report is refused as off-contract before anything is
recorded.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest
from typer.testing import CliRunner

from azrdp import journal
from azrdp.cli.app import app
from azrdp.emulator import Emulator
from azrdp.emulator.guest_sim import handle_run_command
from azrdp.emulator.server import RunCommandOutput
from azrdp.guest import contract as c
from azrdp.guest.contract import ContractError
from azrdp.repairs import outcome as ro

RUN = "0123456789ab"
RG, VM = "rg-rdp", "vm-rdp01"


def report(mode: str, run_id: str | None, backup_dir: str | None) -> str:
    outcome = ro.RepairOutcome(run_id, backup_dir, False, ())
    line = ro.render_line(ro.RepairReport(c.SCHEMA_VERSION, mode, "2026-01-01T00:00:00Z", repair=outcome))
    return line + "\n"


def test_the_backup_root_is_the_scripts() -> None:
    script = resources.files("azrdp.guest").joinpath("scripts").joinpath("repair.ps1").read_text("ascii")
    assert f"BackupRoot = '{ro.BACKUP_ROOT}'" in script


@pytest.mark.parametrize(
    ("mode", "run_id", "backup_dir"),
    [
        ("repair", RUN, f"{ro.BACKUP_ROOT}\\{RUN}"),
        ("repair", RUN, None),  # a dry run or a run that changed nothing
        ("undo", RUN, f"{ro.BACKUP_ROOT}\\{RUN}"),
        ("history", None, ro.BACKUP_ROOT),
    ],
)
def test_what_the_script_writes_is_accepted(mode: str, run_id: str | None, backup_dir: str | None) -> None:
    parsed = ro.parse_repair_output(report(mode, run_id, backup_dir), run_id=run_id)
    assert parsed.repair is not None and parsed.repair.backup_dir == backup_dir


@pytest.mark.parametrize(
    ("run_id", "backup_dir"),
    [
        (RUN, "[link=https://evil.example]C:\\ProgramData\\azrdp\\backups[/link]"),
        (RUN, f"{ro.BACKUP_ROOT}\\{RUN}\\..\\..\\..\\Windows"),
        (RUN, f"{ro.BACKUP_ROOT}\\{RUN}\x1b]52;c;eA==\x07"),
        (RUN, f"{ro.BACKUP_ROOT}\\{RUN}\u202e"),
        (RUN, f"{ro.BACKUP_ROOT}\\ffffffffffff"),
        (RUN, f"c:\\programdata\\azrdp\\backups\\{RUN}"),
        (RUN, "\\\\evil.example\\share"),
        (RUN, ro.BACKUP_ROOT),
        ("ffffffffffff", f"{ro.BACKUP_ROOT}\\ffffffffffff"),  # another run than asked for
        ("[/x]", f"{ro.BACKUP_ROOT}\\[/x]"),
        (None, f"{ro.BACKUP_ROOT}\\{RUN}"),
    ],
)
def test_anything_else_is_refused(run_id: str | None, backup_dir: str) -> None:
    with pytest.raises(ContractError, match="does not follow the contract"):
        ro.parse_repair_output(report("repair", run_id, backup_dir), run_id=RUN)


def tampered(field: str, value: Any) -> Callable[[dict[str, Any], dict[str, Any]], RunCommandOutput]:
    """The simulated guest, with one field of its repair result (`r`) replaced."""

    def handler(vm: dict[str, Any], body: dict[str, Any]) -> RunCommandOutput:
        out = handle_run_command(vm, body)
        lines = out.stdout.splitlines()
        for index, line in enumerate(lines):
            if line.startswith(c.MARKER):
                data = json.loads(line[len(c.MARKER) :])
                if isinstance(data.get("r"), dict):
                    data["r"][field] = value
                lines[index] = c.MARKER + json.dumps(data)
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
    assert "does not follow the contract" in result.stderr
    assert "Unexpected" not in result.stderr
    path = journal.journal_path()
    stored = path.read_text(encoding="utf-8") if path.exists() else ""
    assert "backups\\\\x" not in stored and "evil" not in stored and "System32" not in stored
    assert [e for e in journal.entries() if e.kind == "run"] == []
