"""After its control-plane changes a repair reads the changed VMs again once per resource group,
not one check per VM (issue 15)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from azrdp.emulator import Emulator
from azrdp.emulator.faults import FaultPlan
from azrdp.engine.repair import RepairOptions, RepairResult, run_repair
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


def in_thread(
    group: str, options: RepairOptions, **kwargs: Any
) -> tuple[threading.Thread, list[RepairResult]]:
    """A repair of the group running in a thread of its own (so a hang fails the test, not CI)."""
    results: list[RepairResult] = []

    def repair() -> None:
        results.append(run_repair(parse_targets(resource_group=group), options, confirm=None, **kwargs))

    worker = threading.Thread(target=repair, daemon=True)
    worker.start()
    return worker, results


def test_a_group_larger_than_the_pool_is_re_read_without_holding_a_worker(
    live_emulator: Callable[..., Emulator],
) -> None:
    """One worker, a group of 30: VMs waiting for their group's re-read must not occupy the pool
    (a VM that blocked a worker until its group's last VM was done would wait forever)."""

    emu = live_emulator("fleet:30", runcommand_seconds=0.01)
    worker, results = in_thread(GROUP, RepairOptions(source_ip=MY_IP, concurrency=1))
    worker.join(timeout=300)
    assert not worker.is_alive(), "the repair waited forever for its group's re-read"
    doc = results[0].to_doc()
    changed = [
        vm for vm in doc["vms"] if any(s["id"] == "nsg-allow-rdp" and s["applied"] for s in vm["repairs"])
    ]
    assert len(changed) >= 2 and all(vm["verified"] is True for vm in changed)
    assert listings(emu) == 2 and vm_reads(emu) == 0


def test_a_stop_while_vms_wait_for_their_groups_re_read_leaves_them_unlocked_and_says_so(
    live_emulator: Callable[..., Emulator],
) -> None:
    """Two stopped VMs of one group: one starts at once and waits for the group's re-read, the
    other's start takes a minute. A Ctrl-C then: the waiting VM is not in flight, its start is
    confirmed, nothing else starts on it, and its local lock is free again."""
    import time

    from azrdp import journal
    from azrdp.emulator import Fault
    from azrdp.engine.control import INTERRUPTED, Stop
    from azrdp.locks import VmLock

    emu = live_emulator("fleet:2:1", runcommand_seconds=0.01)
    vms = emu.store.list("Microsoft.Compute/virtualMachines")
    group = vms[0]["id"].split("/")[4]
    fast, slow = sorted(vm["name"] for vm in vms)
    for name in (fast, slow):
        emu.set_vm_power(group, name, "deallocated")
    emu.faults = FaultPlan([Fault("slow-start", seconds=60, vm=slow)])
    stop = Stop()
    worker, results = in_thread(group, RepairOptions(source_ip=MY_IP, concurrency=2), stop=stop, grace=0.5)
    fast_id = next(vm["id"] for vm in vms if vm["name"] == fast)

    def fast_is_waiting() -> bool:
        """Every change the fast VM's run intended is confirmed, its start among them."""
        entries = list(journal.entries())
        confirmed = {str(e.details.get("entry")) for e in entries if e.kind == journal.DONE}
        started = [e for e in entries if e.kind == "vm-start" and e.vm_id.lower() == fast_id.lower()]
        mine = {e.run_id for e in started}
        intents = [e for e in entries if e.kind in journal.INTENT_KINDS and e.run_id in mine]
        return bool(started) and all(e.entry_id in confirmed for e in intents)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not fast_is_waiting():
        time.sleep(0.05)
    assert fast_is_waiting(), "the fast VM's control-plane steps never ended"
    time.sleep(0.3)  # it now waits for the slow VM of its group
    stop.request(INTERRUPTED)
    worker.join(timeout=30)
    assert not worker.is_alive()
    doc = results[0].to_doc()
    by_name = {vm["name"]: vm for vm in doc["vms"]}
    waited = by_name[fast]
    (start,) = [s for s in waited["plan"] if s["id"] == "vm-start"]
    assert start["status"] == "applied"
    assert ("vm-start", "done") in [(c["kind"], c["status"]) for c in waited["changes"]]
    assert all(c["status"] == "done" for c in waited["changes"])
    assert waited.get("inFlight") is not True
    assert all(s["status"] in ("applied", "notRun") for s in waited["plan"] if s["status"] != "planned")
    (slow_start,) = [s for s in by_name[slow]["plan"] if s["id"] == "vm-start"]
    assert slow_start["status"] == "unconfirmed"
    assert [r for r in emu.requests if r.path.lower().endswith("/runcommand")] == []
    with VmLock(fast_id, fast, "feedfeedfeed", "azrdp repair", 60, "azrdp history"):
        pass  # taken: the stopped run let go of the waiting VM
