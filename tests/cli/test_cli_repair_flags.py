"""repair: the flags that have AZRDP_* variables, and the table row of a VM --broken-only left out."""

from __future__ import annotations

import json
from collections.abc import Callable

from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator import Emulator


def test_repair_fleet_flags_have_env_vars() -> None:
    result = CliRunner().invoke(app, ["repair", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "AZRDP_CONCURRENCY" in result.stdout
    assert "AZRDP_WAIT_TIMEOUT" in result.stdout


def test_broken_only_rows_say_skip(live_emulator: Callable[..., Emulator]) -> None:
    live_emulator("fleet:12")
    args = ["repair", "-g", "rg-fleet-00", "--broken-only", "--dry-run"]
    doc = json.loads(CliRunner().invoke(app, [*args, "-o", "json"]).stdout)
    skipped = {vm["name"] for vm in doc["vms"] if vm["status"] == "skipped"}
    assert skipped, "fleet:12 has healthy VMs that --broken-only leaves out"
    table = CliRunner().invoke(app, [*args, "-o", "tsv"])
    rows = [line.split("\t") for line in table.stdout.splitlines()]
    by_vm = {row[0]: row for row in rows}
    for name in skipped:
        assert by_vm[name][3] == "SKIP", by_vm[name]
