"""The repair engine through its Python API: Run Commands per VM (the collector, then the executor:
2 with --yes or interactive, 1 after a fresh diagnose, 1 dry run), a declined plan, fleets with one
result per VM, and Ctrl-C."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import pytest
from fixtures_emulator import run_commands

from azrdp.emulator import Emulator
from azrdp.emulator.windows import runcommand
from azrdp.engine.diagnose import run_diagnose
from azrdp.engine.repair import RepairOptions, VmRepair, run_repair
from azrdp.targets import parse_targets

RG, VM = "rg-rdp", "vm-rdp01"
TS = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server"


@pytest.fixture
def start(live_emulator: Callable[..., Emulator]) -> Callable[..., Emulator]:
    def go(name: Any = "guest-healthy", **kwargs: Any) -> Emulator:
        kwargs.setdefault("runcommand_seconds", 0.02)
        return live_emulator(name, **kwargs)

    return go


def guest_deny(emu: Emulator, name: str = VM, group: str = RG) -> Any:
    with emu.store.lock:
        vm = emu.vm(group, name)
        assert vm is not None
        machine, _ = runcommand.machine_of(vm, datetime.now(timezone.utc))
        return machine.registry.number(TS, "fDenyTSConnections")


def test_interactive_runs_two_run_commands_and_shows_the_plan_first(start: Callable[..., Emulator]) -> None:
    emu = start("guest-rdp-disabled")
    shown: list[list[str]] = []

    def confirm(vms: Sequence[VmRepair]) -> bool:
        shown.append([s.step.id for vm in vms for s in vm.steps])
        assert guest_deny(emu) == 1  # nothing changed before the answer
        return True

    result = run_repair(parse_targets(VM, resource_group=RG), RepairOptions(), confirm=confirm)
    assert shown == [["rdp-listener"]]
    assert result.exit_code == 0
    assert len(run_commands(emu)) == 2  # the collector, then the executor (which collects after)
    assert guest_deny(emu) == 0


def test_declined_plan_changes_nothing(start: Callable[..., Emulator]) -> None:
    emu = start("guest-rdp-disabled")
    result = run_repair(parse_targets(VM, resource_group=RG), RepairOptions(), confirm=lambda vms: False)
    (vm,) = result.vms
    assert vm.declined and not vm.applied
    assert [s.status for s in vm.steps] == ["declined"]
    assert result.exit_code == 4
    assert len(run_commands(emu)) == 1
    assert guest_deny(emu) == 1


def test_yes_runs_the_collector_then_the_executor(start: Callable[..., Emulator]) -> None:
    emu = start("guest-rdp-disabled")
    result = run_repair(parse_targets(VM, resource_group=RG), RepairOptions(), confirm=None)
    assert result.exit_code == 0
    assert len(run_commands(emu)) == 2
    assert result.to_doc()["summary"]["runCommands"] == 2


def test_a_fresh_diagnosis_spares_the_collector(start: Callable[..., Emulator]) -> None:
    """Repair right after a diagnose costs one executor run; the preconditions guard the gap."""
    emu = start("guest-rdp-disabled")
    targets = parse_targets(VM, resource_group=RG)
    prior = run_diagnose(targets)
    assert len(run_commands(emu)) == 1
    result = run_repair(targets, RepairOptions(), confirm=None, prior=prior.vms)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.to_doc()
    assert len(run_commands(emu)) == 2
    assert guest_deny(emu) == 0


def test_a_state_that_moved_after_the_diagnosis_is_refused_not_overwritten(
    start: Callable[..., Emulator],
) -> None:
    emu = start("guest-rdp-disabled")
    targets = parse_targets(VM, resource_group=RG)
    prior = run_diagnose(targets)
    with emu.store.lock:
        vm = emu.vm(RG, VM)
        assert vm is not None
        vm["guest"]["registry"][TS]["fDenyTSConnections"] = 0  # someone fixed it meanwhile
    result = run_repair(targets, RepairOptions(), confirm=None, prior=prior.vms)  # type: ignore[arg-type]
    (vm_result,) = result.vms
    (step,) = vm_result.steps
    assert step.status == "refused" and "expected" in (step.error or ""), vm_result.to_doc()
    assert guest_deny(emu) == 0


def test_ctrl_c_at_the_prompt_lists_nothing_changed(start: Callable[..., Emulator]) -> None:
    emu = start("guest-rdp-disabled")

    def interrupt(vms: Sequence[VmRepair]) -> bool:
        raise KeyboardInterrupt

    result = run_repair(parse_targets(VM, resource_group=RG), RepairOptions(), confirm=interrupt)
    doc = result.to_doc()
    assert result.exit_code == 130 and doc["interrupted"] is True
    (vm,) = doc["vms"]
    assert vm["status"] == "interrupted" and vm["changes"] == [] and doc["summary"]["changes"] == 0
    assert [s["status"] for s in vm["plan"]] == ["notRun"]
    assert guest_deny(emu) == 1


def test_fleet_one_result_per_vm_two_run_commands_each(start: Callable[..., Emulator]) -> None:
    emu = start("fleet:6:2")
    ids = []
    for vm in emu.store.list("Microsoft.Compute/virtualMachines"):
        group = vm["id"].split("/")[4]
        emu.set_vm_power(group, vm["name"], "running")
        emu.set_vm_agent(group, vm["name"], "ready")
        with emu.store.lock:
            vm["guest"] = {"registry": {TS: {"fDenyTSConnections": 1}}}
        ids.append(vm["id"])
    result = run_repair(parse_targets(ids=ids), RepairOptions(concurrency=3), confirm=None)
    assert sorted(v.vm.id.lower() for v in result.vms) == sorted(i.lower() for i in ids)
    assert len(run_commands(emu)) == 2 * len(ids)
    for vm in result.vms:
        listener = [s for s in vm.steps if s.step.id == "rdp-listener"]
        assert listener and listener[0].verified is True, vm.to_doc()
    doc = result.to_doc()
    assert doc["summary"]["total"] == len(ids) and doc["summary"]["runCommands"] == 2 * len(ids)


def test_stopped_vm_interactive_asks_again_once_the_guest_is_diagnosed(
    start: Callable[..., Emulator],
) -> None:
    emu = start("deallocated")
    with emu.store.lock:
        vm = emu.vm(RG, VM)
        assert vm is not None
        vm["guest"] = {"registry": {TS: {"fDenyTSConnections": 1}}}
    asked: list[list[str]] = []

    def confirm(vms: Sequence[VmRepair]) -> bool:
        asked.append([s.step.id for v in vms for s in v.steps if s.step.actionable and s.status == "planned"])
        return True

    result = run_repair(parse_targets(VM, resource_group=RG), RepairOptions(), confirm=confirm)
    assert asked == [["vm-start"], ["rdp-listener"]]
    assert result.exit_code == 0
    assert len(run_commands(emu)) == 2  # the collector after the start, then the executor
    assert guest_deny(emu) == 0
