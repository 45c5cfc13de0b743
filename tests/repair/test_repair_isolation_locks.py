"""One VM's failure stays that VM's; one repair or undo at a time per VM; --timeout bounds every
wait; a second Ctrl-C ends at once; journals written before intents still undo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from fixtures_emulator import run_commands
from typer.testing import CliRunner

from azrdp import journal
from azrdp.cli.app import app
from azrdp.emulator import Emulator, Fault
from azrdp.emulator.faults import FaultPlan
from azrdp.emulator.vmstate import power_state
from azrdp.emulator.windows import runcommand

RG, VM = "rg-rdp", "vm-rdp01"
MY_IP = "203.0.113.10"
TS = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server"
RUN_COMMAND = "Microsoft.Compute/virtualMachines/runCommand/action"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def rdp_off(emu: Emulator, group: str, name: str) -> None:
    with emu.store.lock:
        vm = emu.vm(group, name)
        assert vm is not None
        vm["guest"] = {"registry": {TS: {"fDenyTSConnections": 1}}}


def guest_digest(emu: Emulator, group: str = RG, name: str = VM) -> str:
    from datetime import datetime, timezone

    with emu.store.lock:
        vm = emu.vm(group, name)
        assert vm is not None
        machine = runcommand.machine_of(vm, datetime.now(timezone.utc).replace(microsecond=0))[0]
        return runcommand.digest(machine, set_aside=False)


def env_for(emu: Emulator, **extra: str) -> dict[str, str]:
    return {**os.environ, **emu.exports(), "AZRDP_POLLING_INTERVAL": "0.01", **extra}


# --- per-VM isolation ------------------------------------------------------------------------------


def test_one_vms_failure_is_that_vms_error_and_every_vm_is_reported(
    live_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = live_emulator("fleet:6:1")
    names = []
    for vm in emu.store.list("Microsoft.Compute/virtualMachines"):
        group = vm["id"].split("/")[4]
        emu.set_vm_power(group, vm["name"], "running")
        emu.set_vm_agent(group, vm["name"], "ready")
        rdp_off(emu, group, vm["name"])
        names.append(vm["name"])
    garbled, busy, denied = names[:3]
    # One VM's executor answers garbage (after it ran), one stays busy (409), one may not run
    # anything at all (403 on Run Command).
    emu.faults = FaultPlan(
        [
            Fault("guest-output", vm=garbled, after=1, stdout="AZRDP2:%%"),
            Fault("runcommand-in-progress", vm=busy, after=1),
            Fault("forbidden", vm=denied, action=RUN_COMMAND),
        ]
    )
    monkeypatch.setenv("AZRDP_CONFLICT_TIMEOUT", "1")
    result = invoke("repair", "-g", "rg-fleet-00", "--yes", "--wait-timeout", "1", "-o", "json")
    doc = json.loads(result.stdout)
    by_name = {vm["name"]: vm for vm in doc["vms"]}
    assert sorted(by_name) == sorted(names) and len(doc["vms"]) == len(names)  # each exactly once
    assert result.exit_code == 1 == doc["summary"]["exitCode"]  # the most serious of the VMs'

    assert by_name[garbled]["status"] == "error" and by_name[garbled]["error"]["code"] == "GuestOutputInvalid"
    assert [(c["kind"], c["status"]) for c in by_name[garbled]["changes"]] == [("guest-run", "unconfirmed")]
    assert by_name[garbled]["settle"] == [
        f"azrdp history {garbled} -g rg-fleet-00 --guest",
        f"azrdp undo {garbled} -g rg-fleet-00 --run-id {by_name[garbled]['runId']}",
    ]
    assert guest_digest(emu, "rg-fleet-00", garbled) != ""  # the guest did change (records tell)

    assert by_name[busy]["status"] == "error" and by_name[busy]["error"]["code"] == "Conflict"
    assert [(c["kind"], c["status"]) for c in by_name[busy]["changes"]] == [("guest-run", "failed")]

    assert by_name[denied]["status"] == "error" and by_name[denied]["changes"] == []
    for name in names[3:]:  # the others: the guest repaired (an NSG may still block some: no --source-ip)
        (listener,) = [s for s in by_name[name]["plan"] if s["id"] == "rdp-listener"]
        assert listener["status"] == "applied" and listener["verified"] is True, by_name[name]
        assert [(c["kind"], c["status"]) for c in by_name[name]["changes"]] == [("guest-run", "done")]
    assert doc["summary"]["changes"] == 5 and doc["summary"]["unconfirmed"] == 1

    # The garbled VM's run is undone from what the guest recorded.
    emu.faults = FaultPlan([])
    undo = invoke("undo", garbled, "-g", "rg-fleet-00", "--run-id", by_name[garbled]["runId"], "--yes")
    assert undo.exit_code == 0, undo.output


# --- locks ---------------------------------------------------------------------------------------


def vm_id(emu: Emulator) -> str:
    return (
        f"/subscriptions/{emu.subscription_id}/resourceGroups/{RG}"
        f"/providers/Microsoft.Compute/virtualMachines/{VM}"
    )


def test_a_repair_is_refused_while_another_run_holds_the_vm(live_emulator: Callable[..., Emulator]) -> None:
    from azrdp.locks import VmLock

    emu = live_emulator("guest-rdp-disabled")
    with VmLock(vm_id(emu), VM, "feedfeedfeed", "azrdp repair", 600, f"azrdp history {VM} -g {RG}"):
        result = invoke("repair", VM, "-g", RG, "--yes", "-o", "json")
        (vm,) = json.loads(result.stdout)["vms"]
        assert result.exit_code == 1 and vm["error"]["code"] == "Locked"
        message = vm["error"]["message"]
        assert "feedfeedfeed" in message and f"process {os.getpid()}" in message, message
        assert vm["changes"] == [] and [s["status"] for s in vm["plan"]] == ["notRun"]
        assert len(run_commands(emu)) == 1  # the collector only
        undo = invoke("undo", VM, "-g", RG, "--run-id", "0123456789ab", "--yes")
        assert undo.exit_code == 1 and "feedfeedfeed" in undo.stderr, undo.stderr
    result = invoke("repair", VM, "-g", RG, "--yes", "-o", "json")
    assert result.exit_code == 0, result.stdout


def test_a_lock_left_by_a_dead_process_is_no_lock(live_emulator: Callable[..., Emulator]) -> None:
    from azrdp import locks

    emu = live_emulator("guest-rdp-disabled")
    path = locks.lock_path(vm_id(emu))
    journal.ensure_writable()
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text('{"run": "deaddeaddead", "pid": 999999, "command": "azrdp repair"}', encoding="utf-8")
    path.chmod(0o600)
    result = invoke("repair", VM, "-g", RG, "--yes", "-o", "json")
    assert result.exit_code == 0, result.stdout
    assert not path.exists()  # released: nothing left behind


def test_undo_of_a_run_still_in_flight_is_refused(live_emulator: Callable[..., Emulator]) -> None:
    """The attack that once exited 0: `undo` while the same run's repair is still changing the guest."""
    emu = live_emulator("guest-rdp-disabled", runcommand_seconds=2.0)
    original = guest_digest(emu)
    process = subprocess.Popen(
        [sys.executable, "-m", "azrdp", "repair", VM, "-g", RG, "--yes", "-o", "json"],
        env=env_for(emu),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        intents: list[journal.JournalEntry] = []
        while time.monotonic() < deadline and not intents:
            intents = [e for e in journal.entries() if e.kind == "guest-run"]
            time.sleep(0.05)
        (intent,) = intents
        undo = invoke("undo", VM, "-g", RG, "--run-id", intent.run_id, "--yes")
        assert undo.exit_code == 1, undo.output
        assert f"azrdp run {intent.run_id}" in undo.stderr and "azrdp repair" in undo.stderr
        stdout, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0 and json.loads(stdout)["vms"][0]["status"] == "repaired"
    undo = invoke("undo", VM, "-g", RG, "--run-id", intent.run_id, "--yes")
    assert undo.exit_code == 0, undo.output
    assert guest_digest(emu) == original


# --- --timeout and Ctrl-C ------------------------------------------------------------------------


def test_timeout_bounds_the_start_and_says_what_it_waited_for(live_emulator: Callable[..., Emulator]) -> None:
    emu = live_emulator("deallocated", faults=[Fault("slow-start", seconds=60)])
    rdp_off(emu, RG, VM)
    began = time.monotonic()
    result = invoke("repair", VM, "-g", RG, "--yes", "--timeout", "8", "-o", "json")
    assert time.monotonic() - began < 40  # the start alone would take 60 s
    doc = json.loads(result.stdout)
    (vm,) = doc["vms"]
    # The start was sent and never confirmed: applied, not verified.
    assert result.exit_code == 5 and doc["timedOut"] is True, result.output
    (start,) = [s for s in vm["plan"] if s["id"] == "vm-start"]
    assert start["status"] == "unconfirmed"
    assert "did not finish within" in start["error"] and "(the --timeout ran out)" in start["error"]
    assert [(c["kind"], c["status"]) for c in vm["changes"]] == [("vm-start", "unconfirmed")]
    assert len(run_commands(emu)) == 0  # nothing in the guest was started after the time ran out


@pytest.mark.parametrize("bad", ["0", "nan", "-5", "inf"])
def test_timeout_is_checked_before_anything(bad: str, live_emulator: Callable[..., Emulator]) -> None:
    emu = live_emulator("guest-rdp-disabled")
    for command in (["repair", VM, "-g", RG, "--yes"], ["undo", VM, "-g", RG, "--run-id", "0123456789ab"]):
        result = invoke(*command, "--timeout", bad)
        assert result.exit_code == 2 and "--timeout" in result.stderr, result.output
    assert emu.requests == []


def test_a_second_ctrl_c_exits_at_once_without_a_traceback(live_emulator: Callable[..., Emulator]) -> None:
    emu = live_emulator("guest-rdp-disabled", runcommand_seconds=5.0)
    process = subprocess.Popen(
        [sys.executable, "-m", "azrdp", "repair", VM, "-g", RG, "--yes", "-o", "json"],
        env=env_for(emu, AZRDP_INTERRUPT_GRACE="60"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(run_commands(emu)) < 2:
            time.sleep(0.05)
        assert len(run_commands(emu)) == 2  # the executor runs
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        began = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130 and time.monotonic() - began < 5
    assert "Traceback" not in stderr and stdout == ""
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("azrdp: interrupted again: exiting now (130).")
    assert f"azrdp history {VM} -g {RG}" in lines[-1]
    assert any(line.startswith("azrdp: stopping: nothing new starts") for line in lines)


# --- journals written before intents ---------------------------------------------------------------


def legacy(entries: list[journal.JournalEntry]) -> list[journal.JournalEntry]:
    """The journal an azrdp before the write-ahead journal would have written for the same run."""
    out: list[journal.JournalEntry] = []
    done = {str(e.details["entry"]): e for e in entries if e.kind == "done"}
    guest: dict[str, Any] | None = None
    for entry in entries:
        if entry.kind == "nsg-rule":
            out.append(journal.JournalEntry(entry.run_id, entry.vm_id, "nsg-rule-created", entry.details))
        elif entry.kind == "vm-start":
            out.append(journal.JournalEntry(entry.run_id, entry.vm_id, "vm-started", entry.details))
        elif entry.kind == "guest-run":
            result = done[entry.entry_id].details
            guest = {
                "plan": entry.details["plan"],
                "ops": result["ops"],
                "complete": result["complete"],
                "state": result["state"],
            }
        elif entry.kind == "run":
            details = {k: v for k, v in entry.details.items() if k != "format"}
            out.append(journal.JournalEntry(entry.run_id, entry.vm_id, "run", details | {"guest": guest}))
    return out


def test_a_journal_from_before_intents_still_undoes(live_emulator: Callable[..., Emulator]) -> None:
    emu = live_emulator("subnet-blocked")
    rdp_off(emu, RG, VM)
    original = guest_digest(emu)
    result = invoke("repair", VM, "-g", RG, "--yes", "--source-ip", MY_IP, "-o", "json")
    assert result.exit_code == 0, result.stdout
    run_id = json.loads(result.stdout)["vms"][0]["runId"]
    old = legacy(list(journal.entries()))
    journal.journal_path().write_text("".join(e.to_json() + "\n" for e in old), encoding="utf-8")
    assert [e.kind for e in journal.entries()] == ["nsg-rule-created", "run"]

    (run,) = json.loads(invoke("history", VM, "-g", RG, "-o", "json").stdout)["vms"][0]["runs"]
    assert [(c["kind"], c["outcome"]) for c in run["changes"]] == [
        ("nsg-rule", "unconfirmed"),
        ("guest-run", "done"),
    ]
    undo = invoke("undo", VM, "-g", RG, "--run-id", run_id, "--yes", "-o", "json")
    assert undo.exit_code == 0, undo.output
    doc = json.loads(undo.stdout)["vms"][0]
    assert doc["guest"]["status"] == "restored" and doc["runCommands"] == 1  # from the journal's records
    assert [c["status"] for c in doc["controlPlane"]] == ["deleted"]
    assert guest_digest(emu) == original
    with emu.store.lock:
        vm = emu.vm(RG, VM)
        assert vm is not None and power_state(vm) == "running"


# --- RBAC where it can be known ------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault("forbidden", action="Microsoft.Network/networkSecurityGroups/securityRules/write"),
        Fault("forbidden", action="Microsoft.Compute/virtualMachines/start/action", vm=VM),
    ],
    ids=["nsg-write", "start-on-this-vm"],
)
def test_a_missing_permission_refuses_the_vm_before_its_first_change(
    fault: Fault, live_emulator: Callable[..., Emulator]
) -> None:
    emu = live_emulator("subnet-blocked", faults=[fault])
    emu.set_vm_power(RG, VM, "deallocated")
    rdp_off(emu, RG, VM)
    result = invoke("repair", VM, "-g", RG, "--yes", "--source-ip", MY_IP, "-o", "json")
    (vm,) = json.loads(result.stdout)["vms"]
    assert result.exit_code == 1 and vm["error"]["code"] == "AuthorizationFailed", result.output
    assert f"lacks the RBAC action '{fault.action}'" in vm["error"]["message"]
    assert vm["error"]["message"].startswith(f"Nothing was changed on VM '{VM}'")
    assert vm["changes"] == [] and list(journal.entries()) == []
    assert [s["status"] for s in vm["plan"] if s["where"] == "controlPlane"] == ["notRun", "notRun"]
    with emu.store.lock:
        stored = emu.vm(RG, VM)
        assert stored is not None and power_state(stored) == "deallocated"
    asked = [
        r for r in emu.requests if r.path.lower().endswith("/providers/microsoft.authorization/permissions")
    ]
    # The group's list first; the resource's own only where the group's lacks an action.
    assert (
        asked[0].path.lower().endswith(f"/resourcegroups/{RG}/providers/microsoft.authorization/permissions")
    )
    assert len(asked) <= 3


def test_permissions_that_cannot_be_read_do_not_stop_the_repair(
    live_emulator: Callable[..., Emulator],
) -> None:
    emu = live_emulator("guest-rdp-disabled", faults=[Fault("forbidden", action="Microsoft.Authorization/*")])
    result = invoke("repair", VM, "-g", RG, "--yes", "-o", "json")
    assert result.exit_code == 0, result.output  # not knowable: tried, and it was allowed
    assert any(r.status == 403 for r in emu.requests)
