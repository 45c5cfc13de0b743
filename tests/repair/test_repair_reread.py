"""After its control-plane changes a repair reads the changed VMs again once per resource group,
not one check per VM (issue 15)."""

from __future__ import annotations

from collections.abc import Callable

from azrdp.emulator import Emulator
from azrdp.engine.repair import RepairOptions, run_repair
from azrdp.targets import parse_targets

MY_IP = "198.51.100.7"
GROUP = "rg-fleet-00"


def listings(emu: Emulator, since: int = 0) -> int:
    """Listings of the group's VM models."""
    path = f"/resourcegroups/{GROUP}/providers/microsoft.compute/virtualmachines"
    return sum(1 for r in emu.requests[since:] if r.method == "GET" and r.path.lower().endswith(path))


def vm_reads(emu: Emulator, since: int = 0) -> int:
    """GETs of one VM's model with its instance view (the single-VM check's first request)."""
    return sum(1 for r in emu.requests[since:] if r.method == "GET" and "$expand=instanceView" in r.query)


def test_the_vms_a_fleet_repair_changed_are_read_again_through_one_listing(
    live_emulator: Callable[..., Emulator],
) -> None:
    emu = live_emulator("fleet:30", runcommand_seconds=0.01)
    result = run_repair(
        parse_targets(resource_group=GROUP), RepairOptions(source_ip=MY_IP, concurrency=8), confirm=None
    )
    doc = result.to_doc()
    changed = [
        vm for vm in doc["vms"] if any(s["id"] == "nsg-allow-rdp" and s["applied"] for s in vm["repairs"])
    ]
    assert len(changed) >= 2  # the generated fleet has several VMs behind a deny
    assert listings(emu) == 2  # the check before, one re-read after
    assert vm_reads(emu) == 0  # not one VM read on its own
    for vm in changed:  # and the re-read is what the verification judged
        assert vm["verified"] is True
        assert not [f for f in vm["remainingFindings"] if f["id"] == "nsg-blocks-rdp"]


def test_one_vm_is_read_again_on_its_own(live_emulator: Callable[..., Emulator]) -> None:
    emu = live_emulator("deallocated", runcommand_seconds=0.01)
    vm = emu.store.list("Microsoft.Compute/virtualMachines")[0]
    group = vm["id"].split("/")[4]
    before = len(emu.requests)
    run_repair(
        parse_targets(vm=vm["name"], resource_group=group), RepairOptions(source_ip=MY_IP), confirm=None
    )
    assert vm_reads(emu, before) == 2  # the check, then the re-read: 6-7 requests, not a listing
