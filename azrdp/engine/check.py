"""`azrdp check`: control-plane facts -> NSG verdict -> checks -> one result document.

    result = run_check(parse_targets("web01", resource_group="rg"), CheckOptions(source_ip="203.0.113.7"))
    result.to_doc(); result.exit_code

Per-VM building blocks for other engines (diagnose, repair):
  * `check_vm(clients, rg, name, options)` reads one VM and returns a `VmResult` (facts, the
    evaluated flow, findings);
  * `assess(facts, options)` is the pure part: verdict and checks over facts already gathered.

A VM whose facts cannot be read in a fleet gets its own `error` entry; every listed VM appears
exactly once. A single named VM that does not exist raises NotFoundError (exit 3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from azrdp.checks import run_checks
from azrdp.checks.control_plane import ControlPlaneFacts, EffectiveComparison
from azrdp.engine import Observer, Progress, ignore
from azrdp.errors import AzrdpError, AzureError, ExitCode, most_serious
from azrdp.facts import NicFacts, Nsg, VmFacts
from azrdp.model import SCHEMA_VERSION, Finding, Severity, Source, to_doc
from azrdp.nsg import EMPTY, UNKNOWN, FlowQuery, FlowVerdict, evaluate, source_scope
from azrdp.targets import Targets, VmRef

if TYPE_CHECKING:
    from azrdp.azure.clients import Clients

DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True)
class CheckOptions:
    port: int = 3389
    protocol: str = "Tcp"
    source_ip: str | None = None
    effective: bool = False  # also ask Azure for the effective rules of running VMs
    concurrency: int = DEFAULT_CONCURRENCY

    @property
    def flow(self) -> FlowQuery:
        return FlowQuery(port=self.port, protocol=self.protocol, source=self.source_ip)


@dataclass
class VmResult:
    id: str
    name: str
    resource_group: str
    flow: FlowQuery
    facts: VmFacts | None = None
    control_plane: ControlPlaneFacts | None = None
    findings: list[Finding] = field(default_factory=list)
    error: AzrdpError | None = None

    @property
    def network(self) -> FlowVerdict | None:
        return self.control_plane.network if self.control_plane else None

    @property
    def blockers(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.BLOCKER]

    @property
    def status(self) -> str:
        if self.error is not None:
            return "error"
        return "blocked" if self.blockers else "healthy"

    @property
    def exit_code(self) -> ExitCode:
        if self.error is not None:
            return self.error.exit_code
        return ExitCode.BLOCKERS if self.blockers else ExitCode.OK

    def to_doc(self) -> dict[str, Any]:
        return vm_doc(self)


@dataclass
class CheckResult:
    vms: list[VmResult]
    flow: FlowQuery
    context: Mapping[str, Any] = field(default_factory=dict)
    target: str = ""

    @property
    def exit_code(self) -> ExitCode:
        return most_serious(vm.exit_code for vm in self.vms)

    def to_doc(self) -> dict[str, Any]:
        vms = [vm.to_doc() for vm in self.vms]
        return {
            "schemaVersion": SCHEMA_VERSION,
            "command": "check",
            "target": self.target,
            "context": dict(self.context),
            "flow": flow_doc(self.flow),
            "vms": vms,
            "summary": {
                "total": len(self.vms),
                "healthy": sum(1 for vm in self.vms if vm.status == "healthy"),
                "blocked": sum(1 for vm in self.vms if vm.status == "blocked"),
                "errors": sum(1 for vm in self.vms if vm.status == "error"),
                "exitCode": int(self.exit_code),
            },
        }


# --------------------------------------------------------------------------------------------
# Pure part: facts -> verdict -> findings
# --------------------------------------------------------------------------------------------


def _unknown(flow: FlowQuery, vnet: Sequence[str], reason: str) -> FlowVerdict:
    return FlowVerdict(UNKNOWN, source_scope(flow, vnet), EMPTY, (), (), (), (), reason)


def evaluate_nic(
    nic: NicFacts | None, flow: FlowQuery, cache: dict[Any, FlowVerdict] | None = None
) -> FlowVerdict | None:
    """The flow through a NIC's subnet NSG and NIC NSG; `unknown` when an NSG could not be read."""
    if nic is None:
        return None
    vnet_prefixes: tuple[str, ...] = ()
    if nic.vnet is not None:
        vnet_prefixes = nic.vnet.address_space
    elif nic.subnet is not None:
        vnet_prefixes = nic.subnet.address_prefixes
    unread = [
        what
        for what, ref, got in (
            ("the NIC's NSG", nic.nsg_id, nic.nsg),
            ("the subnet's NSG", nic.subnet.nsg_id if nic.subnet else None, nic.subnet_nsg),
        )
        if ref and got is None
    ]
    if nic.subnet_id and nic.subnet is None:
        unread.append("the subnet (and so whether it has an NSG)")
    if unread:
        return _unknown(flow, vnet_prefixes, f"Could not read {' and '.join(unread)}.")
    standard = bool(nic.public_ip and nic.public_ip.sku.lower() == "standard")
    return evaluate(
        flow,
        destination_ip=nic.private_ip,
        subnet_nsg=nic.subnet_nsg,
        nic_nsg=nic.nsg,
        vnet_prefixes=vnet_prefixes,
        nic_asgs=nic.asgs,
        closed_without_nsg=standard,
        cache=cache,
    )


def compare_effective(
    nic: NicFacts, flow: FlowQuery, effective: Sequence[tuple[str, Nsg]] | str
) -> EffectiveComparison:
    """Evaluate Azure's effective rules (tags already expanded) the same way as the definitions."""
    if isinstance(effective, str):
        return EffectiveComparison(UNKNOWN, error=effective)
    layers = dict(effective)
    vnet = nic.vnet.address_space if nic.vnet else ()
    verdict = evaluate(
        flow,
        destination_ip=nic.private_ip,
        subnet_nsg=layers.get("subnet"),
        nic_nsg=layers.get("nic"),
        vnet_prefixes=vnet,
        nic_asgs=nic.asgs,
        closed_without_nsg=bool(nic.public_ip and nic.public_ip.sku.lower() == "standard"),
    )
    return EffectiveComparison(verdict.verdict, tuple(f"{d.layer}:{d.rule}" for d in verdict.decided_by))


def assess(
    facts: VmFacts,
    options: CheckOptions,
    effective: EffectiveComparison | None = None,
    cache: dict[Any, FlowVerdict] | None = None,
) -> VmResult:
    """Verdict and control-plane findings for facts already gathered (pure).

    `cache` (one dict per fleet) lets VMs behind the same NSGs share one evaluation.
    """
    flow = options.flow
    nic = facts.primary_nic
    error: AzrdpError | None = None
    checked = facts
    if nic is not None and nic.private_ip is None and nic.unreadable:
        # Without the primary NIC nothing can be said about the network: that is an error entry,
        # and only the checks of the VM itself still apply.
        _, why = nic.unreadable[0]
        code, _, message = why.partition(": ")
        error = AzureError(f"Could not read network interface '{nic.name}': {message or code}")
        error.code = code or error.code
        checked = replace(facts, nics=())
        nic = None
    network = evaluate_nic(nic, flow, cache)
    internet = (
        network if flow.source is None else evaluate_nic(nic, FlowQuery(flow.port, flow.protocol), cache)
    )
    cp = ControlPlaneFacts(checked, flow, network, internet, effective)
    findings = run_checks(cp, Source.CONTROL_PLANE) + run_checks(cp, Source.NETWORK_WATCHER)
    if error is not None:
        findings = [f for f in findings if f.id != "facts-incomplete"]
    result = VmResult(facts.id, facts.name, facts.resource_group, flow, facts, cp, findings, error)
    return result


# --------------------------------------------------------------------------------------------
# Gathering
# --------------------------------------------------------------------------------------------


def _effective_for(clients: Clients, facts: VmFacts, options: CheckOptions) -> EffectiveComparison | None:
    if not options.effective:
        return None
    nic = facts.primary_nic
    if nic is None or not nic.id:
        return None
    if (facts.power_state or "").lower() != "running":
        return EffectiveComparison(
            UNKNOWN, error="the VM is not running (Azure computes effective rules only then)"
        )
    from azrdp.azure.inventory import get_effective_rules

    return compare_effective(nic, options.flow, get_effective_rules(clients, nic.id))


def check_vm(clients: Clients, resource_group: str, name: str, options: CheckOptions) -> VmResult:
    """Read one VM and assess it. Raises NotFoundError and the gateway's errors."""
    from azrdp.azure.inventory import get_vm_facts

    facts = get_vm_facts(clients, resource_group, name)
    return assess(facts, options, _effective_for(clients, facts, options))


def _error_result(ref: VmRef, subscription_id: str, flow: FlowQuery, err: AzrdpError) -> VmResult:
    return VmResult(ref.id(subscription_id), ref.name, ref.resource_group, flow, error=err)


def _map(
    fn: Callable[[Any], VmResult], items: Sequence[Any], workers: int, observer: Observer
) -> list[VmResult]:
    results: list[VmResult] = []
    total = len(items)
    if total == 0:
        return results
    with ThreadPoolExecutor(
        max_workers=max(1, min(workers, total)), thread_name_prefix="azrdp-check"
    ) as pool:
        for result in pool.map(fn, items):
            results.append(result)
            observer(Progress("vm", f"{result.name}: {result.status}", len(results), total))
    return results


def run_check(
    targets: Targets,
    options: CheckOptions | None = None,
    *,
    subscription: str | None = None,
    cloud: str | None = None,
    observer: Observer = ignore,
    clients: Clients | None = None,
) -> CheckResult:
    """Check the targets and return the result (the CLI, the runbook and the Python API use this)."""
    options = options or CheckOptions()
    if clients is None:
        from azrdp.azure.auth import resolve_context
        from azrdp.azure.clients import Clients as ClientsImpl

        clients = ClientsImpl(resolve_context(subscription, cloud, targets.ids))
    flow = options.flow
    observer(Progress("start", f"Checking {targets.describe()}"))

    if targets.vms and not targets.is_fleet:
        ref = targets.vms[0]
        vm_clients = clients.for_subscription(ref.subscription_id) if ref.subscription_id else clients
        results = [check_vm(vm_clients, ref.resource_group, ref.name, options)]
    elif targets.vms:
        results = _check_refs(clients, targets, options, observer)
    else:
        results = _check_fleet(clients, targets, options, observer)
    results = [
        r for r in results if targets.tag is None or r.facts is None or targets.tag.matches(r.facts.tags)
    ]
    observer(Progress("done", f"Checked {len(results)} VM(s)", len(results), len(results)))
    return CheckResult(results, flow, _context(clients), targets.describe())


def _context(clients: Clients) -> dict[str, Any]:
    try:
        return dict(clients.ctx.to_dict())
    except AttributeError:
        return {"subscriptionId": clients.subscription_id}


def _check_refs(
    clients: Clients, targets: Targets, options: CheckOptions, observer: Observer
) -> list[VmResult]:
    def one(ref: VmRef) -> VmResult:
        vm_clients = clients.for_subscription(ref.subscription_id) if ref.subscription_id else clients
        try:
            return check_vm(vm_clients, ref.resource_group, ref.name, options)
        except AzrdpError as err:
            return _error_result(ref, vm_clients.subscription_id, options.flow, err)

    return _map(one, list(targets.vms), options.concurrency, observer)


def _check_fleet(
    clients: Clients, targets: Targets, options: CheckOptions, observer: Observer
) -> list[VmResult]:
    from azrdp.azure.inventory import list_fleet_facts

    def progress(what: str, count: int) -> None:
        observer(Progress("listed", f"Listed {count} {what}", count, 0))

    entries = list_fleet_facts(clients, targets.resource_group, progress)
    if targets.tag is not None:
        entries = [e for e in entries if e.facts is None or targets.tag.matches(e.facts.tags)]
    entries.sort(key=lambda e: (e.resource_group.lower(), e.name.lower()))
    cache: dict[Any, FlowVerdict] = {}

    def one(entry: Any) -> VmResult:
        if entry.facts is None:
            err = entry.error or AzureError(f"The facts of VM '{entry.name}' could not be read.")
            return VmResult(entry.id, entry.name, entry.resource_group, options.flow, error=err)
        try:
            return assess(entry.facts, options, _effective_for(clients, entry.facts, options), cache)
        except AzrdpError as err:
            return VmResult(entry.id, entry.name, entry.resource_group, options.flow, entry.facts, error=err)

    if options.effective:
        return _map(one, entries, options.concurrency, observer)
    results = []
    for i, entry in enumerate(entries, 1):
        results.append(one(entry))
        if i % 250 == 0 or i == len(entries):
            observer(Progress("vm", f"Assessed {i} of {len(entries)} VMs", i, len(entries)))
    return results


# --------------------------------------------------------------------------------------------
# Document
# --------------------------------------------------------------------------------------------


def flow_doc(flow: FlowQuery) -> dict[str, Any]:
    return {"port": flow.port, "protocol": flow.protocol, "source": flow.source_label}


def network_doc(result: VmResult) -> dict[str, Any] | None:
    facts = result.facts
    nic = facts.primary_nic if facts else None
    verdict = result.network
    if facts is None:
        return None
    doc: dict[str, Any] = {
        **flow_doc(result.flow),
        "publicIp": nic.public_ip.address if nic and nic.public_ip else None,
        "fqdn": nic.public_ip.fqdn if nic and nic.public_ip else None,
        "privateIp": nic.private_ip if nic else None,
        "nic": nic.name if nic else None,
        "nsgs": {
            "subnet": nic.subnet_nsg.name if nic and nic.subnet_nsg else None,
            "nic": nic.nsg.name if nic and nic.nsg else None,
        },
        "verdict": verdict.verdict if verdict else UNKNOWN,
        "allowedSources": list(verdict.allowed_sources) if verdict else [],
        "decidedBy": [
            {"layer": d.layer, "nsg": d.nsg, "rule": d.rule, "priority": d.priority, "access": d.access}
            for d in (verdict.decided_by if verdict else ())
        ],
    }
    if verdict is not None and verdict.reason:
        doc["reason"] = verdict.reason
    elif verdict is None:
        doc["reason"] = "The VM has no network interface that could be read."
    eff = result.control_plane.effective if result.control_plane else None
    if eff is not None:
        doc["effective"] = {"verdict": eff.verdict, "decidedBy": list(eff.decided_by), "error": eff.error}
    return doc


def vm_doc(result: VmResult) -> dict[str, Any]:
    facts = result.facts
    return {
        "id": result.id,
        "name": result.name,
        "resourceGroup": result.resource_group,
        "status": result.status,
        "location": facts.location if facts else None,
        "powerState": facts.power_state if facts else None,
        "provisioningState": facts.provisioning_state if facts else None,
        "osType": facts.os_type if facts else None,
        "vmSize": facts.vm_size if facts else None,
        "agent": {"status": facts.agent_status, "version": facts.agent_version} if facts else None,
        "network": network_doc(result),
        "findings": [to_doc(f) for f in result.findings],
        "error": {"code": result.error.code, "message": result.error.message} if result.error else None,
    }
