"""Checks of the rest of the way in and of the platform: load balancer NAT, routes, Virtual Network
Manager admin rules, Network Watcher's own verdict, Resource Health and the boot state.

Pure functions over `ControlPlaneFacts`. A reading that failed is never a silent pass: each check
whose evidence could not be read says so under its own id, at warning level, with the RBAC action
or the step that would let it see.
"""

from __future__ import annotations

import datetime
from typing import Any

from azrdp.checks import register_check
from azrdp.checks.control_plane import VM_READ, ControlPlaneFacts, _finding
from azrdp.facts import VIA_LB_NAT, Endpoint
from azrdp.model import Finding, Severity, Source
from azrdp.nsg import DENIED, AddressSet
from azrdp.routes import ReturnPath, RouteShare

C = "Microsoft.Compute/virtualMachines"
N = "Microsoft.Network"
ADMIN_ACTION = f"{N}/virtualNetworks/listNetworkManagerEffectiveSecurityAdminRules/action"
BOOT_ACTION = f"{C}/retrieveBootDiagnosticsData/action"
HEALTH_READ = "Microsoft.ResourceHealth/availabilityStatuses/read"


def _endpoint_text(e: Endpoint) -> str:
    where = f"{e.address or '(no address yet)'}:{e.port if e.port is not None else '?'}"
    return f"{where} ({e.name})" if e.name else where


def _prefixes(sources: AddressSet, limit: int = 6) -> str:
    shown = sources.prefixes()
    more = len(shown) - limit
    return ", ".join(shown[:limit]) + (f" and {more} more" if more > 0 else "")


# --------------------------------------------------------------------------------------------
# Load balancer NAT


@register_check(
    id="lb-nat-rdp",
    title="RDP reaches the VM through a load balancer's inbound NAT rule",
    severity=Severity.INFO,
    source=Source.CONTROL_PLANE,
    reads="NIC IP configuration (loadBalancerInboundNatRules, backend pools), load balancer, frontend IP",
    rbac=(f"{N}/loadBalancers/read", f"{N}/publicIPAddresses/read"),
)
def lb_nat_rdp(facts: ControlPlaneFacts) -> list[Finding]:
    nat = [e for e in facts.endpoints if e.via == VIA_LB_NAT]
    if not nat:
        return []
    unknown = [e for e in nat if e.port is None]
    evidence = (
        "Inbound NAT: "
        + "; ".join(f"{_endpoint_text(e)} -> port {e.backend_port}" for e in nat)
        + f". The NSGs are judged for port {facts.flow.port} on the VM's private address, where the "
        "load balancer delivers the client's packets with the client's own source address."
    )
    fix = f"Connect to {_endpoint_text(nat[0])}" if nat[0].port is not None else "Connect to the NAT frontend"
    fix += f", or `azrdp probe {facts.vm.name} -g {facts.vm.resource_group}`, which knocks there."
    if unknown:
        evidence += (
            " A v2 NAT rule's port for this VM is not in the load balancer's answer; "
            "`az network lb inbound-nat-rule show` or the portal's load balancer page lists it."
        )
    return [
        _finding(
            "lb-nat-rdp",
            Severity.INFO,
            "RDP reaches the VM through a load balancer's inbound NAT rule",
            evidence,
            fix,
            endpoints=[{"address": e.address, "port": e.port, "via": e.via, "name": e.name} for e in nat],
        )
    ]


# --------------------------------------------------------------------------------------------
# Routes


def _share_text(share: RouteShare, path: ReturnPath) -> str:
    route = share.route
    hop = route.next_hop_type + (f" {route.next_hop_ip}" if route.next_hop_ip else "")
    if route.source.lower() == "user":
        where = f"route '{route.name}' ({share.prefix} -> {hop})"
        where += f" in route table '{path.table}'" if path.table else ""
    else:
        where = f"{route.source.lower()} route {share.prefix} -> {hop}"
    return where


def _route_findings(facts: ControlPlaneFacts, kind: str) -> list[Finding]:
    check_id = "route-asymmetric-return" if kind == "asymmetric" else "route-drops-return"
    out: list[Finding] = []
    for path in facts.return_paths:
        bad = path.asymmetric if kind == "asymmetric" else path.dropped
        if not bad:
            continue
        shares = [s for s in path.shares if s.sources & bad]
        whole = bad == path.scope
        who = (
            "the client"
            if facts.flow.source
            else ("every Internet client" if whole else f"Internet clients in {_prefixes(bad)}")
        )
        way_in = "the VM's public address" if path.public else "its private address"
        deciding = "; ".join(_share_text(s, path) for s in shares)
        source = " (Azure's effective routes)" if path.effective else ""
        if kind == "asymmetric":
            title = "Replies to the RDP client leave by another way than the session came in"
            evidence = (
                f"A session to {way_in} gets its replies to {who} sent by {deciding}{source}, not "
                "through next hop Internet where Azure translates them back: the client drops them "
                "(asymmetric routing) and the connection times out."
            )
            fix = (
                f"Add a more specific route for your address with next hop Internet to the route table "
                f"(`az network route-table route create -g RG --route-table-name {path.table or 'RT'} -n "
                "rdp-admin --address-prefix <your IP>/32 --next-hop-type Internet`), or come in through "
                "the appliance (DNAT on it) or Azure Bastion."
            )
        else:
            title = "A route drops the replies to the RDP client"
            evidence = f"Replies from the VM to {who} match {deciding}{source}: next hop None drops them."
            fix = "Remove or narrow that route, or add a more specific one for your client's address."
        severity = Severity.BLOCKER if whole or facts.flow.source else Severity.WARNING
        if severity is Severity.WARNING:
            fix = "Check your own address with --source-ip. " + fix
        out.append(
            _finding(
                check_id,
                severity,
                title,
                evidence,
                fix,
                decidedBy=[
                    {
                        "route": s.route.name,
                        "prefix": s.prefix,
                        "nextHopType": s.route.next_hop_type,
                        "nextHopIp": s.route.next_hop_ip,
                        "source": s.route.source,
                        "routeTable": path.table,
                    }
                    for s in shares
                ],
                affected=bad.prefixes()[:20],
                effective=path.effective,
            )
        )
    return out


@register_check(
    id="route-asymmetric-return",
    title="Replies to the RDP client leave by another way than the session came in",
    severity=Severity.BLOCKER,
    source=Source.CONTROL_PLANE,
    reads="The subnet's route table (UDRs), the system routes; with --effective the NIC's effective routes",
    rbac=(f"{N}/routeTables/read", f"{N}/networkInterfaces/effectiveRouteTable/action"),
)
def route_asymmetric_return(facts: ControlPlaneFacts) -> list[Finding]:
    nic = facts.vm.primary_nic
    why = facts.paths.unread("route table") if facts.paths else None
    if why and nic is not None:
        return [
            _finding(
                "route-asymmetric-return",
                Severity.WARNING,
                "The subnet's route table could not be read",
                f"Route table of subnet '{nic.subnet.name if nic.subnet else '?'}': {why}. Whether replies "
                "to the RDP client leave the way the session came in is not known.",
                "Grant Microsoft.Network/routeTables/read on its resource group, then check again.",
            )
        ]
    return _route_findings(facts, "asymmetric")


@register_check(
    id="route-drops-return",
    title="A route drops the replies to the RDP client",
    severity=Severity.BLOCKER,
    source=Source.CONTROL_PLANE,
    reads="The subnet's route table (UDRs, next hop None); with --effective the NIC's effective routes",
    rbac=(f"{N}/routeTables/read",),
)
def route_drops_return(facts: ControlPlaneFacts) -> list[Finding]:
    return _route_findings(facts, "dropped")


# --------------------------------------------------------------------------------------------
# Virtual Network Manager admin rules


@register_check(
    id="admin-rule-denies-rdp",
    title="A Virtual Network Manager security admin rule denies the RDP flow",
    severity=Severity.BLOCKER,
    source=Source.CONTROL_PLANE,
    reads="Effective security admin rules of the VNet (POST listNetworkManagerEffectiveSecurityAdminRules)",
    rbac=(ADMIN_ACTION,),
)
def admin_rule_denies_rdp(facts: ControlPlaneFacts) -> list[Finding]:
    nic = facts.vm.primary_nic
    why = facts.paths.unread("admin rules") if facts.paths else None
    if why and nic is not None:
        return [
            _finding(
                "admin-rule-denies-rdp",
                Severity.WARNING,
                "The VNet's security admin rules could not be read",
                f"{why}. Azure Virtual Network Manager admin rules are evaluated before the NSGs: a Deny "
                "there blocks RDP whatever the NSGs say, so the verdict above may be wrong.",
                f"Grant {ADMIN_ACTION} (the azrdp diagnostician role has it), or ask your network team "
                "whether an admin rule covers this VNet.",
            )
        ]
    verdict = facts.network
    if verdict is None:
        return []
    denying = [d for d in verdict.decided_by if d.layer == "admin" and d.access.lower() == "deny"]
    if not denying:
        return []
    flow = facts.flow
    if flow.source is None and not facts.public_endpoints:
        return []  # nothing on the Internet reaches it anyway (no-public-ip)
    whole = verdict.verdict == DENIED
    who = f"from {flow.source}" if flow.source else "from the Internet"
    rules = "; ".join(
        f"rule '{d.rule}' of network manager '{d.nsg}' (priority {d.priority})" for d in denying
    )
    return [
        _finding(
            "admin-rule-denies-rdp",
            Severity.BLOCKER if whole or flow.source else Severity.WARNING,
            "A Virtual Network Manager security admin rule denies the RDP flow",
            f"{flow.protocol.upper()} port {flow.port} {who} is denied by the security admin {rules}, "
            "before any NSG is evaluated: no NSG rule can open it.",
            "Ask the network team that owns the Virtual Network Manager for an exception (an Allow or "
            "Always Allow admin rule of higher priority for your address), or connect through Azure "
            "Bastion if the rule spares it.",
            decidedBy=[
                {"layer": d.layer, "nsg": d.nsg, "rule": d.rule, "priority": d.priority, "access": d.access}
                for d in denying
            ],
        )
    ]


# --------------------------------------------------------------------------------------------
# Azure's own verdict


@register_check(
    id="verdict-mismatch",
    title="Network Watcher's IP flow verify disagrees with azrdp's verdict",
    severity=Severity.WARNING,
    source=Source.NETWORK_WATCHER,
    reads="IP flow verify for the same packet (--verify; a POST per running VM)",
    rbac=(f"{N}/networkWatchers/ipFlowVerify/action", f"{N}/networkWatchers/read"),
)
def verdict_mismatch(facts: ControlPlaneFacts) -> list[Finding]:
    check = facts.verify
    if check is None:
        return []
    if check.error or check.azure_access is None:
        return [
            _finding(
                "verdict-mismatch",
                Severity.WARNING,
                "Network Watcher's IP flow verify could not be asked",
                f"IP flow verify for {check.source} -> port {check.port}: {check.error or 'no answer'}.",
                "IP flow verify needs a running VM, a Network Watcher in its region and "
                f"{N}/networkWatchers/ipFlowVerify/action.",
                Source.NETWORK_WATCHER,
            )
        ]
    if check.azrdp_access is None or check.azrdp_access.lower() == check.azure_access.lower():
        return []
    sample = " (a sample address of the scope)" if check.sample else ""
    return [
        _finding(
            "verdict-mismatch",
            Severity.WARNING,
            "Network Watcher's IP flow verify disagrees with azrdp's verdict",
            f"For TCP {check.source}{sample} -> port {check.port}: Azure says {check.azure_access} "
            f"({check.azure_rule or 'no rule named'}), azrdp says {check.azrdp_access} "
            f"({', '.join(check.azrdp_rules) or 'no deciding rule'}). A change may still be propagating, "
            "or a rule uses a tag azrdp expands differently.",
            "Trust Azure's answer; rerun in a minute. If it persists, please report it with both answers.",
            Source.NETWORK_WATCHER,
            azure={"access": check.azure_access, "rule": check.azure_rule, "watcher": check.watcher},
            azrdp={"access": check.azrdp_access, "rules": list(check.azrdp_rules)},
        )
    ]


# --------------------------------------------------------------------------------------------
# Platform health


def _health_finding(facts: ControlPlaneFacts, state: str) -> list[Finding]:
    health = facts.health
    check_id = f"platform-{state.lower()}"
    if health is None or health.error or health.state.lower() != state.lower() or health.customer_initiated:
        return []
    when = health.occurred or health.reported or "an unknown time"
    detail = " ".join(p for p in (health.summary, health.detailed_status) if p)
    eta = f" Azure expects it resolved by {health.resolution_eta}." if health.resolution_eta else ""
    return [
        _finding(
            check_id,
            Severity.BLOCKER if state == "Unavailable" else Severity.WARNING,
            f"Azure reports the VM {state.lower()} for platform reasons",
            f"Resource Health: {health.title or state} since {when}"
            + (f" ({health.reason_type})" if health.reason_type else "")
            + (f": {detail}" if detail else ".")
            + eta,
            "No change inside the guest helps while the platform is at fault. Watch Resource Health "
            f"(`az rest --method get --url {facts.vm.id}/providers/Microsoft.ResourceHealth/"
            "availabilityStatuses/current?api-version=2025-05-01`); `az vm redeploy` moves the VM to "
            "another host if it persists.",
            availabilityState=health.state,
            reasonType=health.reason_type,
            occurred=health.occurred,
        )
    ]


@register_check(
    id="platform-unavailable",
    title="Azure reports the VM unavailable for platform reasons",
    severity=Severity.BLOCKER,
    source=Source.CONTROL_PLANE,
    reads="Resource Health current availability status",
    rbac=(HEALTH_READ,),
)
def platform_unavailable(facts: ControlPlaneFacts) -> list[Finding]:
    health = facts.health
    if health is not None and health.error:
        return [
            _finding(
                "platform-unavailable",
                Severity.WARNING,
                "Resource Health could not be read",
                f"{health.error}. Whether Azure itself has a problem with this VM is not known.",
                f"Grant {HEALTH_READ} (Reader has it), then check again.",
            )
        ]
    return _health_finding(facts, "Unavailable")


@register_check(
    id="platform-degraded",
    title="Azure reports the VM degraded for platform reasons",
    severity=Severity.WARNING,
    source=Source.CONTROL_PLANE,
    reads="Resource Health current availability status",
    rbac=(HEALTH_READ,),
)
def platform_degraded(facts: ControlPlaneFacts) -> list[Finding]:
    return _health_finding(facts, "Degraded")


# --------------------------------------------------------------------------------------------
# Boot state


def _minutes_since(stamp: str | None, now: float) -> float | None:
    if not stamp or not now:
        return None
    text = stamp.strip().replace("Z", "+00:00")
    # Instance view times carry up to 7 fractional digits, more than fromisoformat takes on 3.10.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return (now - when.timestamp()) / 60.0


@register_check(
    id="vm-not-booted",
    title="The VM runs but Windows never finished booting",
    severity=Severity.BLOCKER,
    source=Source.CONTROL_PLANE,
    reads="VM instance view (power, agent, last operation time), boot diagnostics screenshot and serial log",
    rbac=(*VM_READ, BOOT_ACTION),
)
def vm_not_booted(facts: ControlPlaneFacts) -> list[Finding]:
    vm = facts.vm
    if (vm.power_state or "").lower() != "running" or (vm.os_type or "Windows").lower() != "windows":
        return []
    if (vm.agent_status or "").lower() == "ready" or vm.agent_provisioned is False:
        return []
    minutes = _minutes_since(vm.last_operation_time, facts.now)
    if minutes is None or minutes < facts.boot_grace_minutes:
        return []
    boot = facts.boot
    evidence = (
        f"The VM has been running for {minutes:.0f} minutes since its last operation "
        f"({vm.last_operation_time}) and its guest agent is {vm.agent_status or 'silent'}: Windows is most "
        "likely stuck before the sign-in screen (applying updates, a stop error, a boot loop)."
    )
    details: dict[str, Any] = {"minutesRunning": round(minutes), "agentStatus": vm.agent_status}
    if boot is not None and boot.screenshot_path:
        evidence += f" Screenshot saved to {boot.screenshot_path}."
        details["screenshot"] = boot.screenshot_path
    if boot is not None and boot.serial_tail:
        evidence += " Serial log ends: " + " | ".join(line for line in boot.serial_tail[-4:] if line) + "."
        details["serialTail"] = list(boot.serial_tail)
    if boot is not None and boot.error:
        evidence += f" Boot diagnostics: {boot.error}."
    if boot is None and vm.boot_diagnostics is not False:
        evidence += (
            f" Read the screenshot with `azrdp check {vm.name} -g {vm.resource_group} --boot-diagnostics`."
        )
    return [
        _finding(
            "vm-not-booted",
            Severity.BLOCKER,
            "The VM runs but Windows never finished booting",
            evidence,
            "Look at the screenshot: 'Getting Windows ready' or 'Working on updates' usually needs more "
            "time, then a restart; a stop code (blue screen) or a boot loop needs the serial console "
            f"(`az serial-console connect -g {vm.resource_group} -n {vm.name}`) or an offline repair of "
            "the OS disk (`az vm repair create`). If it shows the sign-in screen, Windows is up and only "
            "the agent is broken: try `azrdp probe`.",
            Source.CONTROL_PLANE,
            **details,
        )
    ]


@register_check(
    id="boot-diagnostics-unreadable",
    title="Boot diagnostics could not be read",
    severity=Severity.WARNING,
    source=Source.CONTROL_PLANE,
    reads="Boot diagnostics (retrieveBootDiagnosticsData, then the two SAS blobs)",
    rbac=(BOOT_ACTION,),
)
def boot_diagnostics_unreadable(facts: ControlPlaneFacts) -> list[Finding]:
    boot = facts.boot
    if boot is None or not boot.error:
        return []
    return [
        _finding(
            "boot-diagnostics-unreadable",
            Severity.WARNING,
            "Boot diagnostics could not be read",
            f"{boot.error}. Without the screenshot and serial log the boot state is not known.",
            f"Grant {BOOT_ACTION}, check that the storage account (custom storage) allows access, "
            "or look at Boot diagnostics in the portal.",
        )
    ]
