"""Control-plane checks: pure functions over a VM's facts and the NSG verdict for the RDP flow.

Each check reads a `ControlPlaneFacts` (built by azrdp.engine.check) and returns its findings.
The ids are part of the output contract; docs anchors are `checks.md#<id>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from azrdp.checks import register_check
from azrdp.facts import (
    VIA_LB_NAT,
    VIA_PUBLIC_IP,
    BootDiagnostics,
    Endpoint,
    NicFacts,
    NsgRule,
    PathFacts,
    PlatformHealth,
    VmFacts,
)
from azrdp.model import Finding, Severity, Source
from azrdp.nsg import ALLOWED, DENIED, RESTRICTED, UNKNOWN, FlowQuery, FlowVerdict, inbound_rules, parse_ports
from azrdp.routes import ReturnPath

C = "Microsoft.Compute/virtualMachines"
N = "Microsoft.Network"
VM_READ = (f"{C}/read", f"{C}/instanceView/read")
NET_READ = (
    f"{N}/networkInterfaces/read",
    f"{N}/networkSecurityGroups/read",
    f"{N}/virtualNetworks/read",
    f"{N}/publicIPAddresses/read",
)
PATH_READ = (f"{N}/loadBalancers/read", f"{N}/routeTables/read")
JIT_PREFIX = "securitycenter-jitrule"


@dataclass(frozen=True)
class EffectiveComparison:
    """Azure's effective security rules evaluated the same way, beside the offline verdict."""

    verdict: str
    decided_by: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class FlowCheck:
    """Network Watcher's IP flow verify beside azrdp's own answer for the same packet."""

    source: str  # the client address asked about
    port: int
    azure_access: str | None  # Allow | Deny; None when Azure could not be asked
    azure_rule: str = ""
    azrdp_access: str | None = None  # Allow | Deny | None (unknown)
    azrdp_rules: tuple[str, ...] = ()
    watcher: str = ""
    error: str | None = None
    sample: bool = False  # the source is a sample of the scope, not --source-ip


@dataclass(frozen=True)
class ControlPlaneFacts:
    """What the control-plane checks read: the gathered facts plus the evaluated RDP flow."""

    vm: VmFacts
    flow: FlowQuery = field(default_factory=FlowQuery)
    # The flow through the primary NIC as asked (--source-ip or the whole Internet) ...
    network: FlowVerdict | None = None
    # ... and always for the whole Internet, which exposure checks need even with --source-ip.
    internet: FlowVerdict | None = None
    effective: EffectiveComparison | None = None
    # Where a client can knock, best first: NIC public IP, load balancer NAT, private.
    endpoints: tuple[Endpoint, ...] = ()
    paths: PathFacts | None = None
    # How replies leave, per way in (see azrdp.routes); empty when there is nothing to judge.
    return_paths: tuple[ReturnPath, ...] = ()
    effective_routes_error: str | None = None
    health: PlatformHealth | None = None
    boot: BootDiagnostics | None = None
    verify: FlowCheck | None = None
    # Seconds since the epoch when the facts were judged (vm-not-booted compares times to it).
    now: float = 0.0
    boot_grace_minutes: int = 15

    @property
    def public_endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.public)


def _finding(
    check_id: str,
    severity: Severity,
    title: str,
    evidence: str,
    recommendation: str,
    source: Source = Source.CONTROL_PLANE,
    **details: object,
) -> Finding:
    return Finding(check_id, severity, title, evidence, recommendation, source, details)


def _rules_text(verdict: FlowVerdict, access: str | None = None) -> str:
    parts = [
        f"{d.layer} NSG '{d.nsg}' rule '{d.rule}' (priority {d.priority}, {d.access})"
        for d in verdict.decided_by
        if access is None or d.access.lower() == access.lower()
    ]
    return "; ".join(parts)


def _nsgs(nic: NicFacts) -> list[tuple[str, str, tuple[NsgRule, ...]]]:
    out = []
    if nic.subnet_nsg is not None:
        out.append(("subnet", nic.subnet_nsg.name, tuple(inbound_rules(nic.subnet_nsg))))
    if nic.nsg is not None:
        out.append(("nic", nic.nsg.name, tuple(inbound_rules(nic.nsg))))
    return out


def _covers(rule: NsgRule, port: int, protocol: str) -> bool:
    proto = rule.protocol.lower()
    if proto not in ("*", "any", "all", protocol.lower()):
        return False
    return any(lo <= port <= hi for lo, hi in parse_ports(rule.destination_ports))


@register_check(
    id="vm-provisioning-failed",
    title="The VM's last provisioning operation failed",
    severity=Severity.BLOCKER,
    source=Source.CONTROL_PLANE,
    reads="VM model and instance view (provisioning state)",
    rbac=VM_READ,
)
def vm_provisioning_failed(facts: ControlPlaneFacts) -> list[Finding]:
    vm = facts.vm
    state = (vm.provisioning_state or "").lower()
    code = (vm.provisioning_code or "").lower()
    if state != "failed" and not code.startswith("provisioningstate/failed"):
        return []
    detail = vm.provisioning_code or "ProvisioningState/failed"
    return [
        _finding(
            "vm-provisioning-failed",
            Severity.BLOCKER,
            "The VM's last provisioning operation failed",
            f"Provisioning state is {vm.provisioning_state or 'Failed'} ({detail}).",
            "Look at the failed operation in the activity log (`az monitor activity-log list -g "
            f"{vm.resource_group} --status Failed`); `az vm reapply` or `az vm redeploy` often clears a "
            "transient platform failure.",
            provisioningState=vm.provisioning_state,
            code=vm.provisioning_code,
        )
    ]


@register_check(
    id="vm-not-running",
    title="The VM is not running",
    severity=Severity.BLOCKER,
    source=Source.CONTROL_PLANE,
    reads="VM instance view (power state)",
    rbac=VM_READ,
)
def vm_not_running(facts: ControlPlaneFacts) -> list[Finding]:
    state = (facts.vm.power_state or "").lower()
    if not state or state == "running":
        return []
    transitional = state in ("starting", "stopping", "deallocating")
    fix = (
        "Wait for the power operation to finish, then check again."
        if transitional
        else f"Start it: `az vm start -g {facts.vm.resource_group} -n {facts.vm.name}` (or `azrdp repair`)."
    )
    return [
        _finding(
            "vm-not-running",
            Severity.BLOCKER,
            "The VM is not running",
            f"Power state is '{state}'; Remote Desktop needs a running VM.",
            fix,
            powerState=state,
        )
    ]


@register_check(
    id="vm-not-windows",
    title="The VM does not run Windows",
    severity=Severity.WARNING,
    source=Source.CONTROL_PLANE,
    reads="VM model (OS disk type)",
    rbac=VM_READ,
)
def vm_not_windows(facts: ControlPlaneFacts) -> list[Finding]:
    os_type = facts.vm.os_type
    if not os_type or os_type.lower() == "windows":
        return []
    return [
        _finding(
            "vm-not-windows",
            Severity.WARNING,
            "The VM does not run Windows",
            f"OS type is {os_type}: Remote Desktop only answers if an RDP server such as xrdp is installed, "
            "and azrdp's in-guest checks and repairs are for Windows.",
            "Connect with SSH (`az ssh vm` or Bastion); for a desktop, install and configure xrdp.",
            osType=os_type,
        )
    ]


@register_check(
    id="agent-not-ready",
    title="The Azure VM guest agent is not ready",
    severity=Severity.WARNING,
    source=Source.CONTROL_PLANE,
    reads="VM instance view (vmAgent status)",
    rbac=VM_READ,
)
def agent_not_ready(facts: ControlPlaneFacts) -> list[Finding]:
    vm = facts.vm
    if (vm.power_state or "").lower() != "running":
        return []
    if (vm.agent_status or "").lower() == "ready":
        return []
    status = vm.agent_status or "never reported"
    message = f" ({vm.agent_message})" if vm.agent_message else ""
    return [
        _finding(
            "agent-not-ready",
            Severity.WARNING,
            "The Azure VM guest agent is not ready",
            f"Guest agent status is {status}{message}, version {vm.agent_version or 'unknown'}. "
            "Run Command, VM extensions and password reset need the agent; RDP itself does not.",
            "Restart the VM (`az vm restart`) or check the WindowsAzureGuestAgent service from the serial "
            "console; in-guest diagnose cannot run until the agent is Ready.",
            agentStatus=vm.agent_status,
            agentVersion=vm.agent_version,
        )
    ]


@register_check(
    id="nsg-denies-rdp",
    title="A network security group denies the RDP flow",
    severity=Severity.BLOCKER,
    source=Source.CONTROL_PLANE,
    reads="NIC and subnet NSG rules, VNet address space, application security groups",
    rbac=NET_READ,
)
def nsg_denies_rdp(facts: ControlPlaneFacts) -> list[Finding]:
    verdict = facts.network
    if verdict is None or verdict.verdict != DENIED:
        return []
    flow = facts.flow
    nic = facts.vm.primary_nic
    if flow.source is None and (nic is None or not nic.public_ip_id) and not facts.public_endpoints:
        # Nothing on the Internet can reach a VM without a public way in anyway; no-public-ip explains
        # the ways in, and --source-ip checks the NSG path from a VPN or peered address.
        return []
    denying = [d for d in verdict.decided_by if d.access.lower() == "deny" and d.layer != "admin"]
    if not denying and any(d.layer == "admin" for d in verdict.decided_by):
        return []  # an admin rule decided: admin-rule-denies-rdp says so
    who = f"from {flow.source}" if flow.source else "from anywhere on the Internet"
    rules = (
        "; ".join(
            f"{d.layer} NSG '{d.nsg}' rule '{d.rule}' (priority {d.priority}, {d.access})" for d in denying
        )
        or verdict.reason
    )
    if flow.source:
        fix = (
            f"Add an Allow rule for {flow.source} on {flow.protocol.upper()} port {flow.port} above "
            + ", ".join(f"'{d.rule}' in NSG '{d.nsg}'" for d in denying)
            + f" (`azrdp repair {facts.vm.name} -g {facts.vm.resource_group} --source-ip {flow.source}`). "
            "Never allow * or Internet."
        )
    else:
        fix = (
            "Allow only your own public address: rerun with --source-ip <your IP>, then "
            "`azrdp repair ... --source-ip <your IP>`, or use Azure Bastion / just-in-time access."
        )
    return [
        _finding(
            "nsg-denies-rdp",
            Severity.BLOCKER,
            "A network security group denies the RDP flow",
            f"{flow.protocol.upper()} port {flow.port} {who} to {_target(facts)} is denied by {rules}.",
            fix,
            decidedBy=[
                {"layer": d.layer, "nsg": d.nsg, "rule": d.rule, "priority": d.priority, "access": d.access}
                for d in denying
            ],
        )
    ]


def _target(facts: ControlPlaneFacts) -> str:
    nic = facts.vm.primary_nic
    return f"{nic.private_ip}" if nic and nic.private_ip else "the VM"


@register_check(
    id="rdp-source-restricted",
    title="Only some Internet addresses may reach RDP",
    severity=Severity.INFO,
    source=Source.CONTROL_PLANE,
    reads="NIC and subnet NSG rules",
    rbac=NET_READ,
)
def rdp_source_restricted(facts: ControlPlaneFacts) -> list[Finding]:
    verdict = facts.network
    if verdict is None or verdict.verdict != RESTRICTED:
        return []
    shown = list(verdict.allowed_sources[:10])
    more = len(verdict.allowed_sources) - len(shown)
    listing = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
    return [
        _finding(
            "rdp-source-restricted",
            Severity.INFO,
            "Only some Internet addresses may reach RDP",
            f"The NSGs admit port {facts.flow.port} only from {listing}.",
            "Make sure your own public address is among them: rerun with --source-ip <your IP>.",
            allowedSources=list(verdict.allowed_sources),
        )
    ]


@register_check(
    id="nsg-verdict-unknown",
    title="The NSG verdict depends on service tags or groups azrdp cannot resolve",
    severity=Severity.WARNING,
    source=Source.CONTROL_PLANE,
    reads="NIC and subnet NSG rules",
    rbac=NET_READ,
)
def nsg_verdict_unknown(facts: ControlPlaneFacts) -> list[Finding]:
    verdict = facts.network
    # An unknown verdict from unreadable NSGs is reported by facts-incomplete.
    if verdict is None or verdict.verdict != UNKNOWN or not verdict.unresolved:
        return []
    rules = "; ".join(
        f"{u.layer} NSG '{u.nsg}' rule '{u.rule}' ({u.access} from {', '.join(u.tags)})"
        for u in verdict.unresolved
    )
    return [
        _finding(
            "nsg-verdict-unknown",
            Severity.WARNING,
            "The NSG verdict depends on service tags or groups azrdp cannot resolve",
            f"{verdict.reason} Rules: {rules}.",
            "Rerun with --effective (Azure expands the tags) or check with Network Watcher's IP flow verify.",
            unresolved=[{"nsg": u.nsg, "rule": u.rule, "tags": list(u.tags)} for u in verdict.unresolved],
        )
    ]


@register_check(
    id="no-nsg",
    title="No network security group filters the VM's traffic",
    severity=Severity.WARNING,
    source=Source.CONTROL_PLANE,
    reads="NIC and subnet NSG associations, public IP SKU",
    rbac=NET_READ,
)
def no_nsg(facts: ControlPlaneFacts) -> list[Finding]:
    nic = facts.vm.primary_nic
    if nic is None or nic.nsg_id or (nic.subnet and nic.subnet.nsg_id):
        return []
    standard = bool(nic.public_ip and nic.public_ip.sku.lower() == "standard")
    if standard:
        evidence = (
            "Neither the NIC nor its subnet has an NSG, and the public IP is Standard SKU, which is closed "
            "to inbound traffic unless an NSG allows it: RDP cannot get in."
        )
        severity = Severity.BLOCKER
        fix = (
            "Attach an NSG to the NIC or subnet with an Allow rule for your own address only "
            "(`az network nsg create` + `az network nsg rule create --source-address-prefixes <your IP>`)."
        )
    else:
        evidence = (
            "Neither the NIC nor its subnet has an NSG: every port is open to whatever can route to it."
        )
        severity = Severity.WARNING
        fix = "Attach an NSG to the subnet or NIC that allows RDP only from your own addresses."
    return [
        _finding(
            "no-nsg",
            severity,
            "No network security group filters the VM's traffic",
            evidence,
            fix,
            publicIpSku=nic.public_ip.sku if nic.public_ip else None,
        )
    ]


@register_check(
    id="rdp-open-to-internet",
    title="RDP is open to the whole Internet",
    severity=Severity.WARNING,
    source=Source.CONTROL_PLANE,
    reads="NIC and subnet NSG rules, public IP",
    rbac=NET_READ,
)
def rdp_open_to_internet(facts: ControlPlaneFacts) -> list[Finding]:
    verdict = facts.internet
    nic = facts.vm.primary_nic
    if verdict is None or verdict.verdict != ALLOWED or nic is None:
        return []
    ways = [
        f"public IP {e.address or e.name}" if e.via == VIA_PUBLIC_IP else f"{e.address}:{e.port} ({e.name})"
        for e in facts.public_endpoints
    ]
    if nic.public_ip is not None and not any(e.via == VIA_PUBLIC_IP for e in facts.public_endpoints):
        ways.insert(0, f"public IP {nic.public_ip.address or nic.public_ip.name}")
    if not ways:
        return []
    rules = (
        "; ".join(
            f"{d.layer} {'rule' if d.layer == 'admin' else 'NSG'} '{d.nsg}' rule '{d.rule}' "
            f"(priority {d.priority}, {d.access})"
            for d in verdict.decided_by
            if d.access.lower() in ("allow", "alwaysallow")
        )
        or verdict.reason
    )
    return [
        _finding(
            "rdp-open-to-internet",
            Severity.WARNING,
            "RDP is open to the whole Internet",
            f"Port {facts.flow.port} behind {', '.join(ways)} admits any "
            f"Internet address through {rules}. Exposed RDP is brute-forced within hours.",
            "Restrict the rule's source to your own addresses, or remove it and use Azure Bastion or "
            "just-in-time VM access.",
            decidedBy=[{"layer": d.layer, "nsg": d.nsg, "rule": d.rule} for d in verdict.decided_by],
        )
    ]


@register_check(
    id="jit-rule-present",
    title="Defender for Cloud just-in-time access manages RDP",
    severity=Severity.INFO,
    source=Source.CONTROL_PLANE,
    reads="NIC and subnet NSG rules (SecurityCenter-JITRule* names)",
    rbac=NET_READ,
)
def jit_rule_present(facts: ControlPlaneFacts) -> list[Finding]:
    nic = facts.vm.primary_nic
    if nic is None:
        return []
    found = [
        (layer, nsg, r)
        for layer, nsg, rules in _nsgs(nic)
        for r in rules
        if r.name.lower().startswith(JIT_PREFIX) and _covers(r, facts.flow.port, facts.flow.protocol)
    ]
    if not found:
        return []
    listing = "; ".join(
        f"{layer} NSG '{nsg}' rule '{r.name}' ({r.access}, priority {r.priority})" for layer, nsg, r in found
    )
    denied = facts.network is not None and facts.network.verdict == DENIED
    return [
        _finding(
            "jit-rule-present",
            Severity.INFO,
            "Defender for Cloud just-in-time access manages RDP",
            f"Just-in-time rules cover port {facts.flow.port}: {listing}."
            + (" Outside an approved request the JIT Deny rule blocks RDP." if denied else ""),
            "Request access instead of editing the rules: Defender for Cloud > Just-in-time VM access, or "
            f"`az security jit-policy` / the portal's Connect > Request access for {facts.vm.name}.",
            rules=[r.name for _, _, r in found],
        )
    ]


@register_check(
    id="no-public-ip",
    title="The VM has no public IP address",
    severity=Severity.INFO,
    source=Source.CONTROL_PLANE,
    reads="NIC IP configurations, VNet subnets (AzureBastionSubnet)",
    rbac=NET_READ,
)
def no_public_ip(facts: ControlPlaneFacts) -> list[Finding]:
    nic = facts.vm.primary_nic
    if nic is None or nic.public_ip_id:
        return []
    if any(e.via == VIA_LB_NAT for e in facts.public_endpoints):
        return []  # a public load balancer's NAT rule is the way in (lb-nat-rdp says which)
    bastion = bool(nic.vnet and nic.vnet.has_bastion_subnet)
    how = (
        f"The VNet '{nic.vnet.name}' has an AzureBastionSubnet: connect through Azure Bastion "
        f"(`az network bastion rdp --target-resource-id {facts.vm.id}`)."
        if bastion and nic.vnet
        else "Connect over VPN, ExpressRoute or VNet peering to its private address, or deploy Azure Bastion."
    )
    if facts.flow.source is None:
        how += " Pass --source-ip <your VPN or peered address> to check the NSG path from it."
    return [
        _finding(
            "no-public-ip",
            Severity.INFO,
            "The VM has no public IP address",
            f"The primary NIC '{nic.name}' has only the private address {nic.private_ip or 'unknown'}; "
            "it is reachable only from networks routed to its VNet.",
            how,
            privateIp=nic.private_ip,
            bastionSubnet=bastion,
        )
    ]


@register_check(
    id="public-ip-unassigned",
    title="The public IP resource has no address",
    severity=Severity.WARNING,
    source=Source.CONTROL_PLANE,
    reads="Public IP address",
    rbac=NET_READ,
)
def public_ip_unassigned(facts: ControlPlaneFacts) -> list[Finding]:
    nic = facts.vm.primary_nic
    if nic is None or nic.public_ip is None or nic.public_ip.address:
        return []
    running = (facts.vm.power_state or "").lower() == "running"
    return [
        _finding(
            "public-ip-unassigned",
            Severity.WARNING if running else Severity.INFO,
            "The public IP resource has no address",
            f"Public IP '{nic.public_ip.name}' ({nic.public_ip.allocation or 'unknown'} allocation) has no "
            "address assigned" + ("." if running else "; a Dynamic address is assigned when the VM starts."),
            "Start the VM, or make the address Static so it survives deallocation "
            f"(`az network public-ip update -g <rg> -n {nic.public_ip.name} --allocation-method Static`).",
            allocation=nic.public_ip.allocation,
        )
    ]


@register_check(
    id="nsg-rule-targets-public-ip",
    title="An NSG rule for RDP names the public IP as destination",
    severity=Severity.WARNING,
    source=Source.CONTROL_PLANE,
    reads="NIC and subnet NSG rules, public IP",
    rbac=NET_READ,
)
def nsg_rule_targets_public_ip(facts: ControlPlaneFacts) -> list[Finding]:
    nic = facts.vm.primary_nic
    if nic is None or nic.public_ip is None or not nic.public_ip.address:
        return []
    public = nic.public_ip.address
    hits = [
        (nsg, r)
        for _, nsg, rules in _nsgs(nic)
        for r in rules
        if r.access.lower() == "allow"
        and _covers(r, facts.flow.port, facts.flow.protocol)
        and any(p.split("/")[0] == public for p in r.destination_prefixes)
    ]
    if not hits:
        return []
    return [
        _finding(
            "nsg-rule-targets-public-ip",
            Severity.WARNING,
            "An NSG rule for RDP names the public IP as destination",
            "NSGs see the private address after Azure translates the public one, so these rules never match: "
            + "; ".join(
                f"NSG '{n}' rule '{r.name}' (destination {', '.join(r.destination_prefixes)})"
                for n, r in hits
            )
            + ".",
            f"Use the private address {nic.private_ip or ''} (or VirtualNetwork / *) as the rule's "
            "destination.",
            rules=[r.name for _, r in hits],
        )
    ]


@register_check(
    id="boot-diagnostics-disabled",
    title="Boot diagnostics are off",
    severity=Severity.INFO,
    source=Source.CONTROL_PLANE,
    reads="VM model (diagnosticsProfile)",
    rbac=VM_READ,
)
def boot_diagnostics_disabled(facts: ControlPlaneFacts) -> list[Finding]:
    vm = facts.vm
    if vm.boot_diagnostics is not False:
        return []
    stuck = (vm.power_state or "").lower() == "running" and (vm.agent_status or "").lower() != "ready"
    return [
        _finding(
            "boot-diagnostics-disabled",
            Severity.WARNING if stuck else Severity.INFO,
            "Boot diagnostics are off",
            "Without boot diagnostics there is no screenshot and no serial console, the ways in when RDP "
            "and Run Command both fail."
            + (
                " The guest agent is not Ready, so whether Windows finished booting cannot be seen."
                if stuck
                else ""
            ),
            f"`az vm boot-diagnostics enable -g {facts.vm.resource_group} -n {facts.vm.name}` "
            "(managed storage).",
        )
    ]


@register_check(
    id="facts-incomplete",
    title="Some network resources of the VM could not be read",
    severity=Severity.WARNING,
    source=Source.CONTROL_PLANE,
    reads="NICs, NSGs, VNets, public IPs, load balancers and route tables referenced by the VM",
    rbac=NET_READ + PATH_READ,
)
def facts_incomplete(facts: ControlPlaneFacts) -> list[Finding]:
    problems = [(rid, why) for nic in facts.vm.nics for rid, why in nic.unreadable]
    if facts.paths is not None:
        # Load balancers, their frontend IPs and route tables are read like the rest (Reader);
        # admin rules need an action of their own and have their own check.
        problems += [
            (rid, f"{what}: {why}") for what, rid, why in facts.paths.unreadable if what != "admin rules"
        ]
    if not facts.vm.nics:
        problems.append((facts.vm.id, "the VM has no network interface that could be read"))
    if not problems:
        return []
    return [
        _finding(
            "facts-incomplete",
            Severity.WARNING,
            "Some network resources of the VM could not be read",
            "; ".join(f"{rid.rsplit('/', 1)[-1]}: {why}" for rid, why in problems)
            + ". Without them the verdict would be a guess: the VM's status is unknown (exit 1), never "
            "healthy.",
            "Grant Reader on the resource groups holding them (Microsoft.Network/*/read), then check again.",
            unreadable=[{"id": rid, "reason": why} for rid, why in problems],
        )
    ]


@register_check(
    id="effective-rules-disagree",
    title="Azure's effective security rules disagree with the NSG evaluation",
    severity=Severity.WARNING,
    source=Source.NETWORK_WATCHER,
    reads="Effective NSG rules of the primary NIC (POST effectiveNetworkSecurityGroups)",
    rbac=(f"{N}/networkInterfaces/effectiveNetworkSecurityGroups/action",),
)
def effective_rules_disagree(facts: ControlPlaneFacts) -> list[Finding]:
    eff = facts.effective
    if eff is None or facts.network is None:
        return []
    if eff.error:
        return [
            _finding(
                "effective-rules-disagree",
                Severity.INFO,
                "Azure's effective security rules could not be compared",
                f"Effective rules unavailable: {eff.error}",
                "Effective rules need a running VM and the effectiveNetworkSecurityGroups/action permission.",
                Source.NETWORK_WATCHER,
            )
        ]
    if eff.verdict == facts.network.verdict:
        return []
    return [
        _finding(
            "effective-rules-disagree",
            Severity.WARNING,
            "Azure's effective security rules disagree with the NSG evaluation",
            f"Evaluating the NSG definitions gives '{facts.network.verdict}', Azure's effective rules give "
            f"'{eff.verdict}' ({', '.join(eff.decided_by) or 'no deciding rule'}). A change may still be "
            "propagating, or a service tag expands differently.",
            "Trust the effective rules; rerun in a minute, or verify with Network Watcher IP flow verify.",
            Source.NETWORK_WATCHER,
            effectiveVerdict=eff.verdict,
            evaluatedVerdict=facts.network.verdict,
        )
    ]
