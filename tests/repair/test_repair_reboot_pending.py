"""A SCHANNEL repair is remembered in the guest: the executor's run record (run.json) holds the
boot it ran in and that it changed something Windows reads only at boot. Diagnose before the VM
restarts warns `reboot-pending` instead of calling TLS healthy from the registry; a restart (the
emulator's `restart` power action) or undo of that run clears it. The decision is azrdp's
(checks/guest_view.py), from the collector's raw run list and LastBootUpTime."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from fixtures_emulator import sdk_clients
from typer.testing import CliRunner

from azrdp.checks import run_checks
from azrdp.checks.guest import GuestFacts
from azrdp.checks.guest_view import SAME_BOOT_SECONDS, TRUSTED_OWNERS
from azrdp.cli.app import app
from azrdp.emulator import Emulator
from azrdp.emulator.guest_scenarios import TLS_SERVER
from azrdp.guest import envelope as ge
from azrdp.guest import facts as gf
from azrdp.guest import scripts
from azrdp.guest.wire import wire_keys
from azrdp.model import Severity, Source

RG, VM = "rg-rdp", "vm-rdp01"
NOW = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)
TLS_BROKEN = {"registry": {TLS_SERVER["1.2"]: {"Enabled": 0, "DisabledByDefault": 1}}}


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


# --- through the guest driver (the model, without a server) ----------------------------------------


def test_the_run_record_holds_the_boot_and_each_run_of_that_boot() -> None:
    from guest_driver import Guest, ids

    guest = Guest(TLS_BROKEN)
    first, _ = guest.plan(run_id="aaaaaaaaaaaa")
    report = guest.execute(first)
    assert report.facts is not None and report.facts.os is not None
    (run,) = report.facts.azrdp.runs  # type: ignore[union-attr]
    assert run.id == "aaaaaaaaaaaa" and run.reboot is True and run.boot == report.facts.os.boot
    assert "reboot-pending" in ids(guest.findings(report))

    # Broken again in the same boot (a baseline re-applied it) and repaired again: both runs wait.
    guest.vm["guest"]["registry"][TLS_SERVER["1.2"]] = {"Enabled": 0}
    second, _ = guest.plan(run_id="bbbbbbbbbbbb")
    guest.execute(second)
    pending = [f for f in guest.findings() if f.id == "reboot-pending"]
    assert pending and pending[0].details["runs"] == ["bbbbbbbbbbbb", "aaaaaaaaaaaa"]

    # Undo of the second run takes it out; the first still waits.
    guest.execute(guest.undo_plan("bbbbbbbbbbbb", undo_run="cccccccccccc"))
    pending = [f for f in guest.findings() if f.id == "reboot-pending"]
    assert pending and pending[0].details["runs"] == ["aaaaaaaaaaaa"]

    # A restart (what the power action records) ends it: the runs belong to an earlier boot.
    guest.vm["_emulator"]["boots"] = 1
    assert "reboot-pending" not in ids(guest.findings())


def facts_with(boot: str, runs: list[gf.RunFacts], owner: str = "S-1-5-18") -> GuestFacts:
    facts = gf.Facts(os=gf.OsFacts(boot=boot), azrdp=gf.AzrdpFacts(owner=owner, runs=tuple(runs)))
    return GuestFacts(facts, 3389, NOW)


def test_same_boot_allows_a_clock_correction_only() -> None:
    boot = gf.format_time(NOW)
    for shift, pending in (
        (0, True),
        (SAME_BOOT_SECONDS, True),
        (SAME_BOOT_SECONDS + 1, False),
        (-600, False),
    ):
        run = gf.RunFacts(
            "aaaaaaaaaaaa", boot=gf.format_time(NOW + timedelta(seconds=shift)), state="applied", reboot=True
        )
        assert bool(facts_with(boot, [run]).reboot_pending()) is pending, shift


def test_only_runs_that_need_a_boot_and_still_stand_count() -> None:
    boot = gf.format_time(NOW)
    for state, reboot, pending in (
        ("applied", True, True),
        ("partial", True, True),
        ("undone", True, False),
        ("refused", True, False),
        ("applied", False, False),
    ):
        run = gf.RunFacts("aaaaaaaaaaaa", boot=boot, state=state, reboot=reboot)
        assert bool(facts_with(boot, [run]).reboot_pending()) is pending, (state, reboot)


def test_the_record_is_trusted_only_when_system_or_administrators_own_the_folder() -> None:
    boot = gf.format_time(NOW)
    run = gf.RunFacts("aaaaaaaaaaaa", boot=boot, state="applied", reboot=True)
    assert set(TRUSTED_OWNERS) == {"S-1-5-18", "S-1-5-32-544"}
    for owner in TRUSTED_OWNERS:
        assert facts_with(boot, [run], owner).reboot_pending() == ["aaaaaaaaaaaa"]
    assert facts_with(boot, [run], "S-1-5-21-1-2-3-1001").reboot_pending() == []


def test_the_restart_power_action_counts_a_boot(start: Callable[..., Emulator]) -> None:
    emu = start("guest-healthy")
    compute, _ = sdk_clients(emu, polling_interval=0.01)
    compute.virtual_machines.begin_restart(RG, VM).result()
    compute.virtual_machines.begin_restart(RG, VM).result()
    with emu.store.lock:
        vm = emu.vm(RG, VM)
        assert vm is not None
        assert vm["_emulator"]["boots"] == 2


# --- the check and the scripts -------------------------------------------------------------------


def test_reboot_pending_check_is_a_warning_only_when_flagged() -> None:
    boot = gf.format_time(NOW)
    run = gf.RunFacts("aaaaaaaaaaaa", boot=boot, state="applied", reboot=True)
    flagged = [f for f in run_checks(facts_with(boot, [run]), Source.GUEST) if f.id == "reboot-pending"]
    assert [(f.id, f.severity) for f in flagged] == [("reboot-pending", Severity.WARNING)]
    quiet = run_checks(facts_with(boot, []), Source.GUEST)
    assert "reboot-pending" not in {f.id for f in quiet}


def test_scripts_record_the_boot_and_the_flag_and_the_collector_reads_them() -> None:
    executor = scripts.executor_text()
    collector = scripts.collector_text()
    # The executor writes run.json with the boot it ran in and rb = a boot-time step applied.
    assert "LastBootUpTime" in collector
    assert "$run.rb = $atBoot" in executor
    assert "elseif ([int]$step.b -eq 1) { $atBoot = $true }" in executor
    # The collector reports the runs raw (id, time, boot, state, rb, undoes); azrdp decides.
    assert {"id", "t", "boot", "st", "rb", "u"} <= wire_keys(gf.RunFacts)
    assert ge.MODES == ("collect", "execute", "records", "history")
