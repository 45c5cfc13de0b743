"""Each broken guest, repaired on the Windows model through the real wire: the plan azrdp makes,
the executor's run, the facts after; then a second plan is empty, and undo (built from the
guest's own records) restores the state exactly."""

from __future__ import annotations

from typing import Any

import pytest
from guest_driver import Guest, ids
from repair_cases import CASE_IDS, CASES, REFUSED, REFUSED_IDS, Case

from azrdp.guest import envelope as ge
from azrdp.guest import plan as gp
from azrdp.model import Severity


def test_healthy_guest_plans_nothing_and_changes_nothing() -> None:
    guest = Guest()
    plan, steps = guest.plan()
    assert steps == [] and plan.steps == ()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_repair_verify_rerun_undo(case: Case) -> None:
    guest = Guest(case.guest, case.port)
    before = guest.collect()
    original = guest.digest(set_aside=False)
    assert set(case.findings) <= ids(guest.findings(before))

    plan, steps = guest.plan(before)
    assert [s.id for s in steps if s.actionable] == list(case.repairs)

    report = guest.execute(plan)
    assert report.run is not None, report.error
    assert [(s.id, s.status) for s in report.run.steps] == [(r, ge.APPLIED) for r in case.repairs]
    assert report.run.state == "applied" and report.run.complete is True
    after = guest.findings(report)
    assert not ids(after) & set(case.findings), after
    assert not [f for f in after if f.severity is Severity.BLOCKER]
    assert len(guest.last_line) <= ge.OUTPUT_BUDGET

    # A second plan finds nothing to do.
    again, steps = guest.plan(run_id="b1b2c3d4e5f6")
    assert again.steps == (), [s.id for s in steps]
    repaired = guest.digest()

    # Undo from the guest's records restores the exact state before; a second undo is refused
    # by its preconditions and changes nothing.
    undo = guest.execute(guest.undo_plan(plan.run_id))
    assert undo.run is not None and undo.run.state == "applied", undo.run
    # (A certificate Windows minted during the run stays on disk, moved aside: never deleted.)
    assert guest.digest(set_aside=False) == original
    assert set(case.findings) <= ids(guest.findings(undo))
    assert repaired != original
    assert guest.records(plan.run_id).records.state == "undone"  # type: ignore[union-attr]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_failing_step_is_rolled_back(case: Case) -> None:
    guest = Guest(case.guest, case.port)
    original = guest.digest(set_aside=False)
    plan, _ = guest.plan(selected={case.repairs[0]})
    last = len(plan.steps[0].ops) - 1
    guest.vm.setdefault("_emulator", {})["failOps"] = [last]  # the step's last op fails
    report = guest.execute(plan)
    assert report.run is not None
    (step,) = report.run.steps
    assert step.status == ge.ROLLED_BACK and step.error, step
    assert guest.digest(set_aside=False) == original
    # What was applied, then rolled back, is on record in the guest, op by op.
    records = guest.records(plan.run_id).records
    assert records is not None and records.complete
    assert {r.status for r in records.ops[:last]} <= {"rolledBack"}
    assert records.ops[last].status == "failed"


def test_failure_in_a_later_step_keeps_earlier_steps_and_restores_its_own() -> None:
    case = next(x for x in CASES if x.name == "everything")
    guest = Guest(case.guest)
    plan, _ = guest.plan()
    listener = next(i for i, s in enumerate(plan.steps) if s.id == "rdp-listener")
    first = sum(len(s.ops) for s in plan.steps[:listener])
    guest.vm["_emulator"] = {"failOps": [first]}
    report = guest.execute(plan)
    assert report.run is not None
    statuses = {s.id: s.status for s in report.run.steps}
    # Its first operation failed: nothing of it changed, so it reports rolled back.
    assert statuses["rdp-listener"] == ge.ROLLED_BACK
    assert statuses["rdp-services"] == ge.APPLIED
    assert all(statuses[s.id] == ge.NOT_RUN for s in plan.steps[listener + 1 :])
    after = ids(guest.findings(report))
    assert "rdp-disabled" in after and "termservice-not-running" not in after


@pytest.mark.parametrize("case", REFUSED, ids=REFUSED_IDS)
def test_refusals_change_nothing_and_explain(case: Case) -> None:
    guest = Guest(case.guest, case.port)
    plan, steps = guest.plan()
    refused = [s for s in steps if s.id in case.repairs]
    assert refused and all(s.refused for s in refused), steps
    assert plan.steps == ()


def test_security_is_not_raised_while_its_prerequisite_is_skipped() -> None:
    case = next(x for x in CASES if x.name == "everything")
    guest = Guest(case.guest)
    _, steps = guest.plan(selected={"rdp-services", "tls12-server", "rdp-listener", "rdp-security-restore"})
    security = next(s for s in steps if s.id == "rdp-security-restore")
    assert security.refused and "rdp-cert-expired" in security.refused


def test_a_step_whose_target_moved_is_refused_and_nothing_of_it_changes() -> None:
    guest = Guest(
        {"registry": {r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server": {"fDenyTSConnections": 1}}}
    )
    plan, _ = guest.plan()
    # Someone turns RDP on between the collection and the executor's run.
    guest.vm["guest"]["registry"][r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server"][
        "fDenyTSConnections"
    ] = 0
    moved = guest.digest()
    report = guest.execute(plan)
    assert report.run is not None
    (step,) = report.run.steps
    assert step.status == ge.REFUSED and "expected" in (step.error or "")
    assert guest.digest() == moved


def test_the_guest_lock_refuses_a_second_run_and_names_the_holder() -> None:
    guest = Guest(
        {"registry": {r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server": {"fDenyTSConnections": 1}}}
    )
    plan, _ = guest.plan()
    guest.vm["guest"]["azrdp"] = {
        "exists": True,
        "lock": {"run": "feedfeedfeed", "until": "2026-01-15T10:30:00Z"},
    }
    report = guest.execute(plan)
    assert report.error_code == "locked" and "feedfeedfeed" in (report.error or "")
    assert report.run is None
    # An expired lock is taken over.
    guest.vm["guest"]["azrdp"]["lock"]["until"] = "2026-01-15T09:00:00Z"
    report = guest.execute(plan)
    assert report.run is not None and report.run.state == "applied"
    assert guest.collect().facts.azrdp.lock_run is None  # type: ignore[union-attr]


def test_every_trigger_is_backed_by_a_finding() -> None:
    """Evidence first: a step is planned only with a finding of its repair present."""
    from azrdp.repairs import get_repair

    for case in (*CASES, *REFUSED):
        guest = Guest(case.guest, case.port)
        _, steps = guest.plan()
        for step in steps:
            spec = get_repair(step.id)
            assert spec is not None and set(step.fixes) <= set(spec.fixes), (case.name, step.id)
            assert step.fixes, (case.name, step.id)


def test_tls_step_says_it_needs_a_reboot_and_the_guest_remembers_it() -> None:
    tls12 = r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\TLS 1.2\Server"
    guest = Guest({"registry": {tls12: {"Enabled": 0}}})
    plan, steps = guest.plan()
    (step,) = steps
    assert step.boot and plan.steps[0].boot
    report = guest.execute(plan)
    assert "reboot-pending" in ids(guest.findings(report))
    runs = report.facts.azrdp.runs  # type: ignore[union-attr]
    assert runs[0].id == plan.run_id and runs[0].reboot is True


def test_plans_never_lower_security() -> None:
    for case in (*CASES, *REFUSED):
        plan, _ = Guest(case.guest, case.port).plan()
        for op in plan.ops:
            if isinstance(op, gp.RegSet) and op.name in (
                "SecurityLayer",
                "UserAuthentication",
                "MinEncryptionLevel",
            ):
                before: Any = op.expect[1] if op.expect else 0
                assert int(op.value[1]) > int(before), (case.name, op)
