"""A SCHANNEL repair leaves a pending-reboot marker: diagnose before the VM restarts warns
`reboot-pending` instead of calling TLS healthy from the registry; a restart (the emulator's
`restart` power action) or undo of that run clears it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any

import pytest
from fixtures_emulator import sdk_clients
from typer.testing import CliRunner

from azrdp.checks import run_checks
from azrdp.checks.guest import GuestFacts
from azrdp.cli.app import app
from azrdp.emulator import Emulator, guest_repair, guest_sim
from azrdp.guest import contract as c
from azrdp.model import Severity, Source

RG, VM = "rg-rdp", "vm-rdp01"
NOW = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)
TLS_BROKEN = {"registry": {guest_sim.TLS_SERVER["1.2"]: {"Enabled": 0, "DisabledByDefault": 1}}}


@pytest.fixture
def start(
    make_emulator: Callable[..., Emulator],
    arm_env: Callable[[Emulator], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Emulator]:
    def go(name: str = "guest-tls12-server-disabled") -> Emulator:
        emu = make_emulator(name, runcommand_seconds=0.02)
        arm_env(emu)
        monkeypatch.setenv("AZRDP_POLLING_INTERVAL", "0.01")
        return emu

    return go


def cli(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, [*args, VM, "-g", RG, "-o", "json"])
    assert result.stdout, result.stderr
    return result.exit_code, json.loads(result.stdout)


def guest_ids(doc: dict[str, Any]) -> dict[str, str]:
    (vm,) = doc["vms"]
    return {f["id"]: f["severity"] for f in vm["findings"] if f["source"] == "guest"}


def test_diagnose_before_the_restart_warns_and_the_restart_clears_it(start: Callable[..., Emulator]) -> None:
    emu = start()
    code, before = cli("diagnose")
    assert "tls12-server-disabled" in guest_ids(before) and "reboot-pending" not in guest_ids(before)

    code, doc = cli("repair", "--yes")
    assert code == 5 and doc["vms"][0]["rebootRequired"] is True

    # The registry now reads repaired; without the marker diagnose would call TLS healthy.
    code, pending = cli("diagnose")
    found = guest_ids(pending)
    assert "tls12-server-disabled" not in found
    assert found.get("reboot-pending") == "warning", found
    (finding,) = [f for f in pending["vms"][0]["findings"] if f["id"] == "reboot-pending"]
    assert "restart" in finding["recommendation"].lower()
    assert code == 0  # a warning, not a blocker

    compute, _ = sdk_clients(emu, polling_interval=0.01)
    compute.virtual_machines.begin_restart(RG, VM).result()
    code, after = cli("diagnose")
    assert "reboot-pending" not in guest_ids(after) and "tls12-server-disabled" not in guest_ids(after)


def test_undo_of_the_run_takes_its_marker_away(start: Callable[..., Emulator]) -> None:
    start()
    _, doc = cli("repair", "--yes")
    run_id = doc["vms"][0]["runId"]
    _, pending = cli("diagnose")
    assert "reboot-pending" in guest_ids(pending)
    result = CliRunner().invoke(app, ["undo", VM, "-g", RG, "--run-id", run_id, "--yes", "-o", "json"])
    assert result.exit_code == 0, result.stderr
    _, after = cli("diagnose")
    found = guest_ids(after)
    assert "reboot-pending" not in found and "tls12-server-disabled" in found


def test_no_marker_for_repairs_that_take_effect_at_once(start: Callable[..., Emulator]) -> None:
    start("guest-rdp-disabled")
    code, _ = cli("repair", "--yes")
    assert code == 0
    _, after = cli("diagnose")
    assert guest_ids(after) == {}


# --- the simulator, without a server -------------------------------------------------------------


def params(run_id: str, mode: str = "repair") -> dict[str, str]:
    return {"mode": mode, "rdpport": "3389", "runid": run_id, "dryrun": "0"}


def diagnosis(vm: dict[str, Any]) -> c.Diagnosis:
    state = guest_sim.load_state(vm["guest"], NOW)
    state.boot_time = guest_sim.boot_time(vm, NOW)
    return guest_sim.collect(state, 3389, NOW)


def repair_run(vm: dict[str, Any], run_id: str, mode: str = "repair") -> None:
    state = guest_sim.load_state(vm["guest"], NOW)
    state.boot_time = guest_sim.boot_time(vm, NOW)
    guest_repair.MODE_HANDLERS[mode](vm, state, params(run_id, mode), NOW)


def test_marker_holds_the_boot_time_and_each_run_of_that_boot() -> None:
    vm: dict[str, Any] = {"guest": TLS_BROKEN}
    repair_run(vm, "aaaaaaaaaaaa")
    marker = vm["guest"]["pendingReboot"]
    assert marker["runs"] == ["aaaaaaaaaaaa"]
    assert marker["boot"] == c.format_time(guest_sim.boot_time(vm, NOW))
    assert diagnosis(vm).reboot_pending == 1

    # Broken again in the same boot (a baseline re-applied it) and repaired again: both runs wait.
    vm["guest"]["registry"][guest_sim.TLS_SERVER["1.2"]] = {"Enabled": 0}
    repair_run(vm, "bbbbbbbbbbbb")
    assert vm["guest"]["pendingReboot"]["runs"] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]
    repair_run(vm, "bbbbbbbbbbbb", "undo")
    assert vm["guest"]["pendingReboot"]["runs"] == ["aaaaaaaaaaaa"]
    assert diagnosis(vm).reboot_pending == 1

    vm["_emulator"]["boots"] = 1  # what the restart power action records
    assert diagnosis(vm).reboot_pending is None
    # A marker from an earlier boot is ignored, and the next undo (like the script's) removes it.
    assert vm["guest"]["pendingReboot"]["runs"] == ["aaaaaaaaaaaa"]
    repair_run(vm, "aaaaaaaaaaaa", "undo")
    assert vm["guest"]["pendingReboot"] is None


def test_same_boot_allows_a_clock_correction_only() -> None:
    state = guest_sim.load_state({}, NOW)
    state.boot_time = NOW
    for shift, pending in (
        (0, True),
        (c.SAME_BOOT_SECONDS, True),
        (c.SAME_BOOT_SECONDS + 1, False),
        (-600, False),
    ):
        state.pending_reboot = {
            "boot": c.format_time(NOW + timedelta(seconds=shift)),
            "runs": ["aaaaaaaaaaaa"],
        }
        assert bool(guest_sim.pending_reboot_runs(state)) is pending, shift
    state.pending_reboot = {"boot": c.format_time(NOW), "runs": []}
    assert guest_sim.collect(state, 3389, NOW).reboot_pending is None


def test_the_restart_power_action_counts_a_boot(start: Callable[..., Emulator]) -> None:
    emu = start("guest-healthy")
    compute, _ = sdk_clients(emu, polling_interval=0.01)
    compute.virtual_machines.begin_restart(RG, VM).result()
    compute.virtual_machines.begin_restart(RG, VM).result()
    with emu.store.lock:
        vm = emu.vm(RG, VM)
        assert vm is not None
        assert vm["_emulator"]["boots"] == 2


# --- the check and the script --------------------------------------------------------------------


def test_reboot_pending_check_is_a_warning_only_when_flagged() -> None:
    flagged = run_checks(GuestFacts(c.Diagnosis(reboot_pending=1), 3389, NOW), Source.GUEST)
    assert [(f.id, f.severity) for f in flagged] == [("reboot-pending", Severity.WARNING)]
    assert run_checks(GuestFacts(c.Diagnosis(), 3389, NOW), Source.GUEST) == []


def test_flag_fits_the_output_budget_and_round_trips() -> None:
    line = c.render_line(c.GuestReport(1, "diagnose", "2026-01-15T10:00:00Z", c.Diagnosis(reboot_pending=1)))
    assert '"rb":1' in line and c.parse_output(line).diagnosis == c.Diagnosis(reboot_pending=1)
    # The worst case (tests/diagnose) prints null, the widest form of the flag.
    assert len(',"rb":null') > len(',"rb":1')


def _script(name: str) -> str:
    return resources.files("azrdp.guest").joinpath("scripts").joinpath(name).read_text(encoding="ascii")


def test_script_constants_and_calls_match_the_contract() -> None:
    base, repair = _script("azrdp.ps1"), _script("repair.ps1")
    assert f"$PendingRebootPath = '{c.PENDING_REBOOT_PATH}'" in base
    assert f"$SameBootSeconds = {c.SAME_BOOT_SECONDS}" in base
    assert "$d.rb = Invoke-Section -Name 'rb'" in base
    # The marker is trusted only when SYSTEM or Administrators own it (read-only in diagnose).
    read = base[base.index("function Read-PendingReboot") :]
    read = read[: read.index("\n}\n")]
    assert "'S-1-5-18', 'S-1-5-32-544'" in read and not re.search(r"Set-|Remove-|New-Item|Write", read)
    assert "Set-AzrdpPendingReboot -RunId $RunId -Add $true" in repair
    assert "Set-AzrdpPendingReboot -RunId $RunId -Add $false" in repair
    # Only steps in RebootRequired leave the marker.
    assert re.search(r"\$K\.RebootRequired -contains \$done\.id", repair)
