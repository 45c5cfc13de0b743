"""Named VMs are read through their group's listings, not VM by VM (issue 15)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator import Emulator
from azrdp.emulator.faults import Fault

VM_TYPE = "Microsoft.Compute/virtualMachines"


def start(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]], **kw: Any
) -> Emulator:
    emu = make_emulator("fleet:60:2", **kw)
    arm_env(emu)
    emu.clear_requests()
    return emu


def ids_of(emu: Emulator, group: str, count: int) -> list[str]:
    return [vm["id"] for vm in emu.store.list(VM_TYPE) if vm["id"].split("/")[4] == group][:count]


def vm_gets(emu: Emulator, group: str) -> list[Any]:
    """GETs addressed to one VM of the group (its model, its instance view)."""
    marker = f"/resourcegroups/{group}/providers/microsoft.compute/virtualmachines/"
    return [r for r in emu.requests if r.method == "GET" and marker in r.path.lower()]


def check(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["check", *args, "-o", "json"])
    assert "Traceback" not in result.stderr
    return result.exit_code, json.loads(result.stdout)


def test_ids_of_one_group_cost_its_listings_not_six_gets_each(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> None:
    emu = start(make_emulator, arm_env)
    many = ids_of(emu, "rg-fleet-00", 10)
    alone = ids_of(emu, "rg-fleet-01", 1)
    _, doc = check("--ids", " ".join([*many[:5], *alone, *many[5:]]))
    assert [vm["id"] for vm in doc["vms"]] == [*many[:5], *alone, *many[5:]]  # the order given
    assert vm_gets(emu, "rg-fleet-00") == []  # ten VMs, not one GET addressed to any of them
    assert len(vm_gets(emu, "rg-fleet-01")) == 1  # alone in its group: the single-VM read
    # One listing of each kind for rg-fleet-00, the status pages and the admin rules; six for the
    # VM alone in its group.
    assert len(emu.requests) <= 16
    # The same facts as the group's own check.
    _, group_doc = check("-g", "rg-fleet-00")
    by_id = {vm["id"]: vm for vm in group_doc["vms"]}
    for vm in doc["vms"]:
        if vm["id"] in by_id:
            assert vm["status"] == by_id[vm["id"]]["status"]
            assert vm["network"] == by_id[vm["id"]]["network"]


def test_a_named_vm_missing_from_its_groups_listing_is_not_found(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> None:
    emu = start(make_emulator, arm_env)
    named = ids_of(emu, "rg-fleet-00", 2)
    ghost = named[0].rsplit("/", 1)[0] + "/vm-ghost"
    code, doc = check("--ids", " ".join([named[0], ghost, named[1]]))
    assert [vm["name"] for vm in doc["vms"]] == [
        named[0].rsplit("/", 1)[1],
        "vm-ghost",
        named[1].rsplit("/", 1)[1],
    ]
    assert doc["vms"][1]["error"]["code"] == "NotFound"
    assert "was not found" in doc["vms"][1]["error"]["message"]
    assert code == 3


def test_a_group_listing_refused_falls_back_to_each_vm(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> None:
    """An identity granted the VMs but not their group: the listing's 403 is not the answer; each VM
    is read on its own and says for itself what it can."""
    emu = start(
        make_emulator,
        arm_env,
        faults=[
            Fault(
                "forbidden",
                times=1,
                method="GET",
                path_contains="/providers/Microsoft.Network/networkInterfaces",
            )
        ],
    )
    named = ids_of(emu, "rg-fleet-00", 3)
    _, doc = check("--ids", " ".join(named))
    assert [vm["id"] for vm in doc["vms"]] == named
    assert all(vm["error"] is None for vm in doc["vms"])
    assert 403 in [r.status for r in emu.requests]
    # then one read per VM (besides the instance views the group attempt had read)
    assert sum(1 for r in vm_gets(emu, "rg-fleet-00") if "$expand=instanceView" in r.query) == 3
