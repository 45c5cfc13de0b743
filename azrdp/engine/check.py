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

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from azrdp.checks import run_checks
from azrdp.checks.control_plane import ControlPlaneFacts, EffectiveComparison, FlowCheck
from azrdp.engine import Observer, Progress, ignore
from azrdp.errors import AzrdpError, AzureError, ExitCode, most_serious
from azrdp.facts import (
    VIA_LB_NAT,
    VIA_PRIVATE,
    VIA_PUBLIC_IP,
    AdminRule,
    BootDiagnostics,
    Endpoint,
    NicFacts,
    Nsg,
    PathFacts,
    PlatformHealth,
    Route,
    VmFacts,
)
from azrdp.model import SCHEMA_VERSION, Finding, Severity, Source, to_doc
from azrdp.nsg import (
    ALLOWED,
    EMPTY,
    RESTRICTED,
    UNKNOWN,
    AddressSet,
    FlowQuery,
    FlowVerdict,
    evaluate,
    internet,
    source_scope,
)
from azrdp.routes import ReturnPath, offline_routes, return_path
from azrdp.targets import Targets, VmRef

if TYPE_CHECKING:
    from azrdp.azure.clients import Clients

DEFAULT_CONCURRENCY = 8
# Named VMs (--ids, or the VMs a repair changed) of one resource group from which the group is
# listed rather than read VM by VM: two single-VM reads cost 12 requests, a group's listings ~10.
GROUP_LISTING_MIN = 2
# Findings that say a resource on the RDP path could not be read (NIC, its NSG, the subnet and its
# NSG, the VNet, the public IP, a load balancer leading in, the route table): all of them a Reader
# can read. Extra readings with actions of their own (admin rules, Resource Health, boot
# diagnostics, --verify, --effective) stay warnings under their own checks.
UNKNOWN_FINDINGS = frozenset({"facts-incomplete"})


@dataclass(frozen=True)
class CheckOptions:
    port: int = 3389
    protocol: str = "Tcp"
    source_ip: str | None = None
    effective: bool = False  # also ask Azure for the effective rules and routes of running VMs
    concurrency: int = DEFAULT_CONCURRENCY
    verify: bool = False  # also ask Network Watcher's IP flow verify (one POST per running VM)
    network_watcher: str | None = None  # the watcher's resource id; None: the VM's region's
    # Boot diagnostics: True reads them for every running VM; False only for one running Windows VM
    # whose agent is not Ready (fleets then never read them).
    boot_diagnostics: bool = False
    # Resource Health: None reads it for one VM (one GET) and not for fleets; True for fleets too
    # (one listing); False never.
    health: bool | None = None
    admin_rules: bool = True  # Virtual Network Manager admin rules (one POST per VNet)
    boot_grace_minutes: int = 15  # running this long without a Ready agent: vm-not-booted

    @property
    def flow(self) -> FlowQuery:
        return FlowQuery(port=self.port, protocol=self.protocol, source=self.source_ip)


@dataclass(frozen=True)
class Readings:
    """What was read about one VM besides its inventory facts."""

    paths: PathFacts | None = None
    health: PlatformHealth | None = None
    boot: BootDiagnostics | None = None
    verify: FlowCheck | None = None
    effective_routes: tuple[Route, ...] | str | None = None


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
    def unknown(self) -> bool:
        """A resource on the way in or out could not be read (facts-incomplete): the verdict would
        be a guess, so the VM is never called healthy."""
        return any(f.id in UNKNOWN_FINDINGS for f in self.findings)

    @property
    def status(self) -> str:
        """error (not read), blocked (a proven blocker), unknown (not all read), or healthy."""
        if self.error is not None:
            return "error"
        if self.blockers:
            return "blocked"
        return "unknown" if self.unknown else "healthy"

    @property
    def exit_code(self) -> ExitCode:
        if self.error is not None:
            return self.error.exit_code
        if self.blockers:
            return ExitCode.BLOCKERS  # proven whatever the unread resources say
        return ExitCode.ERROR if self.unknown else ExitCode.OK

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
                "unknown": sum(1 for vm in self.vms if vm.status == "unknown"),
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
    nic: NicFacts | None,
    flow: FlowQuery,
    cache: dict[Any, FlowVerdict] | None = None,
    admin_rules: tuple[AdminRule, ...] = (),
    closed: bool | None = None,
) -> FlowVerdict | None:
    """The flow through the admin rules, the subnet NSG and the NIC NSG; `unknown` when an NSG
    could not be read. `closed`: a Standard public IP or load balancer leads in (default: the
    NIC's public IP decides)."""
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
    standard = bool(nic.public_ip and nic.public_ip.sku.lower() == "standard") if closed is None else closed
    return evaluate(
        flow,
        destination_ip=nic.private_ip,
        subnet_nsg=nic.subnet_nsg,
        nic_nsg=nic.nsg,
        vnet_prefixes=vnet_prefixes,
        nic_asgs=nic.asgs,
        closed_without_nsg=standard,
        admin_rules=admin_rules,
        cache=cache,
    )


def endpoints_of(nic: NicFacts | None, paths: PathFacts | None, flow: FlowQuery) -> tuple[Endpoint, ...]:
    """Where a client can knock, in the order `azrdp probe` tries them: the NIC's public IP, then
    load balancer NAT frontends for the flow's (backend) port, then the private address."""
    if nic is None:
        return ()
    out: list[Endpoint] = []
    if nic.public_ip is not None and nic.public_ip.address:
        out.append(
            Endpoint(
                nic.public_ip.address,
                flow.port,
                VIA_PUBLIC_IP,
                True,
                nic.public_ip.name,
                nic.public_ip.fqdn,
                flow.port,
                nic.public_ip.sku,
            )
        )
    for rule in paths.nat_rules if paths else ():
        if rule.backend_port != flow.port or rule.protocol.lower() not in ("all", flow.protocol.lower()):
            continue
        pip = rule.frontend_public_ip
        public = rule.frontend_public_ip_id is not None
        address = pip.address if pip else rule.frontend_private_ip
        out.append(
            Endpoint(
                address,
                rule.frontend_port,
                VIA_LB_NAT,
                public,
                f"{rule.load_balancer}/{rule.rule}",
                pip.fqdn if pip else None,
                rule.backend_port,
                rule.sku,
            )
        )
    if nic.private_ip:
        out.append(Endpoint(nic.private_ip, flow.port, VIA_PRIVATE, False, nic.name, None, flow.port))
    out.sort(key=lambda e: {VIA_PUBLIC_IP: 0, VIA_LB_NAT: 1 if e.public else 2, VIA_PRIVATE: 3}[e.via])
    return tuple(out)


def return_paths_of(
    nic: NicFacts | None,
    paths: PathFacts | None,
    endpoints: tuple[Endpoint, ...],
    flow: FlowQuery,
    routes: Any,
    admitted: FlowVerdict | None = None,
) -> tuple[ReturnPath, ...]:
    """Judge the replies' way out for each way in: public (NIC IP or public NAT) and private.

    The clients judged are those the NSGs admit (all of the scope when none are), over IPv4: the
    route tables here hold IPv4 routes.
    """
    if nic is None:
        return ()
    vnet = nic.vnet.address_space if nic.vnet else (nic.subnet.address_prefixes if nic.subnet else ())
    effective = isinstance(routes, tuple)
    table = paths.route_table if paths else None
    if paths is not None and paths.unread("route table") and not effective:
        return ()
    route_list = routes if effective else offline_routes(table, vnet)
    public_scope = internet(vnet)
    out: list[ReturnPath] = []
    scope = source_scope(flow, vnet)
    if admitted is not None and admitted.allowed:
        scope = admitted.allowed
    scope = scope & AddressSet.of(["0.0.0.0/0"])
    if any(e.public and e.via != VIA_PRIVATE for e in endpoints):
        wanted = scope & public_scope
        if wanted:
            out.append(
                return_path(
                    route_list, wanted, public=True, table=table.name if table else None, effective=effective
                )
            )
    if flow.source is not None:
        private = scope - public_scope
        if private:
            out.append(
                return_path(
                    route_list,
                    private,
                    public=False,
                    table=table.name if table else None,
                    effective=effective,
                )
            )
    return tuple(out)


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
    readings: Readings | None = None,
    now: float | None = None,
) -> VmResult:
    """Verdict and control-plane findings for facts already gathered (pure but for the clock).

    `cache` (one dict per fleet) lets VMs behind the same NSGs share one evaluation.
    """
    import time

    readings = readings or Readings()
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
    paths = readings.paths if nic is not None else None
    admin = paths.admin_rules or () if paths else ()
    endpoints = endpoints_of(nic, paths, flow)
    closed = any(e.sku.lower() == "standard" for e in endpoints if e.public) if nic is not None else False
    network = evaluate_nic(nic, flow, cache, admin, closed)
    internet_verdict = (
        network
        if flow.source is None
        else evaluate_nic(nic, FlowQuery(flow.port, flow.protocol), cache, admin, closed)
    )
    routes = readings.effective_routes
    cp = ControlPlaneFacts(
        checked,
        flow,
        network,
        internet_verdict,
        effective,
        endpoints,
        paths,
        return_paths_of(nic, paths, endpoints, flow, routes, network),
        routes if isinstance(routes, str) else None,
        readings.health,
        readings.boot,
        readings.verify,
        time.time() if now is None else now,
        options.boot_grace_minutes,
    )
    findings = run_checks(cp, Source.CONTROL_PLANE) + run_checks(cp, Source.NETWORK_WATCHER)
    if error is not None:
        findings = [f for f in findings if f.id != "facts-incomplete"]
    result = VmResult(facts.id, facts.name, facts.resource_group, flow, facts, cp, findings, error)
    return result


def verify_sample(network: FlowVerdict | None, flow: FlowQuery) -> tuple[str, bool] | None:
    """The client address to ask IP flow verify about: --source-ip's, else one the verdict is sure of."""
    if flow.source is not None:
        return (str(flow.source).split("/")[0], False)
    if network is None or network.verdict == UNKNOWN:
        return None
    pool = network.allowed if network.verdict in (ALLOWED, RESTRICTED) and network.allowed else network.scope
    for lo, _ in pool.v4:
        import ipaddress

        return (str(ipaddress.IPv4Address(lo if lo & 0xFF else lo + 1)), True)
    return None


def azrdp_answer(facts: VmFacts, readings: Readings, options: CheckOptions, source: str) -> FlowCheck:
    """azrdp's own verdict for one client address, in IP flow verify's terms."""
    nic = facts.primary_nic
    flow = FlowQuery(options.port, options.protocol, source)
    paths = readings.paths
    verdict = evaluate_nic(nic, flow, None, paths.admin_rules or () if paths else (), None)
    access = None
    if verdict is not None and verdict.verdict != UNKNOWN:
        access = "Allow" if verdict.verdict == ALLOWED else "Deny"
    rules = tuple(f"{d.layer}:{d.rule}" for d in verdict.decided_by) if verdict else ()
    return FlowCheck(source, options.port, None, azrdp_access=access, azrdp_rules=rules)


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


def _effective_routes_for(
    clients: Clients, facts: VmFacts, options: CheckOptions
) -> tuple[Route, ...] | str | None:
    nic = facts.primary_nic
    if not options.effective or nic is None or not nic.id:
        return None
    if (facts.power_state or "").lower() != "running":
        return "the VM is not running (Azure computes effective routes only then)"
    from azrdp.azure.paths import get_effective_routes

    return get_effective_routes(clients, nic.id)


def _boot_wanted(facts: VmFacts, options: CheckOptions, single: bool) -> bool:
    running = (facts.power_state or "").lower() == "running"
    if not running or facts.boot_diagnostics is False:
        return False
    if options.boot_diagnostics:
        return True
    windows = (facts.os_type or "Windows").lower() == "windows"
    stuck = (facts.agent_status or "").lower() != "ready" and facts.agent_provisioned is not False
    return single and windows and stuck


def _extra_readings(
    clients: Clients, facts: VmFacts, options: CheckOptions, readings: Readings, single: bool
) -> Readings:
    """Boot diagnostics and effective routes for one VM, in parallel (each only when wanted)."""
    from azrdp.azure.inventory import _parallel

    tasks: list[Callable[[], Any]] = []
    boot = _boot_wanted(facts, options, single)
    if boot:
        from azrdp.azure.bootdiag import read_boot_diagnostics

        tasks.append(lambda: read_boot_diagnostics(clients, facts))
    tasks.append(lambda: _effective_routes_for(clients, facts, options))
    results = _parallel(tasks)
    return replace(readings, boot=results[0] if boot else None, effective_routes=results[-1])


def _with_verify(
    clients: Clients, finder: Any, result: VmResult, readings: Readings, options: CheckOptions
) -> VmResult:
    """Ask IP flow verify about the same packet and judge again with both answers."""
    facts = result.facts
    nic = facts.primary_nic if facts else None
    if facts is None or nic is None or result.error is not None:
        return result
    sample = verify_sample(result.network, options.flow)
    if sample is None or not nic.private_ip:
        check = FlowCheck(
            options.source_ip or "Internet", options.port, None, error="no single client address to ask about"
        )
    elif (facts.power_state or "").lower() != "running":
        check = FlowCheck(
            sample[0], options.port, None, error="the VM is not running (IP flow verify needs it)"
        )
    else:
        from azrdp.azure.verify import verify_flow

        source, is_sample = sample
        ours = azrdp_answer(facts, readings, options, source)
        answer = verify_flow(
            clients,
            finder,
            vm_id=facts.id,
            location=facts.location,
            nic_id=nic.id,
            local_ip=nic.private_ip,
            remote_ip=source,
            port=options.port,
            protocol=options.protocol,
        )
        check = replace(
            ours,
            azure_access=answer.access,
            azure_rule=answer.rule,
            watcher=answer.watcher,
            error=answer.error,
            sample=is_sample,
        )
    readings = replace(readings, verify=check)
    effective = result.control_plane.effective if result.control_plane else None
    return assess(facts, options, effective, None, readings)


def check_vm(
    clients: Clients,
    resource_group: str,
    name: str,
    options: CheckOptions,
    *,
    health: bool | None = None,
    finder: Any = None,
) -> VmResult:
    """Read one VM and assess it. Raises NotFoundError and the gateway's errors.

    Requests (a one-NIC VM with a public IP, default options): the VM and its Resource Health
    (round 1), the NIC (2), the VNet, the public IP, the NSG list and the VNet's admin rules (3):
    7. A route table, a load balancer and its frontend IP add one GET each; an agent that is not
    Ready adds boot diagnostics (one POST, then two blob downloads from the storage host).
    """
    from azrdp.azure.health import get_health
    from azrdp.azure.inventory import _parallel, complete_vm_facts, get_vm_json
    from azrdp.azure.paths import PathReader

    want_health = options.health is not False if health is None else health
    vm_id = (
        f"/subscriptions/{clients.subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.Compute/virtualMachines/{name}"
    )

    def get_vm() -> Any:
        return get_vm_json(clients, resource_group, name)

    tasks: list[Callable[[], Any]] = [get_vm]
    if want_health:
        tasks.append(lambda: get_health(clients, vm_id))
    vm_json, *rest = _parallel(tasks)
    health_reading = rest[0] if rest else None
    reader = PathReader(clients)
    facts = complete_vm_facts(
        clients,
        vm_json,
        alongside=lambda nics: reader.prefetch([n for n in nics if n.primary], options.admin_rules),
    )
    reader.add_pips(n.public_ip for n in facts.nics if n.public_ip is not None)
    reader.fetch_missing([facts], options.admin_rules)
    readings = Readings(paths=reader.assemble(facts, options.admin_rules), health=health_reading)
    readings = _extra_readings(clients, facts, options, readings, single=True)
    result = assess(facts, options, _effective_for(clients, facts, options), None, readings)
    if options.verify:
        from azrdp.azure.verify import WatcherFinder

        result = _with_verify(
            clients, finder or WatcherFinder(clients, options.network_watcher), result, readings, options
        )
    return result


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
    return check_refs(clients, list(targets.vms), options, observer)


def check_refs(
    clients: Clients, refs: Sequence[VmRef], options: CheckOptions, observer: Observer = ignore
) -> list[VmResult]:
    """Named VMs, one result each in the order given, never read VM by VM when a listing serves.

    Two or more of them in one resource group: that group's listings (the fleet path, its VM
    listing stopped once the named VMs are found), so N VMs cost O(pages), not 6 x N GETs. Alone
    in its group: the single-VM reads (6 requests; 7 with --health). A group listing that fails
    (a 403 at group scope, say, for an identity granted the VMs alone) falls back to the single-VM
    reads of its VMs, each with its own error.
    """
    from azrdp.azure.verify import WatcherFinder

    finders: dict[str, Any] = {}
    lock = threading.Lock()

    def client_for(ref: VmRef) -> Clients:
        return clients.for_subscription(ref.subscription_id) if ref.subscription_id else clients

    def finder_for(vm_clients: Clients) -> Any:
        with lock:
            return finders.setdefault(
                vm_clients.subscription_id, WatcherFinder(vm_clients, options.network_watcher)
            )

    def one(ref: VmRef) -> VmResult:
        vm_clients = client_for(ref)
        try:
            return check_vm(
                vm_clients,
                ref.resource_group,
                ref.name,
                options,
                health=options.health is True,
                finder=finder_for(vm_clients),
            )
        except AzrdpError as err:
            return _error_result(ref, vm_clients.subscription_id, options.flow, err)

    groups: dict[tuple[str, str], list[VmRef]] = {}
    for ref in refs:
        sub = (ref.subscription_id or clients.subscription_id).lower()
        groups.setdefault((sub, ref.resource_group.lower()), []).append(ref)
    done: dict[tuple[str, str, str], VmResult] = {}
    total = len(refs)

    def record(pairs: Sequence[tuple[VmRef, VmResult]]) -> None:
        with lock:
            for ref, result in pairs:
                done[_ref_key(ref, clients)] = result
                observer(Progress("vm", f"{result.name}: {result.status}", len(done), total))

    def group_task(members: list[VmRef]) -> None:
        vm_clients = client_for(members[0])
        try:
            results = _check_group_refs(vm_clients, members, options, finder_for(vm_clients))
        except AzrdpError:
            results = [one(ref) for ref in members]  # each VM then says what stops it
        record(list(zip(members, results, strict=True)))

    tasks: list[Callable[[], None]] = []
    for members in groups.values():
        if len(members) >= GROUP_LISTING_MIN:
            tasks.append(lambda m=members: group_task(m))  # type: ignore[misc]
        else:
            tasks.extend(lambda r=ref: record([(r, one(r))]) for ref in members)  # type: ignore[misc]
    if len(tasks) <= 1:
        for task in tasks:
            task()
    else:
        with ThreadPoolExecutor(
            max_workers=max(1, min(options.concurrency, len(tasks))), thread_name_prefix="azrdp-check"
        ) as pool:
            list(pool.map(lambda t: t(), tasks))
    return [done[_ref_key(ref, clients)] for ref in refs]


def _ref_key(ref: VmRef, clients: Clients) -> tuple[str, str, str]:
    sub = (ref.subscription_id or clients.subscription_id).lower()
    return (sub, ref.resource_group.lower(), ref.name.lower())


def _check_group_refs(
    clients: Clients, refs: Sequence[VmRef], options: CheckOptions, finder: Any
) -> list[VmResult]:
    """The named VMs of one resource group from its listings. Raises when a listing fails."""
    from azrdp.azure.health import list_health
    from azrdp.azure.inventory import Lookup, _parallel, list_fleet_facts
    from azrdp.azure.paths import PathReader
    from azrdp.errors import NotFoundError

    group = refs[0].resource_group
    names = {ref.name.lower() for ref in refs}
    reader = PathReader(clients)
    listed = Lookup()
    tasks: list[Callable[[], Any]] = [
        lambda: list_fleet_facts(clients, group, None, names=names, lookup=listed),
        lambda: reader.list_all(group),
    ]
    if options.health is True:
        tasks.append(lambda: list_health(clients, group))
    entries, _, *rest = _parallel(tasks)
    reader.add_pips(listed.pips.values())
    by_name = {entry.name.lower(): entry for entry in entries}
    found = [by_name[n] for n in sorted(names) if n in by_name]
    results = _assess_entries(clients, found, reader, options, rest[0] if rest else None, finder, single=True)
    by_result = {result.name.lower(): result for result in results}
    out = []
    for ref in refs:
        result = by_result.get(ref.name.lower())
        if result is None:
            err = NotFoundError(
                f"VM '{ref.name}' in resource group '{ref.resource_group}' was not found.",
                fix="Check the name and resource group (`az vm list -g GROUP -o table`), or pass "
                "--subscription.",
            )
            result = _error_result(ref, clients.subscription_id, options.flow, err)
        out.append(result)
    return out


def _check_fleet(
    clients: Clients, targets: Targets, options: CheckOptions, observer: Observer
) -> list[VmResult]:
    """Listings only (O(pages)): VMs, NICs, NSGs, VNets, public IPs, load balancers, route tables
    (and, with --health, one Resource Health listing), then one admin-rule POST per VNet."""
    from azrdp.azure.health import list_health
    from azrdp.azure.inventory import Lookup, _parallel, list_fleet_facts
    from azrdp.azure.paths import PathReader

    def progress(what: str, count: int) -> None:
        observer(Progress("listed", f"Listed {count} {what}", count, 0))

    reader = PathReader(clients)
    listed = Lookup()
    tasks: list[Callable[[], Any]] = [
        lambda: list_fleet_facts(clients, targets.resource_group, progress, lookup=listed),
        lambda: reader.list_all(targets.resource_group),
    ]
    if options.health is True:
        tasks.append(lambda: list_health(clients, targets.resource_group))
    entries, _, *rest = _parallel(tasks)
    reader.add_pips(listed.pips.values())  # load balancer frontends are among them
    health = rest[0] if rest else None
    if targets.tag is not None:
        entries = [e for e in entries if e.facts is None or targets.tag.matches(e.facts.tags)]
    entries.sort(key=lambda e: (e.resource_group.lower(), e.name.lower()))
    finder = None
    if options.verify:
        from azrdp.azure.verify import WatcherFinder

        finder = WatcherFinder(clients, options.network_watcher)
    return _assess_entries(clients, entries, reader, options, health, finder, observer=observer)


def _assess_entries(
    clients: Clients,
    entries: Sequence[Any],
    reader: Any,
    options: CheckOptions,
    health: dict[str, PlatformHealth] | str | None,
    finder: Any,
    *,
    single: bool = False,
    observer: Observer = ignore,
) -> list[VmResult]:
    """Listed VMs (FleetEntry) -> results: their paths (admin rules per VNet, references in other
    groups), then the pure assessment; per-VM readings only where options ask for them.

    `single`: the VMs were named one by one, so each gets what `check VM` would read for it
    (boot diagnostics of a stuck Windows VM).
    """
    present = [e.facts for e in entries if e.facts is not None]
    reader.add_pips(n.public_ip for f in present for n in f.nics if n.public_ip is not None)
    reader.fetch_missing(present, options.admin_rules)
    cache: dict[Any, FlowVerdict] = {}

    def health_of(facts: VmFacts) -> PlatformHealth | None:
        if isinstance(health, str):
            return PlatformHealth(state="Unknown", error=health)
        if isinstance(health, dict):
            found: PlatformHealth = health.get(
                facts.id.lower(), PlatformHealth(state="Unknown", error="not in the listing")
            )
            return found
        return None

    per_vm = single or options.effective or options.verify or options.boot_diagnostics

    def one(entry: Any) -> VmResult:
        if entry.facts is None:
            err = entry.error or AzureError(f"The facts of VM '{entry.name}' could not be read.")
            return VmResult(entry.id, entry.name, entry.resource_group, options.flow, error=err)
        try:
            readings = Readings(
                paths=reader.assemble(entry.facts, options.admin_rules), health=health_of(entry.facts)
            )
            if per_vm:
                readings = _extra_readings(clients, entry.facts, options, readings, single=single)
            result = assess(
                entry.facts, options, _effective_for(clients, entry.facts, options), cache, readings
            )
            if options.verify:
                result = _with_verify(clients, finder, result, readings, options)
            return result
        except AzrdpError as err:
            return VmResult(entry.id, entry.name, entry.resource_group, options.flow, entry.facts, error=err)

    if per_vm and len(entries) > 1:
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
    cp = result.control_plane
    eff = cp.effective if cp else None
    if eff is not None:
        doc["effective"] = {"verdict": eff.verdict, "decidedBy": list(eff.decided_by), "error": eff.error}
    if cp is not None:
        doc["endpoints"] = [
            {"address": e.address, "port": e.port, "via": e.via, "public": e.public, "name": e.name}
            for e in cp.endpoints
        ]
        paths = cp.paths
        if paths is not None:
            admin = paths.admin_rules
            doc["adminRules"] = {
                "read": admin is not None,
                "count": len(admin) if admin is not None else None,
                "error": paths.unread("admin rules"),
            }
            doc["routes"] = _routes_doc(cp)
        if cp.verify is not None:
            v = cp.verify
            doc["verify"] = {
                "source": v.source,
                "sample": v.sample,
                "azure": {"access": v.azure_access, "rule": v.azure_rule, "watcher": v.watcher},
                "azrdp": {"access": v.azrdp_access, "decidedBy": list(v.azrdp_rules)},
                "match": None
                if v.azure_access is None or v.azrdp_access is None
                else v.azure_access.lower() == v.azrdp_access.lower(),
                "error": v.error,
            }
    return doc


def _routes_doc(cp: ControlPlaneFacts) -> dict[str, Any]:
    paths = cp.paths
    table = paths.route_table if paths else None
    out: dict[str, Any] = {
        "routeTable": table.name if table else None,
        "effective": any(p.effective for p in cp.return_paths),
        "effectiveError": cp.effective_routes_error,
        "error": paths.unread("route table") if paths else None,
        "returnPaths": [],
    }
    for path in cp.return_paths:
        verdict = "symmetric"
        if path.dropped:
            verdict = "dropped" if path.dropped == path.scope else "partlyDropped"
        elif path.asymmetric:
            verdict = "asymmetric" if path.asymmetric == path.scope else "partlyAsymmetric"
        elif path.undecided == path.scope:
            verdict = "unknown"
        out["returnPaths"].append(
            {
                "wayIn": "public" if path.public else "private",
                "verdict": verdict,
                "decidedBy": [
                    {
                        "route": s.route.name,
                        "prefix": s.prefix,
                        "nextHopType": s.route.next_hop_type,
                        "nextHopIp": s.route.next_hop_ip,
                        "source": s.route.source,
                    }
                    for s in path.shares
                ][:10],
            }
        )
    return out


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
        "health": _health_doc(result.control_plane.health if result.control_plane else None),
        "boot": _boot_doc(result.control_plane.boot if result.control_plane else None),
        "findings": [to_doc(f) for f in result.findings],
        "error": {"code": result.error.code, "message": result.error.message} if result.error else None,
    }


def _health_doc(health: PlatformHealth | None) -> dict[str, Any] | None:
    if health is None:
        return None
    return {
        "availabilityState": health.state,
        "title": health.title,
        "summary": health.summary,
        "reasonType": health.reason_type,
        "occurred": health.occurred,
        "error": health.error,
    }


def _boot_doc(boot: BootDiagnostics | None) -> dict[str, Any] | None:
    if boot is None:
        return None
    return {
        "screenshot": boot.screenshot_path,
        "screenshotBytes": boot.screenshot_bytes,
        "serialTail": list(boot.serial_tail),
        "serialBytes": boot.serial_bytes,
        "error": boot.error,
    }
