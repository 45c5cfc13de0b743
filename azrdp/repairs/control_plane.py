"""Control-plane repairs, carried out from Python through ARM (azrdp.azure.network, compute).

`nsg-allow-rdp` never opens RDP to the Internet: it needs an explicit single `--source-ip`, adds
one Allow rule for that address per NSG layer whose rule denies it, at the free priority closest
above the deciding Deny, and proves with the offline evaluator that the rule is enough before it
is planned. Every change is journalled with the run id (azrdp.journal) and undoable. A fleet run
adds one rule per (NSG, source, port), shared by every VM behind that NSG (`share_allow_rules`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from azrdp.facts import NicFacts, Nsg, NsgRule
from azrdp.repairs import RepairFacts, RepairSpec, RepairStep, Risk, Where, register_repair, spec

C = "Microsoft.Compute/virtualMachines"
N = "Microsoft.Network"

MIN_PRIORITY = 100
MAX_PRIORITY = 4096
RULE_PREFIX = "azrdp-allow-rdp-"


@register_repair(
    id="vm-start",
    title="Start the VM",
    fixes=("vm-not-running",),
    risk=Risk.LOW,
    rbac=(
        f"{C}/read",
        f"{C}/start/action",
        f"{C}/deallocate/action",  # azrdp undo of a VM that was deallocated
        f"{C}/powerOff/action",  # azrdp undo of a VM that was stopped
    ),
    changes="Starts a stopped or deallocated VM (compute billing resumes; a dynamic public IP may change).",
    backup="Journal entry with the power state before, written before the start is sent.",
    undo="`azrdp undo --run-id` deallocates (or powers off) the VM again, as it was before the run, once "
    "the run's in-guest changes are taken back, and only while it is still running.",
    verify="Power state running and the guest agent Ready.",
    where=Where.CONTROL_PLANE,
    order=10,
)
def plan_vm_start(facts: RepairFacts) -> RepairStep | None:
    finding = facts.finding("vm-not-running")
    if finding is None:
        return None
    repair = spec("vm-start")
    state = (getattr(facts.vm, "power_state", None) or "").lower()
    if state not in ("stopped", "deallocated"):
        return repair.step(
            [finding.id],
            [f"Start the VM (power state now {state or 'unknown'})"],
            refused=f"The VM is {state or 'in an unknown power state'}; wait for the operation to finish.",
        )
    notes = []
    if state == "deallocated":
        notes.append("A deallocated VM with a dynamic public IP gets a new address when it starts.")
    return repair.step([finding.id], [f"Start the VM (now {state})"], notes=notes)


def validate_source_ip(value: str) -> str:
    """One address (optionally as /32 or /128), never `*`, `Internet` or a wider prefix."""
    text = value.strip()
    if text.lower() in ("*", "any", "internet", "0.0.0.0/0", "::/0"):
        raise ValueError("RDP is never opened to the Internet; give your own public address")
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None
    if net.num_addresses != 1:
        raise ValueError(f"{text!r} is a prefix of {net.num_addresses} addresses; give one address")
    addr = net.network_address
    if addr.is_unspecified or addr.is_multicast or addr.is_loopback or addr.is_link_local:
        raise ValueError(f"{text!r} cannot be the address of an RDP client")
    return str(addr)


def free_priority_above(rules: Iterable[NsgRule], deny_priority: int) -> int | None:
    """The unused inbound priority closest above (numerically below) the deciding Deny.

    Closest keeps every other rule's precedence: a rule between it and the Deny cannot match the
    flow, or the Deny would not have decided it.
    """
    used = {r.priority for r in rules if r.direction.lower() == "inbound" and not r.default}
    for priority in range(min(deny_priority - 1, MAX_PRIORITY), MIN_PRIORITY - 1, -1):
        if priority not in used:
            return priority
    return None


def rule_name(run_id_hint: str, priority: int) -> str:
    return f"{RULE_PREFIX}{priority}" if not run_id_hint else f"{RULE_PREFIX}{run_id_hint}-{priority}"


def allow_rule(source_ip: str, port: int, priority: int, destination: str | None) -> NsgRule:
    return NsgRule(
        name=rule_name("", priority),
        priority=priority,
        access="Allow",
        direction="Inbound",
        protocol="Tcp",
        source_prefixes=(f"{source_ip}/{32 if ':' not in source_ip else 128}",),
        destination_prefixes=(destination or "*",),
        destination_ports=(str(port),),
        description="Added by azrdp repair: RDP from one client address.",
    )


@register_repair(
    id="nsg-allow-rdp",
    title="Allow RDP from your address in the NSG",
    fixes=("nsg-denies-rdp",),
    risk=Risk.HIGH,
    rbac=(
        f"{N}/networkSecurityGroups/read",
        f"{N}/networkSecurityGroups/securityRules/write",
        f"{N}/networkSecurityGroups/securityRules/delete",  # azrdp undo
    ),
    changes=(
        "Adds one inbound Allow rule for --source-ip/32 to the RDP port at the free priority just "
        "above the deciding Deny, in each NSG layer that denies it; VMs of one run behind the same NSG "
        "share one rule. Never from * or Internet."
    ),
    backup="Journal entry with the NSG, rule name and rule body.",
    undo="`azrdp undo --run-id` deletes the rule (only if it is still the one azrdp created).",
    verify="The offline NSG evaluation admits --source-ip before the rule is written; check re-run after.",
    where=Where.CONTROL_PLANE,
    order=20,
)
def plan_nsg_allow_rdp(facts: RepairFacts) -> RepairStep | None:
    finding = facts.finding("nsg-denies-rdp")
    if finding is None:
        return None
    repair = spec("nsg-allow-rdp")
    port = facts.port or 3389
    if not facts.source_ip:
        return repair.step(
            [finding.id],
            [f"Allow TCP {port} from your address"],
            refused="Needs --source-ip with your public address: azrdp never opens RDP to the Internet.",
        )
    try:
        source = validate_source_ip(facts.source_ip)
    except ValueError as exc:
        return repair.step([finding.id], [f"Allow TCP {port} from your address"], refused=f"{exc}.")
    nic = getattr(facts.vm, "primary_nic", None)
    if nic is None:
        return repair.step(
            [finding.id], [f"Allow TCP {port} from {source}"], refused="The VM has no NIC facts."
        )
    return _plan_rules(repair, finding.id, nic, source, port)


def _plan_rules(repair: RepairSpec, finding_id: str, nic: NicFacts, source: str, port: int) -> RepairStep:
    from azrdp import nsg as evaluator

    layers: dict[str, Nsg | None] = {"subnet": nic.subnet_nsg, "nic": nic.nsg}
    vnet_prefixes = tuple(nic.vnet.address_space) if nic.vnet else ()
    flow = evaluator.FlowQuery(port=port, protocol="Tcp", source=source)
    destination = nic.private_ip

    def verdict(current: dict[str, Nsg | None]) -> evaluator.FlowVerdict:
        return evaluator.evaluate(
            flow,
            destination_ip=destination,
            subnet_nsg=current["subnet"],
            nic_nsg=current["nic"],
            vnet_prefixes=vnet_prefixes,
            nic_asgs=nic.asgs,
            closed_without_nsg=bool(nic.public_ip and nic.public_ip.sku.lower() == "standard"),
        )

    before = verdict(layers)
    if before.verdict == evaluator.ALLOWED:
        return repair.step(
            [finding_id], [], refused=f"The NSGs already admit {source} on TCP {port}; nothing to add."
        )
    rules: list[dict[str, object]] = []
    changes: list[str] = []
    after_layers = dict(layers)
    for layer in before.layers:
        if layer.nsg is None or (source in layer.allowed):
            continue
        nsg = layers[layer.layer]
        assert nsg is not None
        deny = next((d for d in layer.decisions if d.access.lower() == "deny" and source in d.sources), None)
        if deny is None:
            return repair.step(
                [finding_id], [], refused=f"Could not tell which rule of NSG {nsg.name} denies {source}."
            )
        priority = free_priority_above(nsg.rules, deny.priority)
        if priority is None:
            return repair.step(
                [finding_id],
                [],
                refused=f"NSG {nsg.name} has no free priority above {deny.rule} ({deny.priority}).",
            )
        rule = allow_rule(source, port, priority, destination)
        after_layers[layer.layer] = replace(nsg, rules=(*nsg.rules, rule))
        rules.append(
            {
                "nsgId": nsg.id,
                "nsg": nsg.name,
                "layer": layer.layer,
                "priority": priority,
                "source": rule.source_prefixes[0],
                "destination": rule.destination_prefixes[0],
                "port": port,
                "deniedBy": deny.rule,
                "deniedByPriority": deny.priority,
            }
        )
        changes.append(
            f"NSG {nsg.name} ({layer.layer}): add Allow TCP {port} from {rule.source_prefixes[0]} "
            f"at priority {priority}, above {deny.rule} ({deny.priority})"
        )
    after = verdict(after_layers)
    if source not in after.allowed:
        return repair.step(
            [finding_id],
            changes,
            refused=f"Even with the new rule(s) {source} would not reach the VM "
            f"({after.reason or after.verdict}).",
        )
    return repair.step(
        [finding_id],
        changes,
        notes=[f"Only {source} is admitted; other clients stay blocked."],
        params={"rules": rules},
    )


def _named(facts: RepairFacts, repair_id: str, fixes: tuple[str, ...], change: str) -> RepairStep | None:
    if repair_id not in facts.requested:
        return None
    repair = spec(repair_id)
    present = [f.id for f in facts.present(*fixes)]
    if not present:
        return None
    return repair.step(present, [change])


@register_repair(
    id="redeploy",
    title="Redeploy the VM to another host (suggestion; runs only with --only redeploy)",
    fixes=("agent-not-ready", "vm-provisioning-failed"),
    risk=Risk.HIGH,
    rbac=(f"{C}/read", f"{C}/redeploy/action"),
    changes="Moves the VM to a new Azure host and restarts it; temporary disk data is lost.",
    backup="Journal entry (a redeploy cannot be reverted).",
    undo="Not undoable.",
    verify="Power state running and the guest agent Ready.",
    where=Where.CONTROL_PLANE,
    order=30,
    suggestion_only=True,
)
def plan_redeploy(facts: RepairFacts) -> RepairStep | None:
    return _named(facts, "redeploy", ("agent-not-ready", "vm-provisioning-failed"), "Redeploy the VM")


@register_repair(
    id="reapply",
    title="Reapply the VM's platform state (suggestion; runs only with --only reapply)",
    fixes=("agent-not-ready", "vm-provisioning-failed"),
    risk=Risk.MEDIUM,
    rbac=(f"{C}/read", f"{C}/reapply/action"),
    changes="Re-applies the VM's model and extension state on its host; the VM keeps running.",
    backup="Journal entry (nothing to restore).",
    undo="Not undoable (nothing to take back).",
    verify="Provisioning state succeeded and the guest agent Ready.",
    where=Where.CONTROL_PLANE,
    order=31,
    suggestion_only=True,
)
def plan_reapply(facts: RepairFacts) -> RepairStep | None:
    return _named(facts, "reapply", ("agent-not-ready", "vm-provisioning-failed"), "Reapply the VM")


# --------------------------------------------------------------------------------------------
# One rule per NSG for a fleet run
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleUser:
    """A VM whose `nsg-allow-rdp` step plans a rule: who it is and the run that repairs it."""

    vm_id: str
    name: str
    run_id: str
    step: RepairStep


def rule_key(rule: Mapping[str, Any]) -> tuple[str, str, int]:
    """What makes two planned rules the same rule: the NSG, the client prefix, the port."""
    return (str(rule["nsgId"]).lower(), str(rule["source"]), int(rule["port"]))


def share_allow_rules(users: Sequence[RuleUser]) -> list[RepairStep]:
    """The same steps, with one rule per (NSG, source prefix, port) shared by every VM that needs it.

    Many VMs behind one subnet NSG each plan the same Allow (and, planned from the same NSG, at the
    same priority, which ARM rejects as SecurityRuleConflict). The shared rule admits the client to
    the private address of every VM that planned it, at the lowest of their planned priorities:
    each of those was the free priority closest above the Deny that decided that VM's flow, so the
    lowest is free and above every one of those Denies, and no rule between it and a VM's Deny can
    match that VM's flow (the Deny would not have decided it otherwise). The first VM of a group
    owns the rule (its run id names it); the others list it as shared.
    """
    groups: dict[tuple[str, str, int], list[tuple[RuleUser, Mapping[str, Any]]]] = {}
    for user in users:
        for rule in user.step.params.get("rules", ()):
            groups.setdefault(rule_key(rule), []).append((user, rule))
    shared: dict[tuple[str, str, int], dict[str, Any]] = {}
    for key, members in groups.items():
        owner, first = members[0]
        users_of_rule = list({u.vm_id.lower(): u for u, _ in members}.values())
        destinations = [str(r.get("destination") or "*") for _, r in members]
        wide = "*" in destinations  # a VM without a known private address planned "any destination"
        shared[key] = {
            "nsgId": first["nsgId"],
            "nsg": first["nsg"],
            "source": first["source"],
            "port": int(first["port"]),
            "priority": min(int(r["priority"]) for _, r in members),
            "destinations": ["*"] if wide else sorted(set(destinations), key=_address_order),
            "rule": f"{RULE_PREFIX}{owner.run_id}",
            "ownerVmId": owner.vm_id,
            "ownerRunId": owner.run_id,
            "sharedBy": [{"vmId": u.vm_id, "name": u.name, "runId": u.run_id} for u in users_of_rule],
        }
    out = []
    for user in users:
        rules = user.step.params.get("rules", ())
        if not rules:
            out.append(user.step)
            continue
        mine: list[dict[str, Any]] = []
        changes: list[str] = []
        for rule in rules:
            key = rule_key(rule)
            if any(rule_key(m) == key for m in mine):
                continue  # the same NSG on the subnet and the NIC: one rule serves both layers
            merged = dict(rule) | shared[key]
            merged["destination"] = merged["destinations"][0] if len(merged["destinations"]) == 1 else None
            mine.append(merged)
            changes.append(_shared_change(user, rule, merged))
        out.append(
            replace(user.step, changes=tuple(changes), params=dict(user.step.params) | {"rules": mine})
        )
    return out


def _address_order(text: str) -> tuple[int, int, str]:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return (9, 0, text)
    return (address.version, int(address), text)


def _shared_change(user: RuleUser, planned: Mapping[str, Any], shared: Mapping[str, Any]) -> str:
    line = (
        f"NSG {shared['nsg']} ({planned['layer']}): add Allow TCP {shared['port']} from {shared['source']} "
        f"at priority {shared['priority']}, above {planned['deniedBy']} ({planned['deniedByPriority']})"
    )
    others = [m["name"] for m in shared["sharedBy"] if m["vmId"] != user.vm_id]
    if not others:
        return line
    shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    return f"{line}; one rule {shared['rule']} shared with {shown}"
