"""`azrdp undo` and `azrdp history`: take one run back from its journalled intents; list runs.

    doc = run_undo(parse_targets("web01", resource_group="rg"), "3f9a0c1d2e4b")

Undo works from what the journal says the run *meant* to change, and asks reality whatever the
journal could not confirm: the NSG rule by its name (deleted only if it is still exactly what
azrdp wrote), the guest's records of the run (mode `records`) when the executor's result was
never read, the VM's power state. It restores what was actually applied, in reverse: the guest
first (it needs the VM running), then the NSG rules, then the VM's power state. Only what it
verified taken back is journalled `undone`; anything left is named, with exit code 5 (it changed
since, or was only partly restored) or 1 (it could not be read or reached). Like repair, it holds
the VM's local lock, and a Ctrl-C stops it after the part in flight (within the grace period).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azrdp import journal
from azrdp.engine.check import VmResult
from azrdp.engine.control import INTERRUPTED, Stop, grace_seconds, supervise
from azrdp.engine.diagnose import guest_findings, skip_reason
from azrdp.engine.repair import (
    LOCK_SECONDS,
    RepairOptions,
    _clients_for,
    _guest_error,
    _make_clients,
    _recheck,
    _results_by_step,
    _run_script,
    _usage,
    read_records,
    run_executor,
)
from azrdp.errors import AzrdpError, ExitCode, NotFoundError, most_serious
from azrdp.guest import envelope, scripts
from azrdp.guest import plan as gp
from azrdp.model import SCHEMA_VERSION, Finding, Source, to_doc
from azrdp.targets import Targets, VmRef

if TYPE_CHECKING:
    from azrdp.azure.clients import Clients

# Statuses of the guest part: taken back (or nothing to take back) ...
GUEST_SETTLED = ("restored", "alreadyUndone", "nothingToRestore", "notApplied", "skipped")


def _single_vm(targets: Targets) -> VmRef:
    if len(targets.vms) != 1 or targets.is_fleet:
        raise _usage("undo and history work on one VM.", "Name one VM: `azrdp undo VM -g GROUP --run-id ID`.")
    return targets.vms[0]


def _ref_vm(ref: VmRef, clients: Clients) -> VmResult:
    from azrdp.nsg import FlowQuery

    return VmResult(ref.id(clients.subscription_id), ref.name, ref.resource_group, FlowQuery())


@dataclass
class UndoState:
    """What the undo did so far (read by the document even if the undo is cut short)."""

    control: list[dict[str, Any]] = field(default_factory=list)
    guest: dict[str, Any] = field(default_factory=lambda: {"status": "pending"})
    codes: list[ExitCode] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # what is not taken back, one line each
    report: envelope.GuestReport | None = None
    runs: int = 0

    def leave(self, code: ExitCode, what: str) -> None:
        self.codes.append(code)
        self.left.append(what)


def run_undo(
    targets: Targets,
    run_id: str,
    *,
    port: int = 3389,
    subscription: str | None = None,
    cloud: str | None = None,
    clients: Clients | None = None,
    options: RepairOptions | None = None,
    stop: Stop | None = None,
    grace: float | None = None,
) -> dict[str, Any]:
    """Take back one run: its in-guest changes, the NSG rules it added, the VM start it made."""
    from azrdp.azure.auth import new_run_id
    from azrdp.locks import VmLock

    run_id = journal.validate_run_id(run_id)
    ref = _single_vm(targets)
    journal.ensure_writable()
    grace = grace_seconds() if grace is None else grace
    clients = _make_clients(clients, subscription, cloud, targets.ids)
    options = options or RepairOptions(port=port)
    stop = stop or Stop(options.time_limit)
    vm = _recheck(
        clients.for_subscription(ref.subscription_id) if ref.subscription_id else clients,
        _ref_vm(ref, clients),
        options,
    )
    changes = journal.changes(vm.id, run_id)
    summary = any(e.kind == journal.RUN for e in journal.run_entries(vm.id, run_id))
    state = UndoState()
    undo_run = new_run_id()
    left = stop.left()
    lock = VmLock(
        vm.id,
        vm.name,
        undo_run,
        f"azrdp undo --run-id {run_id}",
        left if left is not None else LOCK_SECONDS,
        f"azrdp history {vm.name} -g {vm.resource_group}",
    )
    with lock:
        journal.record(
            journal.JournalEntry(
                run_id, vm.id, journal.UNDO, {"undoRun": undo_run, "changes": [c.entry_id for c in changes]}
            )
        )
        undo = _Undo(_clients_for(clients, vm), vm, options, run_id, undo_run, changes, state, stop, summary)
        done = supervise(lambda _: undo.run(), [0], 1, stop, grace)
    (outcome,) = done.outcomes
    if isinstance(outcome.error, NotFoundError):
        raise outcome.error
    if outcome.error is not None:
        state.leave(outcome.error.exit_code, outcome.error.message)
    interrupted = stop.requested and stop.reason == INTERRUPTED and (outcome.in_flight or not undo.finished)
    if interrupted:
        state.codes.append(ExitCode.INTERRUPTED)
    findings: list[Finding] = list(vm.findings)
    report = state.report
    if report is not None and report.facts is not None:
        findings = [f for f in vm.findings if f.source is not Source.GUEST] + guest_findings(
            report, options.port
        )
    code = most_serious(state.codes) if state.codes else ExitCode.OK
    return {
        "schemaVersion": SCHEMA_VERSION,
        "command": "undo",
        "runId": run_id,
        "interrupted": interrupted,
        "vms": [
            {
                "id": vm.id,
                "name": vm.name,
                "resourceGroup": vm.resource_group,
                "runId": run_id,
                "undoRunId": undo_run,
                "controlPlane": state.control,
                "guest": state.guest,
                "left": state.left,
                "findings": [to_doc(f) for f in findings],
                "runCommands": state.runs,
                "exitCode": int(code),
            }
        ],
        "summary": {"total": 1, "exitCode": int(code)},
        "unfinished": done.unfinished,
    }


class _Undo:
    def __init__(
        self,
        clients: Clients,
        vm: VmResult,
        options: RepairOptions,
        run_id: str,
        undo_run: str,
        changes: Sequence[journal.Change],
        state: UndoState,
        stop: Stop,
        summary: bool = False,
    ) -> None:
        self.clients = clients
        self.summary = summary  # the journal holds the run's closing summary
        self.vm = vm
        self.options = options
        self.run_id = run_id
        self.undo_run = undo_run
        self.changes = list(changes)
        self.state = state
        self.stop = stop
        self.finished = False

    def run(self) -> None:
        self._guest()
        for change in self.changes:
            if change.kind == "nsg-rule" and not self.stop.requested:
                self._nsg_rule(change)
        for change in self.changes:
            if change.kind == "vm-start" and not self.stop.requested:
                self._power(change)
            elif change.kind in ("vm-redeploy", "vm-reapply") or (
                change.kind == "vm-start" and change.legacy
            ):
                self.state.control.append(
                    {
                        "kind": change.kind,
                        "status": "notUndoable",
                        "detail": "A redeploy or reapply cannot be taken back."
                        if change.kind != "vm-start"
                        else "This start was journalled by an azrdp version that never stopped a VM again.",
                    }
                )
        self.finished = not self.stop.requested

    # -- the guest --------------------------------------------------------------------------

    def _guest(self) -> None:
        state, vm, run_id = self.state, self.vm, self.run_id
        runs = [c for c in self.changes if c.kind == "guest-run"]
        # Without a guest-run intent the executor was never sent: nothing changed in the guest. Only
        # a journal written before intents, cut short before its summary (or none: another machine),
        # cannot say so; then the guest is asked.
        conclusive = self.summary or any(not c.legacy for c in self.changes)
        if not runs and conclusive:
            state.guest = {"status": "skipped", "reason": "The run changed nothing in the guest."}
            return
        change = runs[-1] if runs else None
        if change is not None and change.undone is not None:
            state.guest = {"status": "alreadyUndone", "restored": [], "failed": []}
            return
        if change is not None and change.outcome == journal.FAILED:
            state.guest = {
                "status": "notApplied",
                "reason": f"The guest refused the run before changing anything: {change.result.get('error')}",
            }
            self._mark(change, "notApplied")
            return
        reason = skip_reason(vm)
        if reason:
            state.guest = {"status": "error", "reason": reason}
            state.leave(ExitCode.ERROR, f"the in-guest changes of run {run_id}: {reason}")
            return
        try:
            self._guest_undo(change)
        except AzrdpError as err:
            state.guest = {"status": "error", "reason": err.message}
            state.leave(err.exit_code, f"the in-guest changes of run {run_id}: {err.message}")

    def _guest_undo(self, change: journal.Change | None) -> None:
        state, vm, run_id = self.state, self.vm, self.run_id
        steps_wire: list[Any] = []
        records: dict[int, Mapping[str, Any]] = {}
        if change is not None and change.outcome == journal.DONE and change.result.get("complete"):
            plan = change.details.get("plan") or change.result.get("plan") or {}
            steps_wire = list(plan.get("steps") or ())
            records = {int(r["i"]): r for r in change.result.get("ops") or ()}
        else:
            report = read_records(self.clients, vm, self.options, run_id, self.stop)
            state.runs += 1
            if report.error is not None or report.records is None:
                if report.error_code == "unknown":
                    if change is None and self.changes:
                        state.guest = {
                            "status": "skipped",
                            "reason": f"The guest has no record of run {run_id}: nothing changed there.",
                        }
                        return
                    if change is None:
                        raise NotFoundError(
                            f"Run {run_id} is unknown for VM '{vm.name}'.",
                            "This machine's journal has no entry for it and the guest has no record of it.",
                            fix=f"List the runs with `azrdp history {vm.name} -g {vm.resource_group} "
                            "--guest`.",
                        )
                    # The intent was written, the guest never saw the run: it changed nothing there.
                    state.guest = {
                        "status": "notApplied",
                        "reason": f"The guest has no record of run {run_id}: the in-guest repair never ran.",
                    }
                    self._mark(change, "notApplied")
                    return
                raise _guest_error(report)
            found = report.records
            if found.state == "undone":
                state.guest = {"status": "alreadyUndone", "restored": [], "failed": []}
                self._mark(change, "alreadyUndone")
                return
            if not found.complete:
                raise AzrdpError(
                    f"The records of run {run_id} do not fit one Run Command's output, and this machine's "
                    "journal lacks them: undo refuses to act on part of them.",
                    fix=f"`azrdp history {vm.name} -g {vm.resource_group} --guest` shows the run; its "
                    f"backups are in C:\\ProgramData\\azrdp\\backups\\{run_id} in the guest.",
                )
            steps_wire = gp.steps_from_records(
                [s.id or "" for s in found.steps], [to_doc_record(r) for r in found.ops]
            )
            records = {int(r.index or 0): {"s": r.status, "p": r.prior, "a": r.after} for r in found.ops}
        undo_steps = gp.undo_steps(steps_wire, records, run_id, self.undo_run)
        if not undo_steps:
            state.guest = {"status": "nothingToRestore", "restored": [], "failed": []}
            self._mark(change, "nothingToRestore")
            return
        if self.stop.requested:
            state.guest = {"status": "notStarted", "reason": "Interrupted before the in-guest undo."}
            state.leave(ExitCode.INTERRUPTED, f"the in-guest changes of run {run_id}: not started")
            return
        left = self.stop.left()
        timeout = self.options.timeout if left is None else min(self.options.timeout, left)
        plan = gp.Plan(
            self.undo_run,
            tuple(
                gp.make_step(i, ops, index, run_id=self.undo_run) for i, ops, index in gp.number(undo_steps)
            ),
            gp.deadline_for(timeout),
            undoes=run_id,
        )
        state.guest = {"status": "inFlight", "undoRunId": plan.run_id}
        state.runs += 1
        report, _ = run_executor(self.clients, vm, self.options, plan, self.stop)
        state.report = report
        assert report.run is not None
        results = _results_by_step(plan, report.run)
        restored = [
            step.id for step, r in zip(plan.steps, results, strict=True) if r and r.status == envelope.APPLIED
        ]
        failed = [
            step.id
            for step, r in zip(plan.steps, results, strict=True)
            if not r or r.status != envelope.APPLIED
        ]
        doc: dict[str, Any] = {
            "status": "restored" if restored and not failed else "partial" if restored else "refused",
            "restored": restored,
            "failed": failed,
            "undoRunId": plan.run_id,
            "backupDir": report.run.backup_dir,
        }
        if failed:
            doc["errors"] = [r.error for r in results if r and r.error]
            state.leave(
                ExitCode.NOT_VERIFIED,
                f"the in-guest steps {', '.join(failed)} of run {run_id}: changed since, or could not be "
                "restored",
            )
        else:
            self._mark(change, "restored")
        state.guest = doc

    def _mark(self, change: journal.Change | None, status: str) -> None:
        """Journal one change as verifiably taken back (or never applied)."""
        if change is None:
            return
        journal.record(
            journal.JournalEntry(
                self.run_id,
                self.vm.id,
                journal.UNDONE,
                {"entry": change.entry_id, "status": status, "undoRun": self.undo_run},
            )
        )

    # -- NSG rules ----------------------------------------------------------------------------

    def _nsg_rule(self, change: journal.Change) -> None:
        from azrdp.azure.network import remove_rule

        shared = _shared_with(change.intent, self.vm.id)
        if change.undone is not None:
            self.state.control.append(
                {"kind": change.kind, "rule": change.details.get("rule"), "status": "alreadyUndone"} | shared
            )
            return
        entry = change.intent
        own = entry.run_id == self.run_id and entry.vm_id.lower() == self.vm.id.lower()
        try:
            outcome = remove_rule(
                self.clients,
                entry,
                for_run=None if own else (self.vm.id, self.run_id),
                waiter=self.stop.waiter(),
            )
        except AzrdpError as err:
            self.state.control.append(
                {
                    "kind": change.kind,
                    "nsg": entry.details.get("nsg"),
                    "rule": entry.details.get("rule"),
                    "status": "error",
                    "detail": err.message,
                }
                | shared
            )
            self.state.leave(err.exit_code, f"NSG rule {entry.details.get('rule')}: {err.message}")
            return
        self.state.control.append(
            {
                "kind": change.kind,
                "nsg": outcome.nsg_id,
                "rule": outcome.rule,
                "status": outcome.status,
                "detail": outcome.detail,
            }
            | shared
        )
        if outcome.status == "modified":
            self.state.leave(ExitCode.NOT_VERIFIED, f"NSG rule {outcome.rule}: {outcome.detail}")

    # -- the VM's power state -----------------------------------------------------------------

    def _power(self, change: journal.Change) -> None:
        from azrdp.azure.waits import stop_vm

        vm, state = self.vm, self.state
        before = str(change.details.get("powerStateBefore") or "").lower()
        now = (vm.facts.power_state if vm.facts else "") or ""
        item: dict[str, Any] = {"kind": change.kind, "powerStateBefore": before or None, "powerState": now}
        state.control.append(item)
        if change.undone is not None:
            item["status"] = "alreadyUndone"
            return
        if before not in ("deallocated", "stopped"):
            item.update(
                status="nothingToRestore", detail=f"The VM was {before or 'in an unknown state'} before."
            )
            self._mark(change, "nothingToRestore")
            return
        if now == before:
            item.update(status="alreadyStopped", detail=f"The VM is {now} already.")
            self._mark(change, "alreadyStopped")
            return
        if state.guest.get("status") not in GUEST_SETTLED:
            item.update(
                status="leftRunning",
                detail="The in-guest changes are not all taken back: the VM stays running so that a rerun "
                "of undo can restore them.",
            )
            state.leave(ExitCode.NOT_VERIFIED, f"VM {vm.name}: left running ({now}), was {before}")
            return
        if now not in ("running", "starting"):
            item.update(status="left", detail=f"The VM is {now or 'in an unknown state'} now; left alone.")
            state.leave(ExitCode.NOT_VERIFIED, f"VM {vm.name}: {now or 'unknown'} now, was {before}")
            return
        try:
            after = stop_vm(
                self.clients, vm.resource_group, vm.name, before == "deallocated", self.stop.waiter()
            )
        except AzrdpError as err:
            item.update(status="error", detail=err.message)
            state.leave(err.exit_code, f"VM {vm.name}: {err.message}")
            return
        item["powerState"] = after
        if after == before:
            item["status"] = before
            self._mark(change, before)
        else:
            item.update(
                status="left", detail=f"The VM reads {after or 'unknown'} after the {before} request."
            )
            state.leave(ExitCode.NOT_VERIFIED, f"VM {vm.name}: {after or 'unknown'}, expected {before}")


def to_doc_record(record: envelope.OpRecord) -> dict[str, Any]:
    return {"i": record.index, "g": record.step, "op": record.op, "s": record.status}


def _shared_with(entry: journal.JournalEntry, vm_id: str) -> dict[str, Any]:
    """For a rule one fleet run shared between VMs: who else loses it when it is deleted."""
    members = entry.details.get("sharedBy")
    others = [
        {"name": str(m.get("name", "")), "runId": str(m.get("runId", ""))}
        for m in (members if isinstance(members, list) else ())
        if isinstance(m, Mapping) and str(m.get("vmId", "")).lower() != vm_id.lower()
    ]
    if not others:
        return {}
    names = ", ".join(o["name"] for o in others[:5]) + (
        f" and {len(others) - 5} more" if len(others) > 5 else ""
    )
    return {
        "sharedWith": others,
        "note": f"One rule shared with {names} (same repair run): deleting it takes their access from "
        f"{entry.details.get('source')} away too.",
    }


def run_history(
    targets: Targets,
    *,
    guest: bool = False,
    subscription: str | None = None,
    cloud: str | None = None,
    clients: Clients | None = None,
) -> dict[str, Any]:
    """The runs of one VM from the local journal, and with `guest` from the records in the VM."""
    ref = _single_vm(targets)
    clients = _make_clients(clients, subscription, cloud, targets.ids)
    vm_id = ref.id(clients.subscription_id)
    doc: dict[str, Any] = {
        "id": vm_id,
        "name": ref.name,
        "resourceGroup": ref.resource_group,
        "runs": journal.runs(vm_id),
        "guestRuns": None,
    }
    if guest:
        vm = _recheck(clients, _ref_vm(ref, clients), RepairOptions())
        reason = skip_reason(vm)
        if reason:
            doc["guestRuns"] = {"error": reason}
        else:
            stdout, stderr, _ = _run_script(
                clients, vm, scripts.history_parameters(), RepairOptions(), scripts.script_lines("history")
            )
            report = envelope.parse_output(stdout, stderr)
            if report.error is not None:
                raise _guest_error(report)
            doc["guestRuns"] = [
                {
                    "runId": h.run_id,
                    "time": h.time,
                    "state": h.state,
                    "undoes": h.undoes or None,
                    "steps": list(h.steps),
                }
                for h in report.history
            ]
    return {
        "schemaVersion": SCHEMA_VERSION,
        "command": "history",
        "vms": [doc],
        "summary": {"total": 1, "exitCode": 0},
    }
