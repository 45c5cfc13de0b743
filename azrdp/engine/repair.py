"""`azrdp repair`, `azrdp undo`, `azrdp history`: plan, confirm, apply with backups, verify.

    result = run_repair(parse_targets("web01", resource_group="rg"), RepairOptions(), confirm=None)
    result.to_doc(); result.exit_code

Per VM: the control-plane check (in bulk for fleets) -> the agent must be Ready for anything in the
guest (else stop with guidance, no Run Command) -> the guest's facts (the collector) -> the plan,
made here in Python as primitive operations -> confirm -> apply (the executor, which ends by
collecting the facts after) -> verify that the findings each step targeted are gone.

Run Commands per VM: two for a repair (the collector, then the executor), one when the facts of a
diagnose that ran moments before are handed in (`prior`: the executor's preconditions refuse any
step whose target moved since), one for --dry-run (the collector; nothing changes). Undo is one
(the executor with the inverse plan) when the local journal holds what the run recorded, two when
it must first read the records from the guest. Fleets run with bounded concurrency and one result
per VM. No typer, no rich: the CLI, the runbook and the Python API share this module.

Every change is journalled as an intent before it is made and confirmed after (azrdp.journal), and
one VM at a time per machine is changed (azrdp.locks; the guest has its own lock). One VM's error
is that VM's `error`, never the fleet's: the document lists every VM and every change made on it.
A Ctrl-C stops new work, gives the steps in flight a grace period, and returns the document with
what changed and what is still in flight (azrdp.engine.control); `--timeout` bounds every wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from azrdp import journal
from azrdp.engine import Observer, Progress, ignore
from azrdp.engine.check import UNKNOWN_FINDINGS, CheckOptions, VmResult, run_check
from azrdp.engine.control import (
    INTERRUPTED,
    LATER,
    TIMED_OUT,
    Later,
    Ledger,
    LedgerItem,
    Stop,
    Supervisor,
    grace_seconds,
    supervise,
    unexpected,
)
from azrdp.engine.diagnose import (
    DEFAULT_GUEST_CONCURRENCY,
    DiagnoseVmResult,
    GuestOutcome,
    guest_findings,
    merge,
    skip_reason,
)
from azrdp.errors import (
    AzrdpError,
    AzureError,
    ExitCode,
    GuestError,
    Interrupted,
    most_serious,
    refused,
)
from azrdp.guest import envelope, scripts
from azrdp.guest import facts as gf
from azrdp.guest import plan as gp
from azrdp.model import SCHEMA_VERSION, Finding, Severity, Source, to_doc
from azrdp.repairs import RepairFacts, RepairStep, Where, all_repairs, plan_repairs, selected
from azrdp.targets import Targets, VmRef

if TYPE_CHECKING:
    from azrdp.azure.clients import Clients
    from azrdp.locks import VmLock

# Statuses of a step in the result document.
PLANNED, APPLIED, REFUSED, DECLINED = "planned", "applied", "refused", "declined"
ROLLED_BACK, FAILED, NOT_RUN = "rolledBack", "failed", "notRun"
UNCONFIRMED = "unconfirmed"  # sent, outcome unknown (interrupted, stopped waiting, unreadable answer)
# The journal's change kind behind each step (which intent a step in flight left unconfirmed).
CHANGE_KIND = {
    "vm-start": "vm-start",
    "nsg-allow-rdp": "nsg-rule",
    "redeploy": "vm-redeploy",
    "reapply": "vm-reapply",
}

Confirm = Callable[[Sequence["VmRepair"]], bool]
LOCK_SECONDS = 4 * 3600.0  # how long a repair expects to hold a VM without --timeout (the lock says so)
# What a VM's repair ended as (besides "error"), counted in the summary.
REPAIR_STATUSES = (
    "repaired",
    "healthy",
    "planned",
    "blocked",
    "notVerified",
    "skipped",
    "unknown",
    "interrupted",
)


@dataclass(frozen=True)
class RepairOptions:
    port: int = 3389
    source_ip: str | None = None
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    dry_run: bool = False
    broken_only: bool = False
    concurrency: int = DEFAULT_GUEST_CONCURRENCY
    wait_timeout: float = 300.0
    timeout: float = 900.0  # one Run Command's wait
    debug: bool = False
    time_limit: float | None = None  # --timeout: the whole command, every wait in it (None: each its own)

    @property
    def guest_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in selected(self.only, self.skip) if s.where is Where.GUEST)

    @property
    def check_options(self) -> CheckOptions:
        return CheckOptions(port=self.port, source_ip=self.source_ip)


def validate_ids(only: Sequence[str], skip: Sequence[str]) -> None:
    known = {s.id for s in all_repairs()}
    for repair_id in [*only, *skip]:
        if repair_id not in known:
            raise _usage(
                f"{repair_id!r} is not a repair.",
                f"Use one of: {', '.join(sorted(known))} (see `azrdp checks list`).",
            )
    both = set(only) & set(skip)
    if both:
        raise _usage(f"{sorted(both)[0]!r} is both in --only and --skip.", "Name each repair once.")


def _usage(what: str, fix: str) -> AzrdpError:
    from azrdp.errors import UsageError

    return UsageError(what, fix=fix)


@dataclass
class StepResult:
    step: RepairStep
    status: str = PLANNED
    verified: bool | None = None
    error: str | None = None
    done: list[str] = field(default_factory=list)  # what was actually changed, one line each
    # What the executor reported per operation (status and error), in the step's order.
    op_results: list[envelope.OpResult | None] = field(default_factory=list)

    @property
    def reboot_required(self) -> bool:
        """Applied, but only a restart of the VM makes it real (and provable)."""
        return self.status == APPLIED and self.step.boot

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.step.id,
            "title": self.step.title,
            "where": self.step.where.value,
            "fixes": list(self.step.fixes),
            "risk": self.step.risk.value,
            "changes": list(self.step.changes),
            "backup": self.step.backup,
            "notes": list(self.step.notes),
            "refused": self.step.refused,
            "status": self.status,
            "applied": self.status == APPLIED,
            "verified": self.verified,
            "rebootRequired": self.reboot_required,
            "done": list(self.done),
            "error": self.error,
            "operations": [
                {
                    "kind": op.KIND,
                    "target": op.target(),
                    "before": op.before(),
                    "after": op.after(),
                    "status": result.status if result is not None else None,
                    "error": result.error if result is not None else None,
                }
                for op, result in zip(
                    self.step.ops,
                    self.op_results or [None] * len(self.step.ops),
                    strict=True,
                )
            ],
        }


@dataclass
class VmRepair:
    vm: DiagnoseVmResult
    run_id: str
    dry_run: bool = False
    steps: list[StepResult] = field(default_factory=list)
    after: list[Finding] | None = None  # all findings after the repair (None: nothing was re-read)
    backup_dir: str | None = None
    run_commands: int = 0
    declined: bool = False
    guest_before_known: bool = True
    error: AzrdpError | None = None
    notes: list[str] = field(default_factory=list)
    guest_after: envelope.GuestReport | None = None  # the executor's report (facts after)
    guest_plan: gp.Plan | None = None  # what the executor was given
    reused: bool = False  # planned on the facts of a diagnose that had just run
    guest_blocked: str = ""  # why in-guest repairs could not run (agent not Ready ...)
    skipped: str = ""  # why the VM was left out of the run (--broken-only and nothing broken)
    stopped: str = ""  # INTERRUPTED or TIMED_OUT when the VM's work stopped before its end
    in_flight: bool = False  # its work was still running when the document was made
    changes: list[LedgerItem] = field(default_factory=list)  # what the journal holds for this run

    @property
    def unconfirmed(self) -> list[LedgerItem]:
        return [c for c in self.changes if c.status == journal.UNCONFIRMED]

    @property
    def settle(self) -> list[str]:
        """The commands that show and take back what this run changed, when it did not end cleanly."""
        if not self.changes or not (self.stopped or self.unconfirmed or self.error is not None):
            return []
        target = f"{self.vm.name} -g {self.vm.resource_group}"
        out = []
        if any(c.kind == "guest-run" for c in self.unconfirmed) or self.in_flight:
            out.append(f"azrdp history {target} --guest")
        out.append(f"azrdp undo {target} --run-id {self.run_id}")
        return out

    @property
    def actionable(self) -> list[StepResult]:
        return [s for s in self.steps if s.step.actionable]

    @property
    def applied(self) -> bool:
        return any(s.status == APPLIED for s in self.steps)

    @property
    def changed(self) -> list[str]:
        return [line for s in self.steps for line in s.done]

    @property
    def remaining(self) -> list[Finding]:
        return self.after if self.after is not None else list(self.vm.findings)

    @property
    def verified(self) -> bool | None:
        """True only when every applied step is proven; a step waiting for a reboot is not (exit 5)."""
        results = [s.verified for s in self.steps if s.status == APPLIED]
        return None if not results else all(r is True for r in results)

    @property
    def reboot_required(self) -> bool:
        return any(s.reboot_required for s in self.steps)

    @property
    def error_or_guest_error(self) -> AzrdpError | None:
        """The repair's own error, else the check's (the VM or its NIC could not be read), else
        the guest diagnosis's."""
        if self.error is not None:
            return self.error
        if self.vm.error is not None:
            return self.vm.error
        guest = self.vm.guest
        return guest.error if guest is not None and guest.status == "error" else None

    @property
    def unknown(self) -> bool:
        """Not every resource on the RDP path could be read: "repaired" or "healthy" would be a guess."""
        return any(f.id in UNKNOWN_FINDINGS for f in self.remaining)

    @property
    def exit_code(self) -> ExitCode:
        if self.stopped == INTERRUPTED:
            return ExitCode.INTERRUPTED
        err = self.error_or_guest_error
        if err is not None and not self.applied:
            return err.exit_code
        if any(s.status in (ROLLED_BACK, FAILED, UNCONFIRMED) for s in self.steps) or self.verified is False:
            return ExitCode.NOT_VERIFIED
        if err is not None:
            return ExitCode.NOT_VERIFIED  # applied, then the verification could not be read
        if (self.dry_run or self.declined) and self.actionable:
            return ExitCode.BLOCKERS
        if self.guest_blocked or any(f.severity is Severity.BLOCKER for f in self.remaining):
            return ExitCode.BLOCKERS
        return ExitCode.ERROR if self.unknown else ExitCode.OK

    @property
    def suggestions(self) -> list[dict[str, Any]]:
        present = {f.id for f in self.remaining}
        planned = {s.step.id for s in self.steps}
        out = []
        for spec in all_repairs():
            if spec.suggestion_only and spec.id not in planned and present & set(spec.fixes):
                out.append(
                    {
                        "id": spec.id,
                        "title": spec.title,
                        "fixes": sorted(present & set(spec.fixes)),
                        "how": f"azrdp repair {self.vm.name} -g {self.vm.resource_group} --only {spec.id}",
                        "changes": spec.changes,
                    }
                )
        return out

    def to_doc(self) -> dict[str, Any]:
        doc = self.vm.to_doc()
        err = self.error_or_guest_error
        if self.error is not None:
            doc["error"] = {"code": self.error.code, "message": self.error.message, "fix": self.error.fix}
        doc.update(
            {
                "runId": self.run_id,
                "dryRun": self.dry_run,
                "declined": self.declined,
                "plan": [s.to_doc() for s in self.steps],
                "repairs": [s.to_doc() for s in self.steps if s.status != PLANNED or not self.dry_run],
                "applied": self.applied,
                "verified": self.verified,
                "rebootRequired": self.reboot_required,
                "changed": self.changed,
                "remainingFindings": [to_doc(f) for f in self.remaining],
                "suggestions": self.suggestions,
                "notes": list(self.notes),
                "backupDir": self.backup_dir,
                "runCommands": self.run_commands,
                "guestFindingsBefore": "known" if self.guest_before_known else "unavailable",
                "guestFactsReused": self.reused,
                "changes": [c.to_doc() for c in self.changes],
                "inFlight": self.in_flight,
                "settle": self.settle,
                "exitCode": int(self.exit_code),
            }
        )
        doc["status"] = _status(self, err)
        return doc


def _status(vmr: VmRepair, err: AzrdpError | None) -> str:
    if vmr.skipped:
        return "skipped"
    if vmr.stopped == INTERRUPTED:
        return "interrupted"
    code = vmr.exit_code
    if code == ExitCode.OK:
        return "repaired" if vmr.applied else "healthy"
    if code == ExitCode.NOT_VERIFIED:
        return "notVerified"
    if code == ExitCode.BLOCKERS:
        return "planned" if (vmr.dry_run or vmr.declined) and vmr.actionable else "blocked"
    return "unknown" if err is None and vmr.unknown else "error"


@dataclass
class RepairResult:
    vms: list[VmRepair]
    context: dict[str, Any]
    target: str
    options: RepairOptions
    stopped: str = ""  # INTERRUPTED (Ctrl-C) or TIMED_OUT (--timeout) when the run did not finish
    unfinished: int = 0  # VM workers still running when the document was made (abandoned)

    @property
    def changes(self) -> int:
        return len({c.entry_id for vm in self.vms for c in vm.changes})

    @property
    def exit_code(self) -> ExitCode:
        codes = [vm.exit_code for vm in self.vms]
        if self.stopped == INTERRUPTED:
            codes.append(ExitCode.INTERRUPTED)  # you pressed Ctrl-C: 130, even if all had ended
        return most_serious(codes)

    def to_doc(self) -> dict[str, Any]:
        vms = [vm.to_doc() for vm in self.vms]
        statuses = [v["status"] for v in vms]
        return {
            "schemaVersion": SCHEMA_VERSION,
            "command": "repair",
            "target": self.target,
            "context": dict(self.context)
            | {"dryRun": self.options.dry_run, "brokenOnly": self.options.broken_only},
            "flow": {
                "port": self.options.port,
                "protocol": "Tcp",
                "source": self.options.source_ip or "Internet",
            },
            "dryRun": self.options.dry_run,
            "brokenOnly": self.options.broken_only,
            "interrupted": self.stopped == INTERRUPTED,
            "timedOut": self.stopped == TIMED_OUT,
            "vms": vms,
            "summary": {
                "total": len(vms),
                **{s: statuses.count(s) for s in REPAIR_STATUSES},
                "errors": statuses.count("error"),
                "runCommands": sum(vm.run_commands for vm in self.vms),
                "changes": self.changes,
                "unconfirmed": len({c.entry_id for vm in self.vms for c in vm.unconfirmed}),
                "inFlight": sum(1 for vm in self.vms if vm.in_flight),
                "exitCode": int(self.exit_code),
            },
        }


# --------------------------------------------------------------------------------------------
# Pure part
# --------------------------------------------------------------------------------------------


def plan_vm(
    vm: VmResult, options: RepairOptions, report: envelope.GuestReport | None, run_id: str = ""
) -> list[RepairStep]:
    facts = RepairFacts(
        findings=tuple(vm.findings),
        vm=vm.facts,
        guest=report,
        source_ip=options.source_ip,
        port=options.port,
        requested=frozenset(options.only),
        selected=frozenset(s.id for s in selected(options.only, options.skip)),
        run_id=run_id,
    )
    return plan_repairs(facts, options.only, options.skip)


def verify(steps: Sequence[StepResult], after: Sequence[Finding]) -> None:
    """A step is verified when none of the findings it targeted is left.

    A step that takes effect only at the next boot stays unverified (None): the registry reads right
    at once, but the service still runs with the old setting, so "gone" would be a false green.
    """
    present = {f.id for f in after}
    for step in steps:
        if step.status == APPLIED:
            step.verified = None if step.reboot_required else not (present & set(step.step.fixes))


def build_plan(
    run_id: str, steps: Sequence[RepairStep], run_command_timeout: float, undoes: str = ""
) -> gp.Plan:
    """The executor's plan: the steps' operations numbered in order, each step with its rollback."""
    out = []
    index = 0
    for step in steps:
        out.append(gp.make_step(step.id, step.ops, index, boot=step.boot, run_id=run_id))
        index += len(step.ops)
    return gp.Plan(run_id, tuple(out), gp.deadline_for(run_command_timeout), undoes)


# --------------------------------------------------------------------------------------------
# Gateway calls
# --------------------------------------------------------------------------------------------


def _clients_for(clients: Clients, vm: VmResult) -> Clients:
    if vm.facts is not None and vm.facts.subscription_id:
        return clients.for_subscription(vm.facts.subscription_id)
    return clients


def _run_script(
    clients: Clients,
    vm: VmResult,
    parameters: list[dict[str, str]],
    options: RepairOptions,
    lines: list[str],
    stop: Stop | None = None,
) -> tuple[str, str, float]:
    from azrdp.azure.runcommand import run_powershell

    timeout, wait_timeout = options.timeout, options.wait_timeout
    left = stop.left() if stop is not None else None
    if left is not None:
        if left <= 0:
            raise AzureError(
                f"The --timeout of {options.time_limit:g} s ran out before the Run Command on VM "
                f"'{vm.name}'.",
                fix="Rerun with a longer --timeout.",
            )
        timeout, wait_timeout = min(timeout, left), min(wait_timeout, left)

    def progress(phase: str, elapsed: float) -> None:
        if stop is not None and stop.abandoned:
            raise Interrupted(
                f"Stopped waiting for the Run Command on VM '{vm.name}'.",
                "The script may still be running in the guest; Run Command cannot be cancelled.",
                f"`azrdp history {vm.name} -g {vm.resource_group} --guest` shows what it did.",
            )

    try:
        result = run_powershell(
            clients,
            vm.resource_group,
            vm.name,
            lines,
            parameters,
            agent_status=vm.facts.agent_status if vm.facts else None,
            wait_timeout=wait_timeout,
            timeout=timeout,
            deadline=stop.ends_at if stop is not None else None,  # its 409 waits count against --timeout
            progress=progress,
            clock=stop.clock if stop is not None else time.monotonic,
        )
    except AzrdpError:
        if stop is not None and stop.out_of_time():
            stop.request(TIMED_OUT)  # the run ends as timed out even if this was its last wait
        raise
    return result.stdout, result.stderr, result.elapsed_s


class GuestRefused(GuestError):
    """The executor refused the plan before changing anything (lock, plan, parameters, version)."""


# Error codes with which the executor stops before its first change (see executor.ps1).
REFUSED_BEFORE_CHANGE = ("locked", "plan", "parameter", "unsupported")


def _guest_error(report: envelope.GuestReport) -> GuestError:
    kind = GuestRefused if report.error_code in REFUSED_BEFORE_CHANGE else GuestError
    if report.error_code == "locked":
        return kind(
            f"The guest is busy with another azrdp run: {report.error}",
            "One azrdp run at a time changes a VM; its lock expires on its own.",
            "Wait for that run to finish (azrdp history VM -g GROUP --guest shows it), then rerun.",
        )
    return kind(
        f"The in-guest script refused: {report.error}",
        f"({report.error_code})." if report.error_code else "",
        "Windows PowerShell 5.1 is required (Windows Server 2016 or later)."
        if report.error_code == "unsupported"
        else "Use the same azrdp version for the script and the CLI.",
    )


def run_executor(
    clients: Clients, vm: VmResult, options: RepairOptions, plan: gp.Plan, stop: Stop | None = None
) -> tuple[envelope.GuestReport, str]:
    """One executor run: the plan applied, the facts after collected. Refusals raise GuestError
    (GuestRefused when nothing was changed)."""
    parameters = scripts.execute_parameters(plan.run_id, plan.token(), options.port)
    stdout, stderr, _ = _run_script(clients, vm, parameters, options, scripts.script_lines("execute"), stop)
    report = envelope.parse_output(stdout, stderr, run_id=plan.run_id)
    if report.error is not None or report.run is None:
        raise _guest_error(report)
    return report, stderr.strip()


def read_records(
    clients: Clients, vm: VmResult, options: RepairOptions, run_id: str, stop: Stop | None = None
) -> envelope.GuestReport:
    """Mode records: what a run recorded in the guest (read-only)."""
    stdout, stderr, _ = _run_script(
        clients, vm, scripts.records_parameters(run_id), options, scripts.script_lines("records"), stop
    )
    return envelope.parse_output(stdout, stderr, run_id=run_id)


def diagnose_guest(
    clients: Clients, vm: VmResult, options: RepairOptions, stop: Stop | None = None
) -> GuestOutcome:
    from azrdp.engine.diagnose import DiagnoseOptions, run_guest

    timeout, wait_timeout = options.timeout, options.wait_timeout
    left = stop.left() if stop is not None else None
    if left is not None:
        timeout, wait_timeout = max(min(timeout, left), 0.0), max(min(wait_timeout, left), 0.0)

    def progress(phase: str, elapsed: float) -> None:
        if stop is not None and stop.abandoned:
            raise Interrupted(f"Stopped waiting for the in-guest diagnosis of VM '{vm.name}'.")

    return run_guest(
        clients,
        vm,
        DiagnoseOptions(check=options.check_options, wait_timeout=wait_timeout, timeout=timeout),
        progress,
    )


def _journalled(intent: journal.JournalEntry, action: Callable[[], list[str]]) -> list[str]:
    """Run a journalled control-plane change: `done` after it, `failed` when Azure refused it
    outright; any other end leaves the intent unconfirmed (undo asks Azure)."""
    try:
        lines = action()
    except AzrdpError as err:
        if refused(err):
            journal.confirm(intent, journal.FAILED, {"error": err.message})
        raise
    journal.confirm(intent, journal.DONE, {"notes": lines[1:]} if len(lines) > 1 else {})
    return lines


def _start_vm(clients: Clients, vm: VmResult, run_id: str, stop: Stop) -> list[str]:
    """Start the VM and wait (bounded) for it to run and for its agent to turn Ready."""
    from azrdp.azure.waits import start_vm

    before = vm.facts.power_state if vm.facts else None
    intent = journal.intend(run_id, vm.id, "vm-start", {"powerStateBefore": before})

    def start() -> list[str]:
        notes = start_vm(clients, vm.resource_group, vm.name, stop.waiter())
        return [f"Started VM {vm.name} (was {before})", *notes]

    return _journalled(intent, start)


def _platform_action(clients: Clients, vm: VmResult, run_id: str, action: str, stop: Stop) -> list[str]:
    from azrdp.azure.waits import platform_action

    intent = journal.intend(run_id, vm.id, f"vm-{action}", {})

    def act() -> list[str]:
        platform_action(clients, vm.resource_group, vm.name, action, stop.waiter())
        return [f"{action.capitalize()}ed VM {vm.name}"]

    return _journalled(intent, act)


def _recheck(clients: Clients, vm: VmResult, options: RepairOptions) -> VmResult:
    from azrdp.engine.check import check_vm

    return check_vm(clients, vm.resource_group, vm.name, options.check_options)


def recheck_vms(clients: Clients, vms: Sequence[VmResult], options: RepairOptions) -> list[VmResult]:
    """The VMs read again after control-plane changes, in order: by resource group, each group
    listed once when it holds two or more of them (`check_refs`), never one check per VM."""
    from azrdp.engine.check import check_refs

    refs = [VmRef(vm.resource_group, vm.name, vm.facts.subscription_id if vm.facts else None) for vm in vms]
    # Resource Health again where it was read the first time (a single VM's check reads it).
    health = any(vm.control_plane is not None and vm.control_plane.health is not None for vm in vms)
    return check_refs(clients, refs, replace(options.check_options, health=health))


Resume = Callable[["VmRepair", Callable[["VmRepair"], "VmRepair"]], None]


class Rereads:
    """The VMs of a fleet repair whose control-plane steps changed something, read again together.

    When the last VM of a resource group is done with its control-plane steps, the group's changed
    VMs are read in one go (`recheck_vms`: one listing, not one check per VM) and each is resumed
    with its `finish`. A slow VM start holds back only its own group. The lock of a VM waiting
    here is held here, and released when its `finish` ends (or by `release_left` after a stop).
    """

    def __init__(self, repairer: Repairer, prepared: Sequence[VmRepair], resume: Resume) -> None:
        self.repairer = repairer
        self.resume = resume
        self._lock = threading.Lock()
        self._expected = {id(v) for v in prepared if repairer.applies(v) and repairer.has_control_plane(v)}
        self._pending: dict[tuple[str, str], int] = {}
        self._changed: dict[tuple[str, str], list[VmRepair]] = {}
        self._locks: dict[int, VmLock] = {}
        for vmr in prepared:
            if id(vmr) in self._expected:
                group = _group_of(vmr)
                self._pending[group] = self._pending.get(group, 0) + 1

    def expects(self, vmr: VmRepair) -> bool:
        with self._lock:
            return id(vmr) in self._expected

    def done(self, vmr: VmRepair, lock: VmLock | None) -> None:
        """The VM's control-plane phase ended; `lock`: it changed something and waits for the
        re-read (which then owns its lock), None: it goes on (or ended) by itself."""
        group = _group_of(vmr)
        with self._lock:
            if id(vmr) not in self._expected:
                return
            self._expected.discard(id(vmr))
            if lock is not None:
                self._changed.setdefault(group, []).append(vmr)
                self._locks[id(vmr)] = lock
            self._pending[group] -= 1
            again = self._changed.pop(group, []) if self._pending[group] == 0 else []
        if not again or self.repairer.stop.requested:
            return  # after a stop the waiting VMs stay where they are (`release_left`)
        fresh: list[VmResult | AzrdpError]
        try:
            fresh = list(recheck_vms(self.repairer.clients, [v.vm for v in again], self.repairer.options))
        except AzrdpError as err:
            fresh = [err] * len(again)
        except Exception as exc:  # the group's VMs must still go on, each with the error
            fresh = [unexpected(exc)] * len(again)
        for waiting, reread in zip(again, fresh, strict=True):
            self.resume(waiting, lambda v, r=reread: self._finish(v, r))  # type: ignore[misc]

    def _finish(self, vmr: VmRepair, reread: VmResult | AzrdpError) -> VmRepair:
        with self._lock:
            lock = self._locks.pop(id(vmr), None)
        try:
            return self.repairer.finish(vmr, reread)
        finally:
            if lock is not None:
                lock.release()

    def release_left(self) -> None:
        """Release the locks of VMs never resumed (the run stopped while they waited)."""
        with self._lock:
            locks, self._locks = list(self._locks.values()), {}
        for lock in locks:
            lock.release()


def _group_of(vmr: VmRepair) -> tuple[str, str]:
    sub = vmr.vm.facts.subscription_id if vmr.vm.facts else ""
    return (sub.lower(), vmr.vm.resource_group.lower())


# --------------------------------------------------------------------------------------------
# One VM
# --------------------------------------------------------------------------------------------


class Repairer:
    def __init__(
        self,
        clients: Clients,
        options: RepairOptions,
        confirm: Confirm | None,
        prior: Mapping[str, GuestOutcome] | None = None,
        stop: Stop | None = None,
    ) -> None:
        self.clients = clients
        self.options = options
        self.confirm = confirm
        self.prior = {k.lower(): v for k, v in (prior or {}).items()}
        self.stop = stop or Stop(options.time_limit)
        from azrdp.azure.network import SharedRules
        from azrdp.azure.permissions import PermissionReader

        self.rules = SharedRules()  # one NSG rule per (NSG, source, port) for the whole run
        self.permissions = PermissionReader(clients)  # read once per group (and resource) per run

    # phase 1 -----------------------------------------------------------------------------------

    def prepare(self, vm: VmResult, run_id: str) -> VmRepair:
        """Plan. Collects the guest's facts (one Run Command) unless a fresh collection is at hand."""
        options = self.options
        clients = _clients_for(self.clients, vm)
        reason = skip_reason(vm)
        guest: GuestOutcome | None = None
        report: envelope.GuestReport | None = None
        runs = 0
        reused = False
        if vm.error is None and not reason and options.guest_ids:
            prior = self.prior.get(vm.id.lower())
            if prior is not None and prior.fresh():
                guest, reused = prior, True
            else:
                runs = 1
                guest = diagnose_guest(clients, vm, options, self.stop)
            report = guest.report
        elif vm.error is None:
            guest = GuestOutcome("skipped", reason=reason or "No in-guest repair selected.")
        merged = merge(vm, guest, options.port, options.debug) if guest else _as_diagnose(vm)
        steps = plan_vm(merged, options, report, run_id)
        vmr = VmRepair(merged, run_id, options.dry_run, [StepResult(s) for s in steps], run_commands=runs)
        vmr.reused = reused
        if reused:
            vmr.notes.append(
                "Planned on the in-guest facts the diagnose before it collected (no second collection)."
            )
        if reason and vm.error is None and options.guest_ids:
            vmr.notes.append(f"No in-guest repair: {reason}")
            vmr.guest_blocked = reason
        for step in vmr.steps:
            if step.step.refused:
                step.status = REFUSED
        return vmr

    # phase 3 -----------------------------------------------------------------------------------

    def apply(self, vmr: VmRepair, rereads: Rereads) -> VmRepair | Later:
        """Apply one VM's plan under its local lock; errors after the first change stay this VM's.

        Its control-plane steps first. A VM they changed is read again with the others of its
        resource group (`rereads`: one listing when the group's last control-plane phase ends),
        so the VM returns LATER and `finish` goes on once that re-read is done.
        """
        expected = rereads.expects(vmr)
        try:
            if not self.applies(vmr):
                return vmr
            if not any(s.step.actionable and s.status == PLANNED for s in vmr.steps):
                self._guest_phase(_clients_for(self.clients, vmr.vm), vmr, vmr.vm)  # notes only
                return vmr
            if not self._permitted(vmr):
                return vmr
            lock = self._lock(vmr)
            if lock is None:
                return vmr
            handed = False
            try:
                changed = self.apply_control_plane(vmr)
                if expected:
                    expected = False
                    rereads.done(vmr, lock if changed else None)
                    handed = changed  # from here the re-read owns the lock, and resumes `finish`
                    if handed:
                        return LATER
                return self.finish(vmr, None)
            finally:
                if not handed:
                    lock.release()
        finally:
            if expected:
                rereads.done(vmr, None)  # it ended early: its group need not wait for it

    def applies(self, vmr: VmRepair) -> bool:
        """Whether anything of the plan is to be applied: not a dry run, not declined, and planned on
        complete facts (a failed check or diagnosis applies nothing from half the facts)."""
        if vmr.dry_run or vmr.declined or vmr.error is not None:
            return False
        return vmr.vm.error is None and not (vmr.vm.guest is not None and vmr.vm.guest.status == "error")

    def has_control_plane(self, vmr: VmRepair) -> bool:
        """Whether the plan holds a control-plane step to apply."""
        return any(s.step.where is Where.CONTROL_PLANE and s.step.actionable for s in vmr.steps)

    def _lock(self, vmr: VmRepair) -> VmLock | None:
        """The VM's local lock, taken; None (and the VM's error) when another run holds it."""
        from azrdp.locks import LockedError, VmLock

        left = self.stop.left()
        lock = VmLock(
            vmr.vm.id,
            vmr.vm.name,
            vmr.run_id,
            "azrdp repair",
            left if left is not None else LOCK_SECONDS,
            f"azrdp history {vmr.vm.name} -g {vmr.vm.resource_group}",
        )
        try:
            lock.acquire()
        except LockedError as err:
            vmr.error = err
            for step in vmr.actionable:
                if step.status == PLANNED:
                    step.status, step.error = NOT_RUN, "Not started: another azrdp run holds this VM."
            return None
        return lock

    def _permitted(self, vmr: VmRepair) -> bool:
        """RBAC where it can be known: refuse the VM before its first change when Azure lists the
        identity's permissions without an action the plan needs (azrdp.azure.permissions)."""
        from azrdp.azure.permissions import refusal

        missing = self.permissions.missing(needed_actions(vmr))
        if not missing:
            return True
        vmr.error = refusal(missing, vmr.vm.name)
        for step in vmr.actionable:
            if step.status == PLANNED:
                step.status, step.error = NOT_RUN, "Not started: a permission it needs is missing."
        return False

    def _not_started(self, vmr: VmRepair, step: StepResult, what: str) -> bool:
        """Mark a step not started when the run is stopping; True when it was."""
        why = self.stop.not_started(what)
        if not why:
            return False
        step.status, step.error = NOT_RUN, why
        vmr.stopped = self.stop.reason or TIMED_OUT
        return True

    def apply_control_plane(self, vmr: VmRepair) -> bool:
        """The plan's control-plane steps; whether any of them changed something."""
        vm: VmResult = vmr.vm
        clients = _clients_for(self.clients, vm)
        cp_changed = False
        for step in vmr.steps:
            if step.step.where is not Where.CONTROL_PLANE or not step.step.actionable:
                continue
            if self._not_started(vmr, step, step.step.id):
                continue
            try:
                step.done = self._apply_control_plane(clients, vm, step.step, vmr.run_id)
                step.status = APPLIED
                cp_changed = True
            except Interrupted as err:
                step.status, step.error = UNCONFIRMED, err.message
                raise
            except AzrdpError as err:
                # Refused: nothing changed. Anything else (a timeout, a 5xx, a reset): it may have.
                step.status = FAILED if refused(err) else UNCONFIRMED
                step.error = err.message
                vmr.notes.append(f"{step.step.id} failed: {err.message}")
        return cp_changed

    def finish(self, vmr: VmRepair, rechecked: VmResult | AzrdpError | None) -> VmRepair:
        """The guest phase and the verification, on the VM as re-read after its control-plane
        changes (`rechecked`: the VM read again, or why it could not be; None: nothing changed)."""
        vm: VmResult = vmr.vm
        clients = _clients_for(self.clients, vm)
        cp_changed = rechecked is not None
        if isinstance(rechecked, AzrdpError):
            vmr.error = rechecked
        elif rechecked is not None:
            if rechecked.facts is None and rechecked.error is not None:
                vmr.error = rechecked.error  # the VM itself could not be read again
            else:
                vm = rechecked
        if vmr.error is None:
            self._guest_phase(clients, vmr, vm)
        if not self.stop.requested:
            self._verify(clients, vmr, vm, cp_changed)
        self.record(vmr)
        return vmr

    def _apply_control_plane(
        self, clients: Clients, vm: VmResult, step: RepairStep, run_id: str
    ) -> list[str]:
        if step.id == "vm-start":
            return _start_vm(clients, vm, run_id, self.stop)
        if step.id == "nsg-allow-rdp":
            done = []
            for rule in step.params.get("rules", ()):
                change, wrote = self.rules.ensure(clients, vm.id, run_id, rule, self.stop.waiter())
                done.append(change.shared_line(len(rule.get("sharedBy") or ()), wrote))
            return done
        if step.id in ("redeploy", "reapply"):
            return _platform_action(clients, vm, run_id, step.id, self.stop)
        raise GuestError(f"Unknown control-plane repair {step.id}.")

    def _guest_phase(self, clients: Clients, vmr: VmRepair, vm: VmResult) -> None:
        options = self.options
        reason = skip_reason(vm)
        vmr.guest_blocked = reason if options.guest_ids else ""
        if reason or not options.guest_ids:
            if reason and options.guest_ids and not any("No in-guest repair" in n for n in vmr.notes):
                vmr.notes.append(f"No in-guest repair: {reason}")
            return
        guest_steps = [s for s in vmr.steps if s.step.where is Where.GUEST]
        diagnosed = vmr.vm.guest is not None and vmr.vm.guest.status == "ran"
        if not diagnosed:
            why = self.stop.not_started("the in-guest diagnosis")
            if why:
                vmr.stopped = self.stop.reason or TIMED_OUT
                vmr.notes.append(why)
                return
            # The VM was just started: collect, plan, and (interactively) ask again.
            outcome = diagnose_guest(clients, vm, options, self.stop)
            vmr.run_commands += 1
            fresh = merge(vm, outcome, options.port, options.debug)
            vmr.vm = fresh
            if outcome.status != "ran":
                return
            guest_steps = [
                StepResult(s)
                for s in plan_vm(fresh, options, outcome.report, vmr.run_id)
                if s.where is Where.GUEST
            ]
            for s in guest_steps:
                s.status = REFUSED if s.step.refused else PLANNED
            vmr.steps = [s for s in vmr.steps if s.step.where is Where.CONTROL_PLANE] + guest_steps
            if (
                self.confirm is not None
                and any(s.step.actionable for s in guest_steps)
                and not self.confirm([vmr])
            ):
                for s in guest_steps:
                    if s.status == PLANNED:
                        s.status = DECLINED
                return
        todo = [s for s in guest_steps if s.step.actionable and s.status == PLANNED and s.step.ops]
        if not todo:
            return
        left = self.stop.left()
        if left is not None and left < gp.MIN_TIMEOUT and not self.stop.requested:
            for step in todo:
                step.status = NOT_RUN
                step.error = (
                    f"Not started: {max(left, 0):.0f} s were left of the --timeout of "
                    f"{options.time_limit:g} s; the in-guest repair may need {gp.MIN_TIMEOUT} s."
                )
            vmr.stopped = TIMED_OUT
            return
        why = self.stop.not_started("the in-guest repair")
        if why:
            for step in todo:
                step.status, step.error = NOT_RUN, why
            vmr.stopped = self.stop.reason or TIMED_OUT
            return
        timeout = options.timeout if left is None else min(options.timeout, left)
        plan = build_plan(vmr.run_id, [s.step for s in todo], timeout)
        vmr.guest_plan = plan
        intent = journal.intend(
            vmr.run_id,
            vm.id,
            "guest-run",
            {
                "guestRun": plan.run_id,
                "backupDir": gf.BACKUP_ROOT + "\\" + plan.run_id,
                "steps": [s.id for s in plan.steps],
                "plan": plan.to_wire(),
            },
        )
        vmr.run_commands += 1
        settle = (
            f"`azrdp history {vm.name} -g {vm.resource_group} --guest` shows what it did, "
            f"`azrdp undo {vm.name} -g {vm.resource_group} --run-id {vmr.run_id}` takes back whatever it "
            "applied."
        )
        try:
            report, _ = run_executor(clients, vm, options, plan, self.stop)
        except Interrupted as err:
            for step in todo:
                step.status, step.error = UNCONFIRMED, f"{err.message} It may have been applied: {settle}"
            raise
        except AzrdpError as err:
            vmr.error = err
            if isinstance(err, GuestRefused) or refused(err):
                journal.confirm(intent, journal.FAILED, {"error": err.message})
                status, why = FAILED, f"Not applied: {err.message}"
            else:
                status = UNCONFIRMED
                why = (
                    f"Sent to the guest; its answer could not be read, so it may have been applied: {settle}"
                )
                vmr.notes.append(why)
            for step in todo:
                step.status = status
                step.error = why
            return
        assert report.run is not None
        run = report.run
        journal.confirm(
            intent,
            journal.DONE,
            {
                "ops": [{"i": o.index, "s": o.status, "p": o.prior, "a": o.after} for o in run.ops],
                "complete": bool(run.complete and run.ops),
                "state": run.state,
                "steps": [{"id": r.id, "s": r.status} for r in run.steps],
            },
        )
        vmr.backup_dir = run.backup_dir
        vmr.guest_after = report
        statuses = {
            envelope.APPLIED: APPLIED,
            envelope.REFUSED: REFUSED,
            envelope.ROLLED_BACK: ROLLED_BACK,
            envelope.NOT_RUN: NOT_RUN,
        }
        by_index = {r.index: r for r in run.ops}
        first = 0
        for step, result in zip(todo, _results_by_step(plan, run), strict=True):
            step.status = statuses.get(result.status or "", FAILED) if result else NOT_RUN
            step.error = result.error if result else None
            step.op_results = [by_index.get(first + k) for k in range(len(step.step.ops))]
            first += len(step.step.ops)
            if step.status == APPLIED:
                step.done = [f"{step.step.title}: " + "; ".join(step.step.changes)]
            elif step.status == REFUSED:
                vmr.notes.append(
                    f"{step.step.id} was refused in the guest (nothing of it changed): {step.error}. "
                    "Run repair again to plan on what the guest holds now."
                )
            elif step.status in (ROLLED_BACK, FAILED):
                vmr.notes.append(f"{step.step.id} failed in the guest: {step.error}")

    def _verify(self, clients: Clients, vmr: VmRepair, vm: VmResult, cp_changed: bool) -> None:
        report = vmr.guest_after
        if not vmr.applied and report is None and not cp_changed:
            return
        control = [f for f in vm.findings if f.source is not Source.GUEST]
        if report is not None and report.facts is None and vmr.applied:
            # The executor's facts did not fit its output beside the run's result: collect again.
            outcome = diagnose_guest(clients, vm, self.options, self.stop)
            vmr.run_commands += 1
            if outcome.status == "ran" and outcome.report is not None:
                report = outcome.report
        if report is not None and report.facts is not None:
            guest_after = guest_findings(report, self.options.port)
        else:
            guest_after = [f for f in vmr.vm.findings if f.source is Source.GUEST]
        vmr.after = control + guest_after
        verify(vmr.steps, vmr.after)
        if vmr.reboot_required:
            vmr.notes.append(
                "Applied, not verified: SCHANNEL changes take effect at the next boot. Restart the VM "
                f"(az vm restart -g {vm.resource_group} -n {vm.name}), then run `azrdp diagnose` to verify."
            )

    def record(self, vmr: VmRepair) -> None:
        """The run's summary for `history` (its changes are journalled one by one as they happen)."""
        if vmr.guest_plan is None and not any(s.status in (APPLIED, FAILED, ROLLED_BACK) for s in vmr.steps):
            return
        details: dict[str, Any] = {
            "format": journal.FORMAT,
            "steps": {s.step.id: s.status for s in vmr.steps},
            "backupDir": vmr.backup_dir,
            "verified": vmr.verified,
            "exitCode": int(vmr.exit_code),
        }
        journal.record(journal.JournalEntry(vmr.run_id, vmr.vm.id, journal.RUN, details))


def needed_actions(vmr: VmRepair) -> list[tuple[str, str]]:
    """(scope, RBAC action) the VM's planned changes need: written, not read (reads already ran)."""
    vms = "Microsoft.Compute/virtualMachines"
    out: list[tuple[str, str]] = []
    for step in vmr.steps:
        if not (step.step.actionable and step.status == PLANNED):
            continue
        if step.step.id in ("vm-start", "redeploy", "reapply"):
            verb = "start" if step.step.id == "vm-start" else step.step.id
            out.append((vmr.vm.id, f"{vms}/{verb}/action"))
        elif step.step.id == "nsg-allow-rdp":
            for rule in step.step.params.get("rules", ()):
                out.append(
                    (str(rule["nsgId"]), "Microsoft.Network/networkSecurityGroups/securityRules/write")
                )
        elif step.step.where is Where.GUEST:
            out.append((vmr.vm.id, f"{vms}/runCommand/action"))
    return list(dict.fromkeys(out))


def _results_by_step(plan: gp.Plan, run: envelope.RunResult) -> list[envelope.StepResult | None]:
    """The executor's step results in the plan's order (by position: step ids may repeat in undo)."""
    results = list(run.steps)
    return [
        results[i] if i < len(results) and results[i].id == step.id else None
        for i, step in enumerate(plan.steps)
    ]


def share_nsg_rules(prepared: Sequence[VmRepair]) -> None:
    """One `nsg-allow-rdp` rule per (NSG, source, port) across the run, named in every VM's plan.

    Only VMs whose plan will be applied take part (a failed guest diagnosis applies nothing).
    """
    from azrdp.repairs.control_plane import RuleUser, share_allow_rules

    users: list[tuple[StepResult, RuleUser]] = [
        (step, RuleUser(vmr.vm.id, vmr.vm.name, vmr.run_id, step.step))
        for vmr in prepared
        if vmr.error_or_guest_error is None
        for step in vmr.steps
        if step.step.id == "nsg-allow-rdp" and step.step.actionable and step.step.params.get("rules")
    ]
    for (step, _), shared in zip(users, share_allow_rules([user for _, user in users]), strict=True):
        step.step = shared


def _as_diagnose(vm: VmResult) -> DiagnoseVmResult:
    return DiagnoseVmResult(
        vm.id, vm.name, vm.resource_group, vm.flow, vm.facts, vm.control_plane, list(vm.findings), vm.error
    )


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def _make_clients(
    clients: Clients | None, subscription: str | None, cloud: str | None, ids: Sequence[str]
) -> Clients:
    if clients is not None:
        return clients
    from azrdp.azure.auth import resolve_context
    from azrdp.azure.clients import Clients as ClientsImpl

    return ClientsImpl(resolve_context(subscription, cloud, ids))


def _stop_vm(vmr: VmRepair, stop: Stop, *, in_flight: bool = False) -> None:
    """A VM whose work the stop cut short: a step whose intent is journalled and unconfirmed was in
    flight; what did not start says so, and why. (`vmr.changes` must be set.)"""
    reason = stop.reason or INTERRUPTED
    why = stop.not_started("this step") or f"Not started: {reason}."
    open_kinds = {c.kind for c in vmr.unconfirmed if c.run_id == vmr.run_id}
    for step in vmr.steps:
        if step.step.actionable and step.status == PLANNED:
            kind = "guest-run" if step.step.where is Where.GUEST else CHANGE_KIND.get(step.step.id, "")
            if in_flight and kind in open_kinds:
                step.status = UNCONFIRMED
                step.error = "In flight when azrdp stopped waiting: it may have been applied."
            else:
                step.status, step.error = NOT_RUN, why
    vmr.stopped = reason
    vmr.in_flight = in_flight
    if reason == TIMED_OUT and vmr.error is None:
        left = "was still running" if in_flight else "had not started"
        vmr.error = AzureError(
            f"The --timeout of {stop.time_limit:g} s ran out: the repair of VM '{vmr.vm.name}' {left}.",
            fix="Rerun with a longer --timeout (`azrdp history` shows what this run changed).",
        )


def _would_change(vmr: VmRepair) -> bool:
    return (
        not vmr.dry_run
        and not vmr.declined
        and vmr.error_or_guest_error is None
        and any(s.step.actionable and s.status == PLANNED for s in vmr.steps)
    )


def _stub(vm: VmResult, run_id: str, options: RepairOptions, error: AzrdpError | None) -> VmRepair:
    """The result of a VM whose planning did not end (an error, or a stop): it changed nothing."""
    vmr = VmRepair(_as_diagnose(vm), run_id, options.dry_run)
    vmr.error = error
    return vmr


def run_repair(
    targets: Targets,
    options: RepairOptions | None = None,
    *,
    confirm: Confirm | None = None,
    subscription: str | None = None,
    cloud: str | None = None,
    observer: Observer = ignore,
    clients: Clients | None = None,
    prior: Sequence[DiagnoseVmResult] = (),
    stop: Stop | None = None,
    grace: float | None = None,
) -> RepairResult:
    """Plan, confirm (`confirm=None`: already confirmed, e.g. --yes), apply and verify.

    `prior`: the results of a diagnose that just ran; a VM's in-guest facts are reused when they are
    fresh (a few minutes), which spares one Run Command per VM. `stop`: the Ctrl-C / --timeout
    control the caller shares with its signal handler (a Ctrl-C in this thread works too);
    `grace`: seconds the steps in flight get after it (AZRDP_INTERRUPT_GRACE, default 10). The
    result always lists every VM and every change; `stopped` says whether the run was cut short.
    """
    from azrdp.azure.auth import new_run_id

    options = options or RepairOptions()
    validate_ids(options.only, options.skip)
    if not options.dry_run:
        journal.ensure_writable()  # refused before the first change, never after it
    grace = grace_seconds() if grace is None else grace
    stop = stop or Stop(options.time_limit)
    clients = _make_clients(clients, subscription, cloud, targets.ids)
    checked = run_check(targets, options.check_options, observer=observer, clients=clients)
    vms = list(checked.vms)
    collected = {vm.id: vm.guest for vm in prior if vm.guest is not None}
    repairer = Repairer(clients, options, confirm, collected, stop)
    progress_lock = threading.Lock()
    started = time.monotonic()

    def note(done: int, total: int, what: str) -> None:
        with progress_lock:
            observer(
                Progress(
                    "guest", f"{what}: {done} of {total} ({time.monotonic() - started:.0f} s)", done, total
                )
            )

    todo = [vm for vm in vms if not (options.broken_only and vm.status == "healthy")]
    skipped = [vm for vm in vms if vm not in todo]
    run_ids = {id(vm): new_run_id() for vm in todo}
    counter = {"n": 0}
    verb = "Planned" if options.dry_run else "Repaired"
    ledger = Ledger()
    ledger.track(run_ids.values())
    prepared: list[VmRepair] = []

    def prepare(vm: VmResult) -> VmRepair:
        vmr = repairer.prepare(vm, run_ids[id(vm)])
        with progress_lock:
            counter["n"] += 1
        note(counter["n"], len(todo), "Planned")
        return vmr

    def counted(vmr: VmRepair) -> VmRepair:
        with progress_lock:
            counter["n"] += 1
        note(counter["n"], len(prepared), verb)
        return vmr

    supervisor = Supervisor[VmRepair, VmRepair](options.concurrency, stop, grace)

    def resume(vmr: VmRepair, stage: Callable[[VmRepair], VmRepair]) -> None:
        supervisor.resume(vmr, lambda v: counted(stage(v)))

    def apply(vmr: VmRepair) -> VmRepair | Later:
        out = repairer.apply(vmr, rereads)
        return out if isinstance(out, Later) else counted(out)

    with journal.watch(ledger):
        planning = supervise(prepare, todo, options.concurrency, stop, grace)
        for outcome in planning.outcomes:
            vmr = outcome.result or _stub(outcome.item, run_ids[id(outcome.item)], options, outcome.error)
            if outcome.result is None and outcome.error is None:
                _stop_vm(vmr, stop)  # its planning never ended: it changed nothing
            prepared.append(vmr)
        unfinished = planning.unfinished
        if not stop.requested:
            share_nsg_rules(prepared)
            if not options.dry_run and confirm is not None:
                pending = [v for v in prepared if v.actionable and v.error_or_guest_error is None]
                try:
                    if pending and not confirm(pending):
                        for vmr in pending:
                            vmr.declined = True
                            for step in vmr.actionable:
                                step.status = DECLINED
                except KeyboardInterrupt:
                    stop.request(INTERRUPTED)
        if stop.requested:
            for vmr in prepared:
                if _would_change(vmr):
                    _stop_vm(vmr, stop)
        else:
            counter["n"] = 0
            rereads = Rereads(repairer, prepared, resume)
            applying = supervisor.run(apply, prepared)
            rereads.release_left()
            for applied in applying.outcomes:
                vmr = applied.item
                vmr.changes = ledger.for_run(vmr.run_id)
                if applied.error is not None and vmr.error is None:
                    vmr.error = applied.error  # isolated: this VM's error, the others carry on
                if isinstance(applied.error, Interrupted):
                    _stop_vm(vmr, stop)
                elif applied.in_flight or (not applied.started and _would_change(vmr)):
                    _stop_vm(vmr, stop, in_flight=applied.in_flight)
                elif applied.deferred:  # its control-plane steps ran; the stop came before the rest
                    _stop_vm(vmr, stop)
                    repairer.record(vmr)
            unfinished = applying.unfinished
    done = list(prepared)
    for vmr in done:
        vmr.changes = ledger.for_run(vmr.run_id)
    for vm in skipped:
        reason = "--broken-only: the control-plane check found nothing broken, so the VM was left out."
        vmr = VmRepair(
            replace(_as_diagnose(vm), guest=GuestOutcome("skipped", reason=reason)), "", options.dry_run
        )
        vmr.notes.append("Skipped: the control-plane check found nothing broken (--broken-only).")
        vmr.skipped = reason
        done.append(vmr)
    observer(Progress("done", f"{verb} {len(done)} VM(s)", len(done), len(done)))
    stopped = stop.reason if stop.requested else ""
    return RepairResult(done, dict(checked.context), checked.target, options, stopped, unfinished)
