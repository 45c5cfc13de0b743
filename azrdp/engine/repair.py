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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from azrdp import journal
from azrdp.engine import Observer, Progress, ignore
from azrdp.engine.check import UNKNOWN_FINDINGS, CheckOptions, VmResult, run_check
from azrdp.engine.diagnose import (
    DEFAULT_GUEST_CONCURRENCY,
    DiagnoseVmResult,
    GuestOutcome,
    guest_findings,
    merge,
    skip_reason,
)
from azrdp.errors import AzrdpError, ExitCode, GuestError, Interrupted, NotFoundError, most_serious
from azrdp.guest import envelope, scripts
from azrdp.guest import plan as gp
from azrdp.model import SCHEMA_VERSION, Finding, Severity, Source, to_doc
from azrdp.repairs import RepairFacts, RepairStep, Where, all_repairs, plan_repairs, selected
from azrdp.targets import Targets, VmRef

if TYPE_CHECKING:
    from azrdp.azure.clients import Clients

# Statuses of a step in the result document.
PLANNED, APPLIED, REFUSED, DECLINED = "planned", "applied", "refused", "declined"
ROLLED_BACK, FAILED, NOT_RUN = "rolledBack", "failed", "notRun"

Confirm = Callable[[Sequence["VmRepair"]], bool]
# What a VM's repair ended as (besides "error"), counted in the summary.
REPAIR_STATUSES = ("repaired", "healthy", "planned", "blocked", "notVerified", "skipped", "unknown")


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
    timeout: float = 900.0
    debug: bool = False

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
        err = self.error_or_guest_error
        if err is not None and not self.applied:
            return err.exit_code
        if any(s.status in (ROLLED_BACK, FAILED) for s in self.steps) or self.verified is False:
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
                "exitCode": int(self.exit_code),
            }
        )
        doc["status"] = _status(self, err)
        return doc


def _status(vmr: VmRepair, err: AzrdpError | None) -> str:
    if vmr.skipped:
        return "skipped"
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

    @property
    def exit_code(self) -> ExitCode:
        return most_serious(vm.exit_code for vm in self.vms)

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
            "vms": vms,
            "summary": {
                "total": len(vms),
                **{s: statuses.count(s) for s in REPAIR_STATUSES},
                "errors": statuses.count("error"),
                "runCommands": sum(vm.run_commands for vm in self.vms),
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
) -> tuple[str, str, float]:
    from azrdp.azure.runcommand import run_powershell

    result = run_powershell(
        clients,
        vm.resource_group,
        vm.name,
        lines,
        parameters,
        agent_status=vm.facts.agent_status if vm.facts else None,
        wait_timeout=options.wait_timeout,
        timeout=options.timeout,
    )
    return result.stdout, result.stderr, result.elapsed_s


def _guest_error(report: envelope.GuestReport) -> GuestError:
    if report.error_code == "locked":
        return GuestError(
            f"The guest is busy with another azrdp run: {report.error}",
            "One azrdp run at a time changes a VM; its lock expires on its own.",
            "Wait for that run to finish (azrdp history VM -g GROUP --guest shows it), then rerun.",
        )
    return GuestError(
        f"The in-guest script refused: {report.error}",
        f"({report.error_code})." if report.error_code else "",
        "Windows PowerShell 5.1 is required (Windows Server 2016 or later)."
        if report.error_code == "unsupported"
        else "Use the same azrdp version for the script and the CLI.",
    )


def run_executor(
    clients: Clients, vm: VmResult, options: RepairOptions, plan: gp.Plan
) -> tuple[envelope.GuestReport, str]:
    """One executor run: the plan applied, the facts after collected. Refusals raise GuestError."""
    parameters = scripts.execute_parameters(plan.run_id, plan.token(), options.port)
    stdout, stderr, _ = _run_script(clients, vm, parameters, options, scripts.script_lines("execute"))
    report = envelope.parse_output(stdout, stderr, run_id=plan.run_id)
    if report.error is not None or report.run is None:
        raise _guest_error(report)
    return report, stderr.strip()


def read_records(clients: Clients, vm: VmResult, options: RepairOptions, run_id: str) -> envelope.GuestReport:
    """Mode records: what a run recorded in the guest (read-only)."""
    stdout, stderr, _ = _run_script(
        clients, vm, scripts.records_parameters(run_id), options, scripts.script_lines("records")
    )
    return envelope.parse_output(stdout, stderr, run_id=run_id)


def diagnose_guest(clients: Clients, vm: VmResult, options: RepairOptions) -> GuestOutcome:
    from azrdp.engine.diagnose import DiagnoseOptions, run_guest

    return run_guest(
        clients,
        vm,
        DiagnoseOptions(
            check=options.check_options, wait_timeout=options.wait_timeout, timeout=options.timeout
        ),
        lambda phase, elapsed: None,
    )


def _start_vm(clients: Clients, vm: VmResult, run_id: str) -> list[str]:
    """Start the VM and wait (bounded) for it to run and for its agent to turn Ready."""
    from azrdp.azure.waits import start_vm

    before = vm.facts.power_state if vm.facts else None
    journal.record(journal.JournalEntry(run_id, vm.id, "vm-started", {"powerStateBefore": before}))
    notes = start_vm(clients, vm.resource_group, vm.name)
    return [f"Started VM {vm.name} (was {before})", *notes]


def _platform_action(clients: Clients, vm: VmResult, run_id: str, action: str) -> list[str]:
    from azrdp.azure.waits import platform_action

    journal.record(journal.JournalEntry(run_id, vm.id, f"vm-{action}ed", {}))
    platform_action(clients, vm.resource_group, vm.name, action)
    return [f"{action.capitalize()}ed VM {vm.name}"]


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
    ) -> None:
        self.clients = clients
        self.options = options
        self.confirm = confirm
        self.prior = {k.lower(): v for k, v in (prior or {}).items()}
        self.lock = threading.Lock()
        # What was changed so far across VMs, for the Ctrl-C listing (appended as it happens).
        self.changed: list[str] = []
        self.touched: dict[str, TouchedRun] = {}  # VM id -> the run that changed it, in order
        from azrdp.azure.network import SharedRules

        self.rules = SharedRules()  # one NSG rule per (NSG, source, port) for the whole run

    def _changed(
        self, vm: VmResult, run_id: str, lines: Sequence[str], *, guest_running: bool = False
    ) -> None:
        if not lines:
            return
        with self.lock:
            self.changed.extend(f"{vm.name}: {line}" for line in lines)
            key = vm.id.lower()
            before = self.touched.get(key)
            self.touched[key] = TouchedRun(
                vm.name, vm.resource_group, run_id, guest_running or bool(before and before.guest_running)
            )

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
                guest = diagnose_guest(clients, vm, options)
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

    def apply(self, vmr: VmRepair) -> VmRepair:
        """One VM start to end: its control-plane steps, their re-read, the guest, the verification.
        (`run_repair` splits a fleet at the re-read instead: every VM's control-plane steps, then one
        re-read per resource group, then each VM's `finish`.)"""
        if not self.applies(vmr):
            return vmr
        changed = self.apply_control_plane(vmr)
        return self.finish(vmr, recheck_vms(self.clients, [vmr.vm], self.options)[0] if changed else None)

    def applies(self, vmr: VmRepair) -> bool:
        """Whether anything of the plan is to be applied: not a dry run, not declined, and planned on
        complete facts (a failed check or diagnosis applies nothing from half the facts)."""
        if vmr.dry_run or vmr.declined or vmr.error is not None:
            return False
        return vmr.vm.error is None and not (vmr.vm.guest is not None and vmr.vm.guest.status == "error")

    def has_control_plane(self, vmr: VmRepair) -> bool:
        """Whether the plan holds a control-plane step to apply."""
        return any(s.step.where is Where.CONTROL_PLANE and s.step.actionable for s in vmr.steps)

    def apply_control_plane(self, vmr: VmRepair) -> bool:
        """The plan's control-plane steps; whether any of them changed something."""
        vm: VmResult = vmr.vm
        clients = _clients_for(self.clients, vm)
        cp_changed = False
        for step in vmr.steps:
            if step.step.where is not Where.CONTROL_PLANE or not step.step.actionable:
                continue
            try:
                step.done = self._apply_control_plane(clients, vm, step.step, vmr.run_id)
                step.status = APPLIED
                self._changed(vm, vmr.run_id, step.done)
                cp_changed = True
            except Interrupted:
                raise
            except AzrdpError as err:
                step.status = FAILED
                step.error = err.message
                vmr.notes.append(f"{step.step.id} failed: {err.message}")
        return cp_changed

    def finish(self, vmr: VmRepair, rechecked: VmResult | None) -> VmRepair:
        """The guest phase and the verification, on the VM as re-read after its control-plane
        changes (`rechecked`; None: nothing changed there)."""
        vm: VmResult = vmr.vm
        clients = _clients_for(self.clients, vm)
        cp_changed = rechecked is not None
        if rechecked is not None:
            if rechecked.facts is None and rechecked.error is not None:
                vmr.error = rechecked.error  # the VM itself could not be read again
            else:
                vm = rechecked
        if vmr.error is None:
            self._guest_phase(clients, vmr, vm)
        self._verify(clients, vmr, vm, cp_changed)
        if vmr.applied or vmr.backup_dir:
            self._journal(vmr)
        return vmr

    def _apply_control_plane(
        self, clients: Clients, vm: VmResult, step: RepairStep, run_id: str
    ) -> list[str]:
        if step.id == "vm-start":
            return _start_vm(clients, vm, run_id)
        if step.id == "nsg-allow-rdp":
            done = []
            for rule in step.params.get("rules", ()):
                change, wrote = self.rules.ensure(clients, vm.id, run_id, rule)
                done.append(change.shared_line(len(rule.get("sharedBy") or ()), wrote))
            return done
        if step.id in ("redeploy", "reapply"):
            return _platform_action(clients, vm, run_id, step.id)
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
            # The VM was just started: collect, plan, and (interactively) ask again.
            outcome = diagnose_guest(clients, vm, options)
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
        plan = build_plan(vmr.run_id, [s.step for s in todo], options.timeout)
        vmr.guest_plan = plan
        try:
            report, _ = run_executor(clients, vm, options, plan)
        except Interrupted:
            self._changed(
                vm,
                vmr.run_id,
                [
                    f"the in-guest repair (run {vmr.run_id}: {', '.join(s.step.id for s in todo)}) was "
                    "running and cannot be cancelled; see "
                    f"`azrdp history {vm.name} -g {vm.resource_group} --guest`"
                ],
                guest_running=True,
            )
            raise
        except AzrdpError as err:
            vmr.run_commands += 1
            vmr.error = err
            for step in todo:
                step.status = FAILED
                step.error = (
                    "The in-guest run gave no readable result; `azrdp history --guest` shows what it did."
                )
            return
        vmr.run_commands += 1
        assert report.run is not None
        vmr.backup_dir = report.run.backup_dir
        vmr.guest_after = report
        statuses = {
            envelope.APPLIED: APPLIED,
            envelope.REFUSED: REFUSED,
            envelope.ROLLED_BACK: ROLLED_BACK,
            envelope.NOT_RUN: NOT_RUN,
        }
        by_index = {r.index: r for r in report.run.ops}
        first = 0
        for step, result in zip(todo, _results_by_step(plan, report.run), strict=True):
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
        self._changed(vm, vmr.run_id, [line for s in todo for line in s.done])

    def _verify(self, clients: Clients, vmr: VmRepair, vm: VmResult, cp_changed: bool) -> None:
        report = vmr.guest_after
        if not vmr.applied and report is None and not cp_changed:
            return
        control = [f for f in vm.findings if f.source is not Source.GUEST]
        if report is not None and report.facts is None and vmr.applied:
            # The executor's facts did not fit its output beside the run's result: collect again.
            outcome = diagnose_guest(clients, vm, self.options)
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

    def _journal(self, vmr: VmRepair) -> None:
        details: dict[str, Any] = {
            "steps": {s.step.id: s.status for s in vmr.steps},
            "backupDir": vmr.backup_dir,
            "verified": vmr.verified,
            "exitCode": int(vmr.exit_code),
        }
        if vmr.guest_plan is not None:
            # What undo needs: the plan and, per op, what the guest found and left (when the
            # executor's output carried them; otherwise undo reads them from the guest).
            run = vmr.guest_after.run if vmr.guest_after is not None else None
            details["guest"] = {
                "plan": vmr.guest_plan.to_wire(),
                "ops": [{"i": o.index, "s": o.status, "p": o.prior, "a": o.after} for o in run.ops]
                if run
                else [],
                "complete": bool(run and run.complete and run.ops),
                "state": run.state if run else None,
            }
        journal.record(journal.JournalEntry(vmr.run_id, vmr.vm.id, "run", details))


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


def _parallel(fn: Callable[[Any], VmRepair], items: Sequence[Any], workers: int) -> list[VmRepair]:
    if len(items) <= 1:
        return [fn(item) for item in items]
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(items))), thread_name_prefix="azrdp-repair")
    interrupted = False
    try:
        return list(pool.map(fn, items))
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)


@dataclass(frozen=True)
class TouchedRun:
    """A VM the run had changed (or was changing in the guest) when it was interrupted."""

    name: str
    resource_group: str
    run_id: str
    guest_running: bool = False  # its in-guest repair was in flight: it may still finish

    @property
    def undo(self) -> str:
        return f"azrdp undo {self.name} -g {self.resource_group} --run-id {self.run_id}"

    @property
    def history(self) -> str:
        return f"azrdp history {self.name} -g {self.resource_group} --guest"


class RepairInterrupted(Interrupted):
    """Ctrl-C during a repair: `changed` lists what had already been changed, `runs` by whom."""

    SHOWN = 3  # undo commands named in the fix line; the rest are counted

    def __init__(self, changed: Sequence[str], runs: Sequence[TouchedRun] = ()) -> None:
        super().__init__(
            "Interrupted during the repair.",
            f"{len(changed)} change(s) were already made (listed above)."
            if changed
            else "Nothing was changed.",
            self._fix(runs),
        )
        self.changed = list(changed)
        self.runs = list(runs)

    @classmethod
    def _fix(cls, runs: Sequence[TouchedRun]) -> str:
        if not runs:
            return "Rerun `azrdp repair` to finish."
        undo = ", ".join(f"`{r.undo}`" for r in runs[: cls.SHOWN])
        if len(runs) > cls.SHOWN:
            undo += f" and {len(runs) - cls.SHOWN} more (one per VM listed above)"
        text = f"Rerun `azrdp repair` to finish, or take the changes back with {undo}."
        running = [r for r in runs if r.guest_running]
        if running:
            text += f" `{running[0].history}` shows whether the in-guest repair that was running finished" + (
                f" (likewise for {len(running) - 1} more VM(s))." if len(running) > 1 else "."
            )
        return text


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
) -> RepairResult:
    """Plan, confirm (`confirm=None`: already confirmed, e.g. --yes), apply and verify.

    `prior`: the results of a diagnose that just ran; a VM's in-guest facts are reused when they are
    fresh (a few minutes), which spares one Run Command per VM.
    """
    from azrdp.azure.auth import new_run_id

    options = options or RepairOptions()
    validate_ids(options.only, options.skip)
    if not options.dry_run:
        journal.ensure_writable()  # refused before the first change, never after it
    clients = _make_clients(clients, subscription, cloud, targets.ids)
    checked = run_check(targets, options.check_options, observer=observer, clients=clients)
    vms = list(checked.vms)
    collected = {vm.id: vm.guest for vm in prior if vm.guest is not None}
    repairer = Repairer(clients, options, confirm, collected)
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
    counter = {"n": 0}
    verb = "Planned" if options.dry_run else "Repaired"

    def prepare(vm: VmResult) -> VmRepair:
        vmr = repairer.prepare(vm, new_run_id())
        with progress_lock:
            counter["n"] += 1
        note(counter["n"], len(todo), "Planned")
        return vmr

    try:
        prepared = _parallel(prepare, todo, options.concurrency)
        share_nsg_rules(prepared)
        if not options.dry_run and confirm is not None:
            pending = [v for v in prepared if v.actionable and v.error_or_guest_error is None]
            if pending and not confirm(pending):
                for vmr in pending:
                    vmr.declined = True
                    for step in vmr.actionable:
                        step.status = DECLINED
        counter["n"] = 0

        def applied() -> None:
            with progress_lock:
                counter["n"] += 1
            note(counter["n"], len(prepared), verb)

        done = apply_by_group(repairer, clients, prepared, applied)
    except (KeyboardInterrupt, Interrupted):
        raise RepairInterrupted(list(repairer.changed), list(repairer.touched.values())) from None
    for vm in skipped:
        reason = "--broken-only: the control-plane check found nothing broken, so the VM was left out."
        vmr = VmRepair(
            replace(_as_diagnose(vm), guest=GuestOutcome("skipped", reason=reason)), "", options.dry_run
        )
        vmr.notes.append("Skipped: the control-plane check found nothing broken (--broken-only).")
        vmr.skipped = reason
        done.append(vmr)
    observer(Progress("done", f"{verb} {len(done)} VM(s)", len(done), len(done)))
    return RepairResult(done, dict(checked.context), checked.target, options)


def apply_by_group(
    repairer: Repairer, clients: Clients, prepared: Sequence[VmRepair], applied: Callable[[], None]
) -> list[VmRepair]:
    """Apply every VM's plan, `repairer.options.concurrency` at a time; `applied()` after each VM.

    A VM without control-plane steps goes straight to its guest phase. The others apply their
    control-plane steps; when the last of them in a resource group is done, those that changed
    something are read again together (`recheck_vms`: one listing of the group, not one check per
    VM), and each goes on to its guest phase and verification. A slow VM start thus holds back only
    its own group's guest phases. Returns `prepared`, each VmRepair completed in place.
    """
    options = repairer.options
    pool = ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="azrdp-repair")
    lock = threading.Lock()
    finished = threading.Event()
    failures: list[BaseException] = []
    left = [len(prepared)]
    pending: dict[tuple[str, str], int] = {}  # group -> VMs still in their control-plane phase
    changed: dict[tuple[str, str], list[VmRepair]] = {}
    members: dict[tuple[str, str], list[VmRepair]] = {}

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # re-raised in the caller's thread
                with lock:
                    failures.append(exc)
                finished.set()

        return run

    def finish(vmr: VmRepair, rechecked: VmResult | None) -> None:
        if repairer.applies(vmr):
            repairer.finish(vmr, rechecked)
        applied()
        with lock:
            left[0] -= 1
            if left[0] == 0:
                finished.set()

    def control_plane(vmr: VmRepair, group: tuple[str, str]) -> None:
        did = repairer.apply_control_plane(vmr)
        with lock:
            if did:
                changed[group].append(vmr)
            pending[group] -= 1
            last = pending[group] == 0
        if last:
            again = changed[group]
            reread = dict(
                zip(map(id, again), recheck_vms(clients, [v.vm for v in again], options), strict=True)
            )
            for member in members[group]:
                pool.submit(guarded(lambda m=member: finish(m, reread.get(id(m)))))  # type: ignore[misc]

    if not prepared:
        return []
    for vmr in prepared:
        if repairer.applies(vmr) and repairer.has_control_plane(vmr):
            sub = vmr.vm.facts.subscription_id if vmr.vm.facts else ""
            group = (sub.lower(), vmr.vm.resource_group.lower())
            pending[group] = pending.get(group, 0) + 1
            members.setdefault(group, []).append(vmr)
            changed.setdefault(group, [])
        else:
            pool.submit(guarded(lambda v=vmr: finish(v, None)))  # type: ignore[misc]
    for group, vms in members.items():
        for vmr in vms:
            pool.submit(guarded(lambda v=vmr, g=group: control_plane(v, g)))  # type: ignore[misc]
    interrupted = False
    try:
        while not finished.wait(0.2):
            pass
        if failures:
            raise failures[0]
    except BaseException:
        interrupted = True
        raise
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)
    return list(prepared)


# --------------------------------------------------------------------------------------------
# undo and history
# --------------------------------------------------------------------------------------------


def _single_vm(targets: Targets) -> VmRef:
    if len(targets.vms) != 1 or targets.is_fleet:
        raise _usage("undo and history work on one VM.", "Name one VM: `azrdp undo VM -g GROUP --run-id ID`.")
    return targets.vms[0]


def run_undo(
    targets: Targets,
    run_id: str,
    *,
    port: int = 3389,
    subscription: str | None = None,
    cloud: str | None = None,
    clients: Clients | None = None,
    options: RepairOptions | None = None,
) -> dict[str, Any]:
    """Take back one run: delete the NSG rules it added, restore the guest from its backups."""
    from azrdp.azure.network import remove_rule

    run_id = journal.validate_run_id(run_id)
    ref = _single_vm(targets)
    journal.ensure_writable()
    clients = _make_clients(clients, subscription, cloud, targets.ids)
    options = options or RepairOptions(port=port)
    vm = _recheck(
        clients.for_subscription(ref.subscription_id) if ref.subscription_id else clients,
        _ref_vm(ref, clients),
        options,
    )
    entries = journal.run_entries(vm.id, run_id)
    undone = journal.undone_entry_ids()  # all VMs: a shared rule may be undone through another VM's run
    control: list[dict[str, Any]] = []
    for entry in entries:
        if entry.kind == "nsg-rule-created":
            shared = _shared_with(entry, vm.id)
            if entry.entry_id in undone:
                control.append(
                    {"kind": entry.kind, "rule": entry.details.get("rule"), "status": "alreadyUndone"}
                    | shared
                )
                continue
            own = entry.run_id == run_id and entry.vm_id.lower() == vm.id.lower()
            outcome = remove_rule(_clients_for(clients, vm), entry, for_run=None if own else (vm.id, run_id))
            control.append(
                {
                    "kind": entry.kind,
                    "nsg": outcome.nsg_id,
                    "rule": outcome.rule,
                    "status": outcome.status,
                    "detail": outcome.detail,
                }
                | shared
            )
        elif entry.kind in ("vm-started", "vm-redeployed", "vm-reapplied"):
            control.append(
                {
                    "kind": entry.kind,
                    "status": "notUndoable",
                    "detail": "azrdp never stops or moves a VM back.",
                }
            )
    run_entries = [e for e in entries if e.kind == "run"]
    guest_expected = not entries or any(
        e.details.get("backupDir") or e.details.get("guest") for e in run_entries
    )
    guest_doc: dict[str, Any] = {"status": "skipped", "reason": "The run changed nothing in the guest."}
    findings: list[Finding] = list(vm.findings)
    code = ExitCode.OK
    runs = 0
    if guest_expected:
        reason = skip_reason(vm)
        if reason:
            guest_doc = {"status": "error", "reason": reason}
            code = ExitCode.ERROR
        else:
            guest_doc, report, runs = _undo_guest(_clients_for(clients, vm), vm, options, run_id, run_entries)
            if guest_doc["status"] == "unknown":
                if not entries:
                    raise NotFoundError(
                        f"Run {run_id} is unknown for VM '{vm.name}'.",
                        "This machine's journal has no entry for it and the guest has no record of it.",
                        fix=f"List the runs with `azrdp history {vm.name} -g {vm.resource_group} --guest`.",
                    )
                guest_doc = {"status": "error", "reason": guest_doc["reason"]}
            if guest_doc["status"] == "error" or guest_doc.get("failed"):
                code = ExitCode.ERROR if guest_doc["status"] == "error" else ExitCode.NOT_VERIFIED
            if report is not None and report.facts is not None:
                findings = [f for f in vm.findings if f.source is not Source.GUEST] + guest_findings(
                    report, options.port
                )
    elif not entries:
        raise NotFoundError(f"Run {run_id} is unknown for VM '{vm.name}'.", fix="See `azrdp history`.")
    if any(c["status"] == "modified" for c in control):
        code = most_serious([code, ExitCode.NOT_VERIFIED])
    for entry in run_entries:
        journal.record(
            journal.JournalEntry(
                run_id, vm.id, "undone", {"entry": entry.entry_id, "guest": guest_doc.get("status")}
            )
        )
    return {
        "schemaVersion": SCHEMA_VERSION,
        "command": "undo",
        "runId": run_id,
        "vms": [
            {
                "id": vm.id,
                "name": vm.name,
                "resourceGroup": vm.resource_group,
                "runId": run_id,
                "controlPlane": control,
                "guest": guest_doc,
                "findings": [to_doc(f) for f in findings],
                "runCommands": runs,
                "exitCode": int(code),
            }
        ],
        "summary": {"total": 1, "exitCode": int(code)},
    }


def _undo_guest(
    clients: Clients,
    vm: VmResult,
    options: RepairOptions,
    run_id: str,
    entries: Sequence[journal.JournalEntry],
) -> tuple[dict[str, Any], envelope.GuestReport | None, int]:
    """The guest part of undo: the inverse plan from what the run recorded, run by the executor.

    The records come from the local journal when it holds them whole, else from the guest (mode
    records, one more Run Command). Returns the document part, the executor's report and the Run
    Commands used.
    """
    from azrdp.azure.auth import new_run_id

    runs = 0
    done = [
        e
        for e in journal.run_entries(vm.id, run_id)
        if e.kind == "undone" and e.details.get("guest") == "restored"
    ]
    if done:
        return {"status": "alreadyUndone", "restored": [], "failed": []}, None, runs
    guest = next(
        (e.details["guest"] for e in reversed(entries) if isinstance(e.details.get("guest"), dict)), None
    )
    steps_wire: list[Any] = []
    records: dict[int, Mapping[str, Any]] = {}
    if guest is not None and guest.get("complete"):
        steps_wire = list(guest["plan"]["steps"])
        records = {int(r["i"]): r for r in guest["ops"]}
    else:
        report = read_records(clients, vm, options, run_id)
        runs += 1
        if report.error is not None or report.records is None:
            if report.error_code == "unknown":
                return {"status": "unknown", "reason": report.error}, None, runs
            raise _guest_error(report)
        found = report.records
        if found.state == "undone":
            return {"status": "alreadyUndone", "restored": [], "failed": []}, None, runs
        if not found.complete:
            return (
                {
                    "status": "error",
                    "reason": f"The records of run {run_id} do not fit one Run Command's output, and this "
                    "machine's journal lacks them: undo refuses to act on part of them.",
                },
                None,
                runs,
            )
        steps_wire = gp.steps_from_records(
            [s.id or "" for s in found.steps], [to_doc_record(r) for r in found.ops]
        )
        records = {int(r.index or 0): {"s": r.status, "p": r.prior, "a": r.after} for r in found.ops}
    undo_run = new_run_id()
    undo_steps = gp.undo_steps(steps_wire, records, run_id, undo_run)
    if not undo_steps:
        return {"status": "nothingToRestore", "restored": [], "failed": []}, None, runs
    plan = gp.Plan(
        undo_run,
        tuple(gp.make_step(i, ops, index, run_id=undo_run) for i, ops, index in gp.number(undo_steps)),
        gp.deadline_for(options.timeout),
        undoes=run_id,
    )
    report, _ = run_executor(clients, vm, options, plan)
    runs += 1
    assert report.run is not None
    results = _results_by_step(plan, report.run)
    restored = [
        step.id for step, r in zip(plan.steps, results, strict=True) if r and r.status == envelope.APPLIED
    ]
    failed = [
        step.id for step, r in zip(plan.steps, results, strict=True) if not r or r.status != envelope.APPLIED
    ]
    doc = {
        "status": "restored" if restored and not failed else "partial" if restored else "refused",
        "restored": restored,
        "failed": failed,
        "undoRunId": plan.run_id,
        "backupDir": report.run.backup_dir,
    }
    if failed:
        doc["errors"] = [r.error for r in results if r and r.error]
    return doc, report, runs


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


def _ref_vm(ref: VmRef, clients: Clients) -> VmResult:
    from azrdp.nsg import FlowQuery

    return VmResult(ref.id(clients.subscription_id), ref.name, ref.resource_group, FlowQuery())


def run_history(
    targets: Targets,
    *,
    guest: bool = False,
    subscription: str | None = None,
    cloud: str | None = None,
    clients: Clients | None = None,
) -> dict[str, Any]:
    """The runs of one VM from the local journal, and with `guest` from the manifests in the VM."""
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
