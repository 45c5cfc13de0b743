"""Fleet checks against the emulator: list calls only, every VM exactly once, errors kept per VM."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator import Emulator
from azrdp.emulator.scenario import builtin_dir

runner = CliRunner()
VM_TYPE = "Microsoft.Compute/virtualMachines"


@pytest.fixture
def fleet(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> Callable[..., Emulator]:
    def start(scenario: Any = "fleet:60", **kw: Any) -> Emulator:
        emu = make_emulator(scenario, **kw)
        arm_env(emu)
        emu.clear_requests()
        return emu

    return start


def check(*args: str) -> tuple[int, dict[str, Any], str]:
    result = runner.invoke(app, ["check", *args, "-o", "json"])
    assert "Traceback" not in result.stderr
    return result.exit_code, json.loads(result.stdout), result.stderr


def stored_vms(emu: Emulator) -> list[dict[str, Any]]:
    return list(emu.store.list(VM_TYPE))


def test_all_lists_every_vm_exactly_once_with_list_calls_only(fleet: Callable[..., Emulator]) -> None:
    emu = fleet("fleet:60", page_size=7)
    code, doc, _ = check("--all")
    ids = [vm["id"].lower() for vm in doc["vms"]]
    assert len(ids) == len(set(ids)) == 60
    assert set(ids) == {vm["id"].lower() for vm in stored_vms(emu)}
    assert doc["summary"]["total"] == 60
    assert doc["summary"]["healthy"] + doc["summary"]["blocked"] + doc["summary"]["errors"] == 60
    assert code == (4 if doc["summary"]["blocked"] else 0)
    # Only collection GETs: nothing addressed to one VM, NIC, NSG, VNet or public IP; and one
    # admin-rule POST per VNet (the generated fleet has one VNet per resource group).
    kinds = Counter(r.path.rstrip("/").rsplit("/", 1)[-1].lower() for r in emu.requests)
    assert set(kinds) <= {
        "virtualmachines",
        "networkinterfaces",
        "networksecuritygroups",
        "virtualnetworks",
        "publicipaddresses",
        "loadbalancers",
        "routetables",
        "listnetworkmanagereffectivesecurityadminrules",
    }, kinds
    assert kinds["virtualmachines"] == 9  # ceil(60 / 7) pages
    vnets = len(emu.store.list("Microsoft.Network/virtualNetworks"))
    assert kinds["listnetworkmanagereffectivesecurityadminrules"] == vnets
    assert all(
        r.method == "GET" or r.path.lower().endswith("/listnetworkmanagereffectivesecurityadminrules")
        for r in emu.requests
    )


def test_fleet_and_single_vm_agree(fleet: Callable[..., Emulator]) -> None:
    fleet("fleet:25")
    _, doc, _ = check("--all")
    by_id = {vm["id"]: vm for vm in doc["vms"]}
    for vm in doc["vms"][:25:4]:
        _, one, _ = check(vm["name"], "-g", vm["resourceGroup"])
        single = one["vms"][0]
        assert single["network"] == by_id[single["id"]]["network"]
        assert single["findings"] == by_id[single["id"]]["findings"]
        assert single["status"] == by_id[single["id"]]["status"]


def test_group_scope_and_tag_filter(fleet: Callable[..., Emulator]) -> None:
    emu = fleet("fleet:60:3")
    _, doc, _ = check("-g", "rg-fleet-01")
    expected = {vm["name"] for vm in stored_vms(emu) if vm["id"].lower().split("/")[4] == "rg-fleet-01"}
    assert {vm["name"] for vm in doc["vms"]} == expected and expected
    _, tagged, _ = check("--all", "--tag", "tier=jump")
    jump = {vm["name"] for vm in stored_vms(emu) if vm.get("tags", {}).get("tier") == "jump"}
    assert {vm["name"] for vm in tagged["vms"]} == jump and jump
    _, none, _ = check("--all", "--tag", "tier=nothing")
    assert none["vms"] == [] and none["summary"]["total"] == 0


def test_group_not_found_is_exit_3(fleet: Callable[..., Emulator]) -> None:
    fleet("fleet:5")
    result = runner.invoke(app, ["check", "-g", "rg-missing"])
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr.startswith("error: ") and "rg-missing" in result.stderr


def _with_broken_vm() -> dict[str, Any]:
    doc = json.loads((builtin_dir() / "healthy.json").read_text(encoding="utf-8"))
    vm = next(r for r in doc["resources"] if r["type"] == VM_TYPE)
    broken = json.loads(json.dumps(vm))
    broken["name"] = "vm-broken"
    broken["id"] = vm["id"].rsplit("/", 1)[0] + "/vm-broken"
    nic_id = vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"].rsplit("/", 1)[0] + "/nic-gone"
    broken["properties"]["networkProfile"]["networkInterfaces"] = [
        {"id": nic_id, "properties": {"primary": True}}
    ]
    broken["properties"]["osProfile"]["computerName"] = "vm-broken"
    doc["resources"].append(broken)
    return doc


def test_a_vm_whose_facts_cannot_be_read_gets_its_own_error(fleet: Callable[..., Emulator]) -> None:
    fleet(_with_broken_vm())
    code, doc, _ = check("--all", "--source-ip", "203.0.113.7")
    assert [vm["name"] for vm in doc["vms"]] == ["vm-broken", "vm-rdp01"]
    broken, ok = doc["vms"]
    assert broken["status"] == "error" and broken["error"]["code"] == "NotFound"
    assert "nic-gone" in broken["error"]["message"] and broken["findings"] == []
    assert ok["status"] == "healthy" and ok["error"] is None
    summary = {"total": 2, "healthy": 1, "blocked": 0, "unknown": 0, "errors": 1, "exitCode": 1}
    assert doc["summary"] == summary
    assert code == 1


def test_ids_with_a_missing_vm_keep_the_others(fleet: Callable[..., Emulator]) -> None:
    emu = fleet("healthy")
    base = f"/subscriptions/{emu.subscription_id}/resourceGroups/rg-rdp/providers/{VM_TYPE}"
    code, doc, _ = check("--ids", f"{base}/vm-rdp01 {base}/vm-ghost", "--source-ip", "203.0.113.7")
    assert [vm["name"] for vm in doc["vms"]] == ["vm-rdp01", "vm-ghost"]
    assert doc["vms"][1]["error"]["code"] == "NotFound"
    assert doc["vms"][0]["status"] == "healthy"
    assert code == 3


def test_throttled_listing_is_retried_and_completes(fleet: Callable[..., Emulator]) -> None:
    from azrdp.emulator.faults import Fault

    emu = fleet("fleet:20", page_size=5, faults=[Fault("429", at=2)])
    _, doc, _ = check("--all")
    assert doc["summary"]["total"] == 20
    assert any(r.status == 429 for r in emu.requests)


def test_large_fleet_json_is_streamed_with_the_same_text(fleet: Callable[..., Emulator]) -> None:
    from azrdp.cli.params import OutputFormat
    from azrdp.cli.render import format_document

    fleet("fleet:205")
    result = runner.invoke(app, ["check", "--all", "-o", "json"])
    doc = json.loads(result.stdout)
    assert len(doc["vms"]) == 205
    assert result.stdout == format_document(doc, OutputFormat.json)


def test_verbose_progress_goes_to_stderr_only(fleet: Callable[..., Emulator]) -> None:
    fleet("fleet:12")
    result = runner.invoke(app, ["check", "--all", "--verbose", "-o", "json"])
    assert json.loads(result.stdout)["summary"]["total"] == 12
    assert "Checking every VM in the subscription" in result.stderr
    assert "Listed 12 VMs" in result.stderr
    quiet = runner.invoke(app, ["check", "--all", "-o", "json"])
    assert quiet.stderr == ""
