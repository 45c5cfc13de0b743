"""A fact that could not be read is never healthy.

An unreadable NIC NSG or VNet used to give `healthy`, exit 0, and `repair --dry-run` on a VM whose
NIC was gone exited 0: a pre-connection check said "go" without having seen the way in. Now a
resource on the RDP path that could not be read (403, 404, any error) makes the VM `unknown`
(exit 1, the facts-incomplete finding saying what and why), a VM or NIC that cannot be read at
all is an `error`, and a proven blocker stays `blocked`. Readings that need more than Reader
(admin rules) stay warnings.

The emulator's per-resource faults answer as ARM does: 403 AuthorizationFailed, 404
ResourceNotFound.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fixtures_emulator import run_commands
from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator import Emulator
from azrdp.emulator.faults import Fault

RG, VM = "rg-rdp", "vm-rdp01"
MY_IP = "203.0.113.7"
WRITES = ("PUT", "POST", "DELETE", "PATCH")


def forbidden(path: str, method: str = "GET") -> Fault:
    return Fault("403", probability=1.0, method=method, path_contains=path)


def gone(path: str) -> Fault:
    return Fault("404", probability=1.0, method="GET", path_contains=path)


def invoke(*args: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(app, [*args, "-o", "json"])
    assert "Unexpected" not in result.stderr, result.stderr
    return result.exit_code, json.loads(result.stdout), result.stderr


def incomplete(vm: dict[str, Any]) -> dict[str, Any]:
    (finding,) = [f for f in vm["findings"] if f["id"] == "facts-incomplete"]
    return finding


@pytest.mark.parametrize(
    ("fault", "unread"),
    [
        (forbidden("/networkSecurityGroups"), "AuthorizationFailed"),  # NIC and subnet NSGs
        (forbidden("/virtualNetworks/"), "AuthorizationFailed"),  # the subnet, and so its NSG
        (gone("/virtualNetworks/"), "NotFound"),
        (forbidden("/publicIPAddresses/"), "AuthorizationFailed"),
        (
            Fault("500", probability=1.0, method="GET", path_contains="/publicIPAddresses/"),
            "InternalServerError",
        ),
    ],
    ids=["nsgs-403", "vnet-403", "vnet-404", "public-ip-403", "public-ip-500"],
)
def test_an_unreadable_resource_on_the_path_makes_the_vm_unknown(
    live_emulator: Callable[..., Emulator], fault: Fault, unread: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZRDP_RETRY_TOTAL", "0")  # the 500 is not retried six times
    live_emulator("healthy", faults=[fault])
    code, doc, _ = invoke("check", VM, "-g", RG, "--source-ip", MY_IP)
    (vm,) = doc["vms"]
    assert vm["status"] == "unknown" and code == 1
    assert unread in incomplete(vm)["evidence"] and "unknown" in incomplete(vm)["evidence"]
    assert doc["summary"]["unknown"] == 1 and doc["summary"]["healthy"] == 0
    assert doc["summary"]["exitCode"] == 1


def test_without_the_fault_the_same_vm_is_healthy(live_emulator: Callable[..., Emulator]) -> None:
    live_emulator("healthy")
    code, doc, _ = invoke("check", VM, "-g", RG, "--source-ip", MY_IP)
    assert code == 0 and doc["vms"][0]["status"] == "healthy"


def test_the_table_row_says_unknown(live_emulator: Callable[..., Emulator]) -> None:
    live_emulator("healthy", faults=[forbidden("/networkSecurityGroups")])
    result = CliRunner().invoke(app, ["check", VM, "-g", RG, "--source-ip", MY_IP, "-o", "tsv"])
    assert result.exit_code == 1
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [r[2:4] for r in rows if r[2] == "facts-incomplete"] == [["facts-incomplete", "UNKNOWN"]]
    assert not [r for r in rows if r[3] == "PASS"]


def test_a_proven_blocker_stays_blocked(live_emulator: Callable[..., Emulator]) -> None:
    live_emulator("deallocated", faults=[forbidden("/publicIPAddresses/")])
    code, doc, _ = invoke("check", VM, "-g", RG, "--source-ip", MY_IP)
    (vm,) = doc["vms"]
    assert vm["status"] == "blocked" and code == 4
    assert incomplete(vm)  # still said


def test_a_gone_nic_is_an_error(live_emulator: Callable[..., Emulator]) -> None:
    live_emulator("healthy", faults=[gone("/networkInterfaces/")])
    code, doc, _ = invoke("check", VM, "-g", RG, "--source-ip", MY_IP)
    (vm,) = doc["vms"]
    assert vm["status"] == "error" and code == 1
    assert vm["error"]["code"] == "NotFound"


@pytest.mark.parametrize("mode", ["--dry-run", "--yes"])
def test_repair_on_a_vm_whose_nic_is_gone_is_an_error_and_changes_nothing(
    live_emulator: Callable[..., Emulator], mode: str
) -> None:
    emu = live_emulator("guest-rdp-cert-expired", faults=[gone("/networkInterfaces/")])
    guest_before = repr(emu.vm(RG, VM)["guest"])  # type: ignore[index]
    code, doc, _ = invoke("repair", VM, "-g", RG, mode)
    (vm,) = doc["vms"]
    assert code == 1 and vm["status"] == "error" and doc["summary"]["errors"] == 1
    assert vm["applied"] is False
    assert [r for r in emu.requests if r.method in WRITES] == [] and run_commands(emu) == []
    assert repr(emu.vm(RG, VM)["guest"]) == guest_before  # type: ignore[index]


def test_repair_dry_run_of_an_unknown_vm_is_not_exit_0(live_emulator: Callable[..., Emulator]) -> None:
    live_emulator("guest-healthy", faults=[forbidden("/networkSecurityGroups")])
    code, doc, _ = invoke("repair", VM, "-g", RG, "--dry-run", "--source-ip", MY_IP)
    (vm,) = doc["vms"]
    assert vm["status"] == "unknown" and code == 1
    assert doc["summary"]["unknown"] == 1


def test_diagnose_of_an_unknown_vm(live_emulator: Callable[..., Emulator]) -> None:
    live_emulator("guest-healthy", faults=[forbidden("/virtualNetworks/")])
    code, doc, _ = invoke("diagnose", VM, "-g", RG, "--source-ip", MY_IP)
    (vm,) = doc["vms"]
    assert vm["guest"]["status"] == "ran"
    assert vm["status"] == "unknown" and code == 1


def _move_nic_nsg(emu: Emulator, group: str) -> tuple[str, set[str]]:
    """Move one NIC NSG to another resource group (a security team's), as many estates do.

    Returns the NSG's name and the ids of the VMs whose NICs use it; their references follow."""
    with emu.store.lock:
        nics = emu.store.list("Microsoft.Network/networkInterfaces")
        old_id = next(
            n["properties"]["networkSecurityGroup"]["id"]
            for n in nics
            if (n["properties"].get("networkSecurityGroup") or {}).get("id")
        )
        nsg = emu.store.get(old_id)
        assert nsg is not None
        emu.store.delete(old_id)
        new_id = old_id.replace(f"/resourceGroups/{old_id.split('/')[4]}/", f"/resourceGroups/{group}/")
        emu.store.add_resource_group(emu.subscription_id, group, str(nsg.get("location", "")))
        emu.store.put({**nsg, "id": new_id})
        users = set()
        for nic in nics:
            ref = nic["properties"].get("networkSecurityGroup") or {}
            if str(ref.get("id", "")).lower() == old_id.lower():
                nic["properties"]["networkSecurityGroup"] = {"id": new_id}
                users.add(str(nic["properties"]["virtualMachine"]["id"]).lower())
        return str(nsg["name"]), users


def test_in_a_fleet_only_the_unreadable_vms_are_unknown(live_emulator: Callable[..., Emulator]) -> None:
    """With -g an NSG of another group is read on its own, and the user may not read that group."""
    emu = live_emulator("fleet:8:1")
    nsg, users = _move_nic_nsg(emu, "rg-security")
    emu.faults.faults.append(forbidden("/resourceGroups/rg-security/"))
    code, doc, _ = invoke("check", "-g", "rg-fleet-00")
    affected = [vm for vm in doc["vms"] if vm["id"].lower() in users]
    others = [vm for vm in doc["vms"] if vm["id"].lower() not in users]
    assert affected and others
    for vm in affected:
        assert nsg in incomplete(vm)["evidence"] and "AuthorizationFailed" in incomplete(vm)["evidence"]
        assert vm["status"] in ("unknown", "blocked")  # a deallocated VM is blocked whatever its NSG says
    assert not [vm for vm in others if vm["status"] == "unknown"]
    unknown = sum(1 for vm in affected if vm["status"] == "unknown")
    assert doc["summary"]["unknown"] == unknown
    assert code == (1 if unknown else 4 if doc["summary"]["blocked"] else 0)


def test_an_optional_reading_that_needs_more_than_reader_stays_a_warning(
    live_emulator: Callable[..., Emulator],
) -> None:
    """Admin rules need a POST action Reader lacks: a Reader-only user's check still answers."""
    emu = live_emulator(
        "healthy", faults=[forbidden("listNetworkManagerEffectiveSecurityAdminRules", "POST")]
    )
    code, doc, _ = invoke("check", VM, "-g", RG, "--source-ip", MY_IP)
    (vm,) = doc["vms"]
    assert any(r.status == 403 for r in emu.requests)
    assert not [f for f in vm["findings"] if f["id"] == "facts-incomplete"]
    assert vm["status"] == "healthy" and code == 0
    assert any("could not be read" in f["title"] for f in vm["findings"])
