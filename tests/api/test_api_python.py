"""The small public Python API returns the same documents as the CLI's -o json."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

import azrdp
from azrdp.cli.app import app
from azrdp.emulator import Emulator
from azrdp.errors import UsageError


def test_check_matches_cli_json(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> None:
    emu = make_emulator("nsg-blocked")
    arm_env(emu)
    vm = next(r for r in emu.store.list("Microsoft.Compute/virtualMachines"))
    group = vm["id"].split("/")[4]
    doc = azrdp.check(vm["name"], group)
    cli = CliRunner().invoke(app, ["check", vm["name"], "-g", group, "-o", "json"])
    assert cli.exit_code == 4
    assert json.loads(cli.stdout)["vms"][0]["findings"] == doc["vms"][0]["findings"]
    assert "nsg-denies-rdp" in {f["id"] for f in doc["vms"][0]["findings"]}


def test_repair_needs_a_decision() -> None:
    with pytest.raises(UsageError, match="explicit decision"):
        azrdp.repair("web01", "rg")


def test_explain_is_the_cli_document() -> None:
    doc = azrdp.explain("0x904", extended="0x7")
    cli = CliRunner().invoke(app, ["explain", "0x904", "--extended", "0x7", "-o", "json"])
    assert cli.exit_code == 0
    assert json.loads(cli.stdout) == doc
