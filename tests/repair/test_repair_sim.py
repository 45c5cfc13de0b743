"""The simulated guest's repair / undo against the guest checks: repair -> finding gone, undo ->
the exact state before, a failing step -> rolled back, a second run -> nothing to do."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from repair_cases import CASE_IDS, CASES, REFUSED, REFUSED_IDS, Case

from azrdp.checks import run_checks
from azrdp.checks.guest import GuestFacts
from azrdp.emulator import guest_repair, guest_sim
from azrdp.guest import contract as c
from azrdp.model import Severity, Source
from azrdp.repairs import RepairFacts, Where, plan_repairs
from azrdp.repairs import guest as rg
from azrdp.repairs.outcome import (
    APPLIED,
    PLANNED,
    ROLLED_BACK,
    parse_repair_output,
)
from azrdp.repairs.outcome import (
    REFUSED as REFUSED_STATUS,
)

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
RUN_A = "a1b2c3d4e5f6"
RUN_B = "0123456789ab"


def findings_of(d: c.Diagnosis, port: int) -> list[Any]:
    return run_checks(GuestFacts(d, port, NOW), Source.GUEST)


def state_of(vm: dict[str, Any]) -> guest_sim.GuestState:
    return guest_sim.load_state(vm["guest"], NOW)


def params(run_id: str, port: int = 3389, **extra: str) -> dict[str, str]:
    return {"mode": "repair", "rdpport": str(port), "runid": run_id, **extra}


def plan_for(case: Case, vm: dict[str, Any]) -> list[Any]:
    d = guest_sim.collect(state_of(vm), case.port, NOW)
    report = c.GuestReport(1, "diagnose", c.format_time(NOW), d)
    facts = RepairFacts(findings=tuple(findings_of(d, case.port)), guest=report, port=case.port)
    return plan_repairs(facts, where=Where.GUEST)


def test_healthy_guest_plans_nothing_and_changes_nothing() -> None:
    vm: dict[str, Any] = {"guest": {}}
    before = guest_sim.dump_state(state_of(vm))
    assert plan_for(Case("healthy", {}, (), ()), vm) == []
    report = guest_repair.repair(vm, state_of(vm), params(RUN_A), NOW)
    assert report.repair is not None and report.repair.steps == () and report.repair.backup_dir is None
    assert guest_sim.dump_state(state_of(vm)) == before
    assert "guestBackups" not in vm.get("_emulator", {}) or not vm["_emulator"]["guestBackups"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_repair_verify_rerun_undo(case: Case) -> None:
    vm: dict[str, Any] = {"guest": case.guest}
    original = guest_sim.dump_state(state_of(vm))
    before = findings_of(guest_sim.collect(state_of(vm), case.port, NOW), case.port)
    assert set(case.findings) <= {f.id for f in before}

    steps = plan_for(case, vm)
    assert [s.id for s in steps if s.actionable] == list(case.repairs)

    report = guest_repair.repair(vm, state_of(vm), params(RUN_A, case.port), NOW)
    assert report.repair is not None
    assert [(s.id, s.status) for s in report.repair.steps] == [(r, APPLIED) for r in case.repairs]
    assert report.diagnosis is not None
    # The diagnosis before travels as a delta when it fits the output budget (not on a VM where
    # nearly everything was broken).
    assert (report.before is not None) == (case.name != "everything")
    if report.before is not None:
        assert report.before == guest_sim.collect(guest_sim.load_state(case.guest, NOW), case.port, NOW)
    after = findings_of(report.diagnosis, case.port)
    assert not {f.id for f in after} & set(case.findings), after
    assert not [f for f in after if f.severity is Severity.BLOCKER]
    repaired = guest_sim.dump_state(state_of(vm))

    # The marker line round-trips through the contract decoder and fits the output budget.
    line = guest_repair.render_report(report)
    assert len(line) <= c.OUTPUT_BUDGET
    parsed = parse_repair_output(line + "\n")
    assert parsed.repair == report.repair
    assert parsed.before == report.before and parsed.diagnosis == report.diagnosis

    # A second run finds nothing to do and changes nothing.
    again = guest_repair.repair(vm, state_of(vm), params(RUN_B, case.port), NOW)
    assert again.repair is not None and again.repair.steps == ()
    assert guest_sim.dump_state(state_of(vm)) == repaired
    assert plan_for(case, vm) == []

    # Undo restores the exact state before, and undoing twice changes nothing more.
    undone = guest_repair.undo(vm, state_of(vm), {"runid": RUN_A, "rdpport": str(case.port)}, NOW)
    assert undone.repair is not None
    assert sorted(s.id for s in undone.repair.steps) == sorted(case.repairs)
    assert guest_sim.dump_state(state_of(vm)) == original
    assert set(case.findings) <= {f.id for f in findings_of(undone.diagnosis, case.port)}  # type: ignore[arg-type]
    twice = guest_repair.undo(vm, state_of(vm), {"runid": RUN_A, "rdpport": str(case.port)}, NOW)
    assert twice.repair is not None and twice.repair.steps == ()
    assert guest_sim.dump_state(state_of(vm)) == original


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_failing_step_is_rolled_back(case: Case) -> None:
    vm: dict[str, Any] = {"guest": case.guest}
    original = guest_sim.dump_state(state_of(vm))
    first = case.repairs[0]
    vm["_emulator"] = {"repairFaults": {first: 1}}
    report = guest_repair.repair(vm, state_of(vm), params(RUN_A, case.port, only=first), NOW)
    assert report.repair is not None
    (step,) = report.repair.steps
    assert step.status == ROLLED_BACK and step.error
    assert guest_sim.dump_state(state_of(vm)) == original
    # The backup of the change that was made exists and names what was restored.
    manifest = vm["_emulator"]["guestBackups"][RUN_A]
    assert manifest["steps"][0]["items"], "the backup was written before the change"


def test_failure_in_a_later_step_keeps_earlier_steps_and_restores_its_own() -> None:
    case = next(x for x in CASES if x.name == "everything")
    vm: dict[str, Any] = {"guest": case.guest, "_emulator": {"repairFaults": {"rdp-listener": 1}}}
    report = guest_repair.repair(vm, state_of(vm), params(RUN_A), NOW)
    assert report.repair is not None
    statuses = {s.id: s.status for s in report.repair.steps}
    assert statuses["rdp-listener"] == ROLLED_BACK
    assert statuses["rdp-services"] == APPLIED
    after = {f.id for f in findings_of(report.diagnosis, 3389)}  # type: ignore[arg-type]
    assert "rdp-disabled" in after and "termservice-not-running" not in after
    guest_repair.undo(vm, state_of(vm), {"runid": RUN_A}, NOW)
    assert guest_sim.dump_state(state_of(vm)) == guest_sim.dump_state(guest_sim.load_state(case.guest, NOW))


@pytest.mark.parametrize("case", REFUSED, ids=REFUSED_IDS)
def test_refusals_change_nothing_and_explain(case: Case) -> None:
    vm: dict[str, Any] = {"guest": case.guest}
    original = guest_sim.dump_state(state_of(vm))
    steps = plan_for(case, vm)
    refused = [s for s in steps if s.id in case.repairs]
    assert refused and all(s.refused for s in refused), steps
    report = guest_repair.repair(vm, state_of(vm), params(RUN_A, case.port), NOW)
    assert report.repair is not None
    assert {s.id: s.status for s in report.repair.steps} == {r: REFUSED_STATUS for r in case.repairs}
    assert guest_sim.dump_state(state_of(vm)) == original


def test_dry_run_plans_without_changing() -> None:
    case = next(x for x in CASES if x.name == "everything")
    vm: dict[str, Any] = {"guest": case.guest}
    original = guest_sim.dump_state(state_of(vm))
    report = guest_repair.repair(vm, state_of(vm), params(RUN_A, dryrun="1"), NOW)
    assert report.repair is not None and report.repair.dry_run is True
    assert [s.id for s in report.repair.steps] == list(case.repairs)
    assert {s.status for s in report.repair.steps} == {PLANNED}
    assert guest_sim.dump_state(state_of(vm)) == original
    assert "guestBackups" not in vm.get("_emulator", {})


def test_security_is_not_raised_while_its_prerequisite_is_skipped() -> None:
    case = next(x for x in CASES if x.name == "everything")
    vm: dict[str, Any] = {"guest": case.guest}
    report = guest_repair.repair(vm, state_of(vm), params(RUN_A, skip="rdp-cert-renew"), NOW)
    assert report.repair is not None
    statuses = {s.id: s.status for s in report.repair.steps}
    assert statuses["rdp-security-restore"] == REFUSED_STATUS
    assert "rdp-cert-renew" not in statuses


def test_triggers_never_lower_security() -> None:
    for case in (*CASES, *REFUSED):
        d = guest_sim.collect(guest_sim.load_state(case.guest, NOW), case.port, NOW)
        for change in rg.trigger_security(d, NOW).changes:
            assert int(change.after) > int(change.before)


def test_every_trigger_is_backed_by_a_finding() -> None:
    """Evidence first: a trigger that fires always has a finding of its repair present."""
    from azrdp.repairs import get_repair

    for case in (*CASES, *REFUSED):
        d = guest_sim.collect(guest_sim.load_state(case.guest, NOW), case.port, NOW)
        present = {f.id for f in findings_of(d, case.port)}
        for repair_id in rg.GUEST_ORDER:
            if rg.evaluate(repair_id, d, NOW, case.port):
                spec = get_repair(repair_id)
                assert spec is not None and present & set(spec.fixes), (case.name, repair_id)


def test_a_deleted_tcp_rule_is_replaced_by_azrdps_own_rule_not_a_fake_builtin() -> None:
    vm: dict[str, Any] = {"guest": {"firewall": {"rules": {"RemoteDesktop-UserMode-In-TCP": None}}}}
    report = guest_repair.repair(vm, state_of(vm), params(RUN_A), NOW)
    assert report.repair is not None and [s.status for s in report.repair.steps] == [APPLIED]
    names = [r.name for r in state_of(vm).firewall_rules]
    assert "azrdp-RDP-3389" in names and "RemoteDesktop-UserMode-In-TCP" not in names
    assert report.diagnosis is not None
    assert "firewall-rule-disabled" not in {f.id for f in findings_of(report.diagnosis, 3389)}


def test_tls_step_says_it_needs_a_reboot() -> None:
    vm: dict[str, Any] = {"guest": {"registry": {rg_tls(): {"Enabled": 0}}}}
    report = guest_repair.repair(vm, state_of(vm), params(RUN_A), NOW)
    assert report.repair is not None
    (step,) = report.repair.steps
    assert (step.id, step.status, step.reboot) == ("tls12-server", APPLIED, True)
    undo = guest_repair.undo(vm, state_of(vm), {"mode": "undo", "runid": RUN_A}, NOW)
    assert undo.repair is not None and [s.reboot for s in undo.repair.steps] == [True]


def rg_tls() -> str:
    return guest_sim.TLS_SERVER["1.2"]


def test_guest_change_texts_fit_one_byte_per_character() -> None:
    vm: dict[str, Any] = {"guest": {"registry": {guest_sim.TS: {"fDenyTSConnections": 1}}}}
    report = guest_repair.repair(vm, state_of(vm), params(RUN_A, dryrun="1"), NOW)
    assert report.repair is not None
    (text,) = report.repair.steps[0].changes
    assert text == "Terminal Server fDenyTSConnections: 1 to 0"
