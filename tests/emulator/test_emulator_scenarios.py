"""Scenario loading: built-ins, the fleet generator, and errors that name the JSON path at fault."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from azrdp.emulator import Emulator, ScenarioError, builtin_scenarios
from azrdp.emulator.vmstate import agent_ready, power_state

VM_ID = "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
NSG_ID = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/networkSecurityGroups/n"

EXPECTED = {
    "healthy": ("running", True),
    "nsg-blocked": ("running", True),
    "subnet-blocked": ("running", True),
    "no-public-ip": ("running", True),
    "deallocated": ("deallocated", False),
    "stopped": ("stopped", False),
    "agent-not-ready": ("running", False),
}


def test_builtin_list_names_every_file_and_the_fleet() -> None:
    names = [name for name, _ in builtin_scenarios()]
    assert set(EXPECTED) | {"linux"} <= set(names)
    assert names[-1] == "fleet:N[:groups]"
    assert all(text for _, text in builtin_scenarios())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_windows_scenarios(name: str) -> None:
    emu = Emulator(name)
    vm = emu.vm("rg-rdp", "vm-rdp01")
    assert vm is not None
    assert (power_state(vm), agent_ready(vm)) == EXPECTED[name]
    assert vm["guest"] == {}
    assert emu.scenario.description


def test_fleet_shape() -> None:
    emu = Emulator("fleet:300:4", seed=3)
    vms = emu.store.list("Microsoft.Compute/virtualMachines")
    assert len(vms) == 300
    groups = {vm["id"].split("/")[4] for vm in vms}
    assert groups == {"rg-fleet-00", "rg-fleet-01", "rg-fleet-02", "rg-fleet-03"}
    assert len(emu.store.list("Microsoft.Network/networkInterfaces")) == 300
    states = {power_state(vm) for vm in vms}
    assert {"running", "deallocated", "stopped"} <= states
    nics = emu.store.list("Microsoft.Network/networkInterfaces")
    with_nsg = [n for n in nics if "networkSecurityGroup" in n["properties"]]
    assert 0 < len(with_nsg) < 300
    subnets = [
        s for v in emu.store.list("Microsoft.Network/virtualNetworks") for s in v["properties"]["subnets"]
    ]
    assert all("networkSecurityGroup" in s["properties"] for s in subnets)


def test_fleet_default_groups_and_bad_specs() -> None:
    assert (
        len(
            {
                vm["id"].split("/")[4]
                for vm in Emulator("fleet:120").store.list("Microsoft.Compute/virtualMachines")
            }
        )
        == 3
    )
    for bad in ("fleet:", "fleet:0", "fleet:x", "fleet:10:0", "fleet:1:2:3"):
        with pytest.raises(ScenarioError, match="Bad fleet scenario"):
            Emulator(bad)


def test_unknown_builtin_name() -> None:
    with pytest.raises(ScenarioError, match="Unknown scenario 'healty'"):
        Emulator("healty")


def test_scenario_file_with_bom_and_shortcut(tmp_path: Path) -> None:
    doc = {
        "name": "mine",
        "resources": [
            {
                "id": VM_ID,
                "location": "westus",
                "instanceView": {"powerState": "running", "agent": "notReady"},
            }
        ],
    }
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(doc), encoding="utf-8-sig")
    emu = Emulator(path)
    vm = emu.store.get(VM_ID)
    assert vm is not None and vm["name"] == "vm1" and vm["type"] == "Microsoft.Compute/virtualMachines"
    assert (power_state(vm), agent_ready(vm)) == ("running", False)
    assert emu.subscription_id == "sub1"
    assert Emulator(str(path)).scenario.name == "mine"


def test_admin_password_is_never_stored() -> None:
    doc = {
        "resources": [
            {"id": VM_ID, "properties": {"osProfile": {"adminUsername": "a", "adminPassword": "p"}}}
        ]
    }
    vm = Emulator(doc).store.get(VM_ID)
    assert vm is not None and vm["properties"]["osProfile"] == {"adminUsername": "a"}


def test_loading_does_not_mutate_the_callers_dict() -> None:
    doc: dict[str, Any] = {"resources": [{"id": VM_ID, "instanceView": {"powerState": "stopped"}}]}
    snapshot = json.loads(json.dumps(doc))
    Emulator(doc)
    assert doc == snapshot


def test_child_resource_alone_gets_a_parent() -> None:
    subnet_id = (
        "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/v1/subnets/s1"
    )
    emu = Emulator({"resources": [{"id": subnet_id, "properties": {"addressPrefix": "10.0.0.0/24"}}]})
    vnet = emu.store.get(subnet_id.rsplit("/subnets/", 1)[0])
    assert vnet is not None and [s["name"] for s in vnet["properties"]["subnets"]] == ["s1"]


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ([], "$:"),
        ({"resources": {}}, "$.resources:"),
        ({"resources": [], "extra": 1}, "$.extra:"),
        ({"resources": [{"name": "x"}]}, "$.resources[0].id:"),
        ({"resources": [{"id": "/subscriptions/s/vm1"}]}, "$.resources[0].id:"),
        (
            {"resources": [{"id": VM_ID, "type": "Microsoft.Network/networkInterfaces"}]},
            "$.resources[0].type:",
        ),
        ({"resources": [{"id": VM_ID, "properties": []}]}, "$.resources[0].properties:"),
        (
            {"resources": [{"id": VM_ID, "instanceView": {"powerState": "runing"}}]},
            "$.resources[0].instanceView.powerState:",
        ),
        (
            {"resources": [{"id": VM_ID, "instanceView": {"power": "running"}}]},
            "$.resources[0].instanceView.power:",
        ),
        (
            {"resources": [{"id": VM_ID, "instanceView": {"agent": "yes"}}]},
            "$.resources[0].instanceView.agent:",
        ),
        ({"resources": [{"id": VM_ID, "guest": "on"}]}, "$.resources[0].guest:"),
        ({"resources": [{"id": VM_ID}, {"id": VM_ID.upper()}]}, "$.resources[1].id:"),
        (
            {
                "resources": [
                    {"id": VM_ID, "properties": {"networkProfile": {"networkInterfaces": [{"id": 3}]}}}
                ]
            },
            "$.resources[0].properties.networkProfile.networkInterfaces[0].id:",
        ),
        (
            {
                "resources": [
                    {
                        "id": NSG_ID,
                        "properties": {"securityRules": [{"name": "r1", "properties": {"priority": "100"}}]},
                    }
                ]
            },
            "$.resources[0].properties.securityRules[0].properties.priority:",
        ),
    ],
)
def test_malformed_scenarios_name_the_json_path(doc: Any, where: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        Emulator(doc)
    assert f"malformed at {where}" in caught.value.message
    assert caught.value.fix


def test_invalid_json_file_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"resources": [\n  {"id": }\n]}', encoding="utf-8")
    with pytest.raises(ScenarioError, match="line 2 column 10"):
        Emulator(path)
    with pytest.raises(ScenarioError, match="Cannot read scenario file"):
        Emulator(tmp_path / "missing.json")
