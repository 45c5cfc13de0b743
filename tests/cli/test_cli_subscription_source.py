"""The result says where the subscription came from, as cli-and-style.md B7 records it."""

from __future__ import annotations

import json
from collections.abc import Callable

from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator import Emulator


def test_subscription_source_is_recorded(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> None:
    emu = make_emulator("healthy")
    arm_env(emu)  # sets AZURE_SUBSCRIPTION_ID
    from_env = CliRunner().invoke(app, ["check", "vm-rdp01", "-g", "rg-rdp", "-o", "json"])
    assert from_env.exit_code == 0, from_env.stderr
    assert json.loads(from_env.stdout)["context"]["subscriptionSource"] == "environment"
    from_flag = CliRunner().invoke(
        app, ["check", "vm-rdp01", "-g", "rg-rdp", "--subscription", emu.subscription_id, "-o", "json"]
    )
    assert json.loads(from_flag.stdout)["context"]["subscriptionSource"] == "argument"
    vm_id = (
        f"/subscriptions/{emu.subscription_id}/resourceGroups/rg-rdp"
        "/providers/Microsoft.Compute/virtualMachines/vm-rdp01"
    )
    from_id = CliRunner().invoke(app, ["check", vm_id, "-o", "json"])
    assert json.loads(from_id.stdout)["context"]["subscriptionSource"] == "ids"
