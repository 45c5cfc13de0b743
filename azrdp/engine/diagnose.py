"""`azrdp diagnose` (= `azrdp check --guest`): the control-plane check, then the in-guest collector.

    result = run_diagnose(parse_targets("web01", resource_group="rg"))
    result.to_doc(); result.exit_code

For every VM the control-plane check runs first (in bulk for fleets); then, on each running
Windows VM whose agent is Ready, one action Run Command runs azrdp's read-only collector, with
bounded concurrency across VMs. Its raw facts are decoded through the facts schema and the guest
checks judge them, adding their findings (source "guest") to the same document `check` returns,
plus a `guest` block per VM.

A guest run that cannot start because of a control-plane blocker (VM stopped, agent not Ready,
not Windows) is `skipped`: that blocker is already a finding. A run that fails (409 wait timed
out, output off-contract, the script refused) is an `error` for that VM (exit 1).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azrdp.checks import run_checks
from azrdp.checks.guest import GuestFacts
from azrdp.engine import Observer, Progress, ignore
from azrdp.engine.check import CheckOptions, CheckResult, VmResult, run_check
from azrdp.errors import AzrdpError, ExitCode, GuestError, Interrupted, most_serious
from azrdp.guest import envelope, scripts
from azrdp.guest import facts as gf
from azrdp.model import Source, to_doc
from azrdp.targets import Targets

if TYPE_CHECKING:
    from azrdp.azure.clients import Clients

DEFAULT_GUEST_CONCURRENCY = 10
RUNS_PER_VM = 1  # one Run Command per VM per diagnose (the emulator's request log asserts it)
# A repair reuses a collection this recent instead of collecting again (the executor's
# preconditions refuse any step whose target moved in between).
FRESH_SECONDS = 300.0


@dataclass(frozen=True)
class DiagnoseOptions:
    check: CheckOptions = field(default_factory=CheckOptions)
    concurrency: int = DEFAULT_GUEST_CONCURRENCY  # Run Commands in flight at once
    wait_timeout: float = 300.0  # how long to wait for another run in progress (409)
    timeout: float = 900.0  # how long to wait for our run to finish
    debug: bool = False  # keep the raw tail of bad output in the document


@dataclass
class GuestOutcome:
    status: str  # ran | skipped | error
    reason: str = ""  # why it was skipped
    report: envelope.GuestReport | None = None
    stderr: str = ""
    elapsed_s: float | None = None
    error: AzrdpError | None = None
    raw_tail: str | None = None
    collected_at: float | None = None  # time.monotonic() when the facts came back

    @property
    def facts(self) -> gf.Facts | None:
        return self.report.facts if self.report else None

    def fresh(self, now: float | None = None) -> bool:
        """Recent enough for a repair to plan on without collecting again."""
        if self.status != "ran" or self.facts is None or self.collected_at is None:
            return False
        return (now if now is not None else time.monotonic()) - self.collected_at <= FRESH_SECONDS

    def to_doc(self, debug: bool = False) -> dict[str, Any]:
        facts = self.facts
        doc: dict[str, Any] = {"status": self.status}
        if self.reason:
            doc["reason"] = self.reason
        if self.elapsed_s is not None:
            doc["elapsedSeconds"] = round(self.elapsed_s, 1)
        if self.report is not None:
            doc["time"] = self.report.time
            doc["contractVersion"] = self.report.version
        if facts is not None:
            os_info = facts.os
            doc["os"] = {"version": os_info.version, "build": os_info.build} if os_info else None
            doc["listenerPort"] = facts.number("rdptcp", "PortNumber")
            doc["sectionErrors"] = [{"section": e.section, "message": e.message} for e in facts.errors]
            doc["facts"] = to_doc(facts)
        if self.stderr:
            doc["stderr"] = self.stderr
        doc["error"] = (
            {"code": self.error.code, "message": self.error.message, "fix": self.error.fix}
            if self.error
            else None
        )
        if debug and self.raw_tail is not None:
            doc["rawTail"] = self.raw_tail
        return doc


@dataclass
class DiagnoseVmResult(VmResult):
    guest: GuestOutcome | None = None
    debug: bool = False

    @property
    def guest_findings(self) -> list[Any]:
        return [f for f in self.findings if f.source is Source.GUEST]

    @property
    def status(self) -> str:
        if self.guest is not None and self.guest.status == "error" and self.error is None:
            return "error"
        return super().status

    @property
    def exit_code(self) -> ExitCode:
        codes = [super().exit_code]
        if self.guest is not None and self.guest.error is not None and self.guest.status == "error":
            codes.append(self.guest.error.exit_code)
        return most_serious(codes)

    def to_doc(self) -> dict[str, Any]:
        doc = super().to_doc()
        doc["status"] = self.status
        doc["guest"] = self.guest.to_doc(self.debug) if self.guest else None
        return doc


@dataclass
class DiagnoseResult(CheckResult):
    def to_doc(self) -> dict[str, Any]:
        doc = super().to_doc()
        doc["command"] = "diagnose"
        guests = [vm.guest for vm in self.vms if isinstance(vm, DiagnoseVmResult) and vm.guest]
        doc["summary"]["guest"] = {
            status: sum(1 for g in guests if g.status == status) for status in ("ran", "skipped", "error")
        }
        return doc


# --------------------------------------------------------------------------------------------
# Pure part
# --------------------------------------------------------------------------------------------


def skip_reason(vm: VmResult) -> str:
    """Why the guest script cannot run on this VM ('' when it can), from the control-plane facts."""
    facts = vm.facts
    if vm.error is not None or facts is None:
        return "The VM's control-plane facts could not be read."
    if (facts.os_type or "").lower() == "linux":
        return "The VM runs Linux; the in-guest diagnosis is for Windows."
    if (facts.power_state or "").lower() != "running":
        return f"The VM is {facts.power_state or 'in an unknown power state'}, not running."
    if (facts.agent_status or "").lower() != "ready":
        return f"The guest agent is {facts.agent_status or 'not reporting'}, not Ready (agent-not-ready)."
    return ""


def guest_findings(report: envelope.GuestReport, expected_port: int) -> list[Any]:
    """The guest checks over a decoded report (pure)."""
    if report.facts is None:
        return []
    facts = GuestFacts(report.facts, expected_port, report.guest_time)
    return run_checks(facts, Source.GUEST)


def outcome_from_output(stdout: str, stderr: str, elapsed_s: float | None) -> GuestOutcome:
    """Decode a Run Command's output into an outcome (contract errors become an error outcome)."""
    try:
        report = envelope.parse_output(stdout, stderr)
    except envelope.ContractError as err:
        return GuestOutcome(
            "error", stderr=stderr.strip(), elapsed_s=elapsed_s, error=err, raw_tail=err.raw_tail
        )
    outcome = GuestOutcome(
        "ran", report=report, stderr=stderr.strip(), elapsed_s=elapsed_s, collected_at=time.monotonic()
    )
    if report.error is not None or report.facts is None:
        outcome.status = "error"
        outcome.error = GuestError(
            f"The in-guest script refused to run: {report.error or 'it returned no facts'}",
            f"({report.error_code})." if report.error_code else "",
            _FIXES.get(report.error_code or "", "Use the same azrdp version for the script and the CLI."),
        )
    return outcome


_FIXES = {
    "unsupported": "Windows PowerShell 5.1 is required (Windows Server 2016 or later).",
    "budget": "The guest holds more than one Run Command output can carry, even trimmed; "
    "report this with `azrdp diagnose --debug`.",
}


def merge(vm: VmResult, outcome: GuestOutcome, expected_port: int, debug: bool = False) -> DiagnoseVmResult:
    findings = list(vm.findings)
    if outcome.report is not None:
        findings += guest_findings(outcome.report, expected_port)
    return DiagnoseVmResult(
        vm.id,
        vm.name,
        vm.resource_group,
        vm.flow,
        vm.facts,
        vm.control_plane,
        findings,
        vm.error,
        guest=outcome,
        debug=debug,
    )


# --------------------------------------------------------------------------------------------
# Running the script
# --------------------------------------------------------------------------------------------


def run_guest(
    clients: Clients,
    vm: VmResult,
    options: DiagnoseOptions,
    progress: Callable[[str, float], None],
) -> GuestOutcome:
    """One Run Command on one VM, decoded. Never raises AzrdpError except Interrupted."""
    from azrdp.azure.runcommand import run_powershell

    reason = skip_reason(vm)
    if reason:
        return GuestOutcome("skipped", reason=reason)
    start = time.monotonic()
    try:
        parameters = scripts.collect_parameters(options.check.port)
        result = run_powershell(
            clients,
            vm.resource_group,
            vm.name,
            scripts.script_lines("collect"),
            parameters,
            agent_status=vm.facts.agent_status if vm.facts else None,
            wait_timeout=options.wait_timeout,
            timeout=options.timeout,
            progress=progress,
        )
    except Interrupted:
        raise
    except AzrdpError as err:
        return GuestOutcome("error", elapsed_s=time.monotonic() - start, error=err)
    return outcome_from_output(result.stdout, result.stderr, result.elapsed_s)


class _Cancelled(Interrupted):
    pass


def run_diagnose(
    targets: Targets,
    options: DiagnoseOptions | None = None,
    *,
    subscription: str | None = None,
    cloud: str | None = None,
    observer: Observer = ignore,
    clients: Clients | None = None,
) -> DiagnoseResult:
    """Check the targets from the control plane, then diagnose each one inside the guest."""
    options = options or DiagnoseOptions()
    if clients is None:
        from azrdp.azure.auth import resolve_context
        from azrdp.azure.clients import Clients as ClientsImpl

        clients = ClientsImpl(resolve_context(subscription, cloud, targets.ids))
    checked = run_check(targets, options.check, observer=observer, clients=clients)
    results = _diagnose_all(clients, checked.vms, options, observer)
    observer(Progress("done", f"Diagnosed {len(results)} VM(s)", len(results), len(results)))
    return DiagnoseResult(list[VmResult](results), checked.flow, checked.context, checked.target)


def _diagnose_all(
    clients: Clients, vms: list[VmResult], options: DiagnoseOptions, observer: Observer
) -> list[DiagnoseVmResult]:
    total = len(vms)
    cancel = threading.Event()
    lock = threading.Lock()
    running: dict[str, float] = {}
    done = 0

    def report_progress() -> None:
        with lock:
            longest = max(running.values(), default=0.0)
            busy = len(running)
            finished = done
        if total == 1 and busy:
            message = f"Running the in-guest diagnosis on {vms[0].name} ({longest:.0f} s)"
        else:
            message = (
                f"In-guest diagnosis: {finished} of {total} done, {busy} running (longest {longest:.0f} s)"
            )
        observer(Progress("guest", message, finished, total))

    def one(vm: VmResult) -> DiagnoseVmResult:
        nonlocal done

        def progress(phase: str, elapsed: float) -> None:
            if cancel.is_set():
                raise _Cancelled("Interrupted.")
            with lock:
                running[vm.name] = elapsed
            report_progress()

        vm_clients = clients
        if vm.facts is not None and vm.facts.subscription_id:
            vm_clients = clients.for_subscription(vm.facts.subscription_id)
        try:
            outcome = run_guest(vm_clients, vm, options, progress)
        finally:
            with lock:
                running.pop(vm.name, None)
                done += 1
        report_progress()
        return merge(vm, outcome, options.check.port, options.debug)

    if total <= 1:
        return [one(vm) for vm in vms]
    pool = ThreadPoolExecutor(
        max_workers=max(1, min(options.concurrency, total)), thread_name_prefix="azrdp-guest"
    )
    interrupted = False
    try:
        return list(pool.map(one, vms))
    except KeyboardInterrupt:
        # Workers see the event at their next tick; do not wait for them (Run Command cannot be cancelled).
        interrupted = True
        cancel.set()
        raise Interrupted(
            "Stopped waiting for the in-guest diagnosis.",
            "Scripts already started keep running in their VMs; Run Command cannot be cancelled.",
            "Rerun in a few minutes; until they end those VMs answer 409 Conflict.",
        ) from None
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)
