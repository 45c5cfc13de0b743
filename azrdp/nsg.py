"""Pure NSG evaluator: an inbound flow in, a verdict plus the deciding rules out.

Azure evaluates inbound traffic at the subnet's NSG first, then at the NIC's NSG; both must allow.
Inside one NSG the rules are taken in priority order (lowest number first) and the first rule
that matches the flow decides. This module answers the same question Network Watcher's IP flow
verify answers, without calling Azure.

The source of the flow is a set of addresses, not just one: without an explicit source address
the question is "can somewhere on the Internet reach the VM?", so each layer is evaluated over
address *sets* (exact interval arithmetic, no sampling). The result is `allowed` when the whole
scope gets in, `denied` when none of it does, and `restricted` when only some prefixes do.

Service tags other than Internet, VirtualNetwork and AzureLoadBalancer (e.g. GatewayManager or
AzureCloud.westeurope) are not resolvable offline. Each such tag is taken as an unknown subset
of public address space: the evaluator computes a lower and an upper bound, and answers
`unknown` only when the bounds disagree.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from azrdp.facts import AdminRule, Nsg, NsgRule

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

AZURE_LOAD_BALANCER = "168.63.129.16"
ALL_PORTS = (0, 65535)

ALLOWED = "allowed"
RESTRICTED = "restricted"
DENIED = "denied"
UNKNOWN = "unknown"

# Not reachable from the public Internet: "this network", RFC 1918, shared address space (CGNAT),
# loopback, link-local, IETF protocol assignments, 6to4 relay anycast, benchmarking, multicast,
# reserved and broadcast. The documentation ranges (TEST-NET-1/2/3) are deliberately *kept*: they
# stand in for public addresses in examples, docs and tests.
_NON_INTERNET_V4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    # Azure's platform address (AzureLoadBalancer, DNS, health probes): never an Internet client.
    "168.63.129.16/32",
)
# IPv6 global unicast is 2000::/3; everything else (ULA, link-local, multicast ...) is not Internet.
_INTERNET_V6 = ("2000::/3",)


# --------------------------------------------------------------------------------------------
# Address sets: sorted, disjoint, non-adjacent closed integer intervals per IP version.
# --------------------------------------------------------------------------------------------

Intervals = tuple[tuple[int, int], ...]


def _normalise(intervals: Iterable[tuple[int, int]]) -> Intervals:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _intersect(a: Intervals, b: Intervals) -> Intervals:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _subtract(a: Intervals, b: Intervals) -> Intervals:
    out: list[tuple[int, int]] = []
    j = 0
    for lo, hi in a:
        cur = lo
        while j < len(b) and b[j][1] < cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= hi:
            if b[k][0] > cur:
                out.append((cur, b[k][0] - 1))
            cur = max(cur, b[k][1] + 1)
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


@dataclass(frozen=True)
class AddressSet:
    """An exact set of IPv4 and IPv6 addresses."""

    v4: Intervals = ()
    v6: Intervals = ()

    @staticmethod
    def of(prefixes: Iterable[str | IPNetwork]) -> AddressSet:
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for prefix in prefixes:
            net = prefix if not isinstance(prefix, str) else ipaddress.ip_network(prefix, strict=False)
            span = (int(net.network_address), int(net.broadcast_address))
            (v4 if net.version == 4 else v6).append(span)
        return AddressSet(_normalise(v4), _normalise(v6))

    @staticmethod
    def everything() -> AddressSet:
        return AddressSet(((0, 2**32 - 1),), ((0, 2**128 - 1),))

    def __or__(self, other: AddressSet) -> AddressSet:
        if not self:
            return other
        if not other:
            return self
        return AddressSet(_normalise(self.v4 + other.v4), _normalise(self.v6 + other.v6))

    def __and__(self, other: AddressSet) -> AddressSet:
        # Sharing operands keeps fleets small: most rules claim all or nothing of what remains.
        if other is self or other == EVERYTHING:
            return self
        result = AddressSet(_intersect(self.v4, other.v4), _intersect(self.v6, other.v6))
        return self if result == self else result

    def __sub__(self, other: AddressSet) -> AddressSet:
        if not other:
            return self
        return AddressSet(_subtract(self.v4, other.v4), _subtract(self.v6, other.v6))

    def __bool__(self) -> bool:
        return bool(self.v4 or self.v6)

    def __contains__(self, address: object) -> bool:
        ip = ipaddress.ip_address(address) if isinstance(address, (str, int)) else address
        if not isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return False
        value = int(ip)
        return any(lo <= value <= hi for lo, hi in (self.v4 if ip.version == 4 else self.v6))

    def size(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.v4 + self.v6)

    def prefixes(self) -> list[str]:
        """The set as the fewest CIDR prefixes (exact), IPv4 first."""
        out: list[str] = []
        for lo, hi in self.v4:
            out.extend(
                str(n)
                for n in ipaddress.summarize_address_range(
                    ipaddress.IPv4Address(lo), ipaddress.IPv4Address(hi)
                )
            )
        for lo, hi in self.v6:
            out.extend(
                str(n)
                for n in ipaddress.summarize_address_range(
                    ipaddress.IPv6Address(lo), ipaddress.IPv6Address(hi)
                )
            )
        return out


EMPTY = AddressSet()
EVERYTHING = AddressSet.everything()
_PUBLIC = (AddressSet.of(["0.0.0.0/0"]) - AddressSet.of(_NON_INTERNET_V4)) | AddressSet.of(_INTERNET_V6)


def internet(vnet_prefixes: Sequence[str] = ()) -> AddressSet:
    """The `Internet` service tag: public address space outside the VNet."""
    return _internet(tuple(vnet_prefixes))


@functools.lru_cache(maxsize=1024)
def _internet(vnet_prefixes: tuple[str, ...]) -> AddressSet:
    return _PUBLIC - AddressSet.of(vnet_prefixes)


# --------------------------------------------------------------------------------------------
# Rule matching
# --------------------------------------------------------------------------------------------

DEFAULT_INBOUND_RULES: tuple[NsgRule, ...] = (
    NsgRule(
        "AllowVnetInBound",
        65000,
        "Allow",
        source_prefixes=("VirtualNetwork",),
        destination_prefixes=("VirtualNetwork",),
        default=True,
    ),
    NsgRule(
        "AllowAzureLoadBalancerInBound", 65001, "Allow", source_prefixes=("AzureLoadBalancer",), default=True
    ),
    NsgRule("DenyAllInBound", 65500, "Deny", default=True),
)

_ANY = {"*", "any", "all", "0.0.0.0/0", "::/0", "0.0.0.0/0,::/0"}


def parse_ports(specs: Iterable[str]) -> tuple[tuple[int, int], ...]:
    """Port specs ("*", "3389", "3000-4000", "0-65535") as closed ranges; invalid parts are skipped."""
    ranges: list[tuple[int, int]] = []
    for raw in specs:
        for spec in str(raw).split(","):
            text = spec.strip()
            if not text:
                continue
            if text.lower() in _ANY:
                ranges.append(ALL_PORTS)
                continue
            lo_text, sep, hi_text = text.partition("-")
            try:
                lo = int(lo_text)
                hi = int(hi_text) if sep else lo
            except ValueError:
                continue
            if 0 <= lo <= hi <= 65535:
                ranges.append((lo, hi))
    return _normalise(ranges)


def _ports_cover(ranges: Intervals, port: int) -> bool:
    return any(lo <= port <= hi for lo, hi in ranges)


def _protocol_matches(rule_protocol: str, protocol: str) -> bool:
    rp = rule_protocol.strip().lower()
    return rp in _ANY or rp == protocol.strip().lower()


@dataclass(frozen=True)
class TagContext:
    """What service tags and application security groups mean for this NIC."""

    vnet_prefixes: tuple[str, ...] = ()
    # ASG id (lower-case) -> private addresses of its member NICs, when known.
    asg_members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def resolve(self, prefix: str) -> AddressSet | None:
        """A source/destination prefix as an address set, or None for an unresolvable tag."""
        text = prefix.strip()
        low = text.lower()
        if low in _ANY:
            return AddressSet.everything()
        if low == "internet":
            return internet(self.vnet_prefixes)
        if low == "virtualnetwork":
            return AddressSet.of(self.vnet_prefixes)
        if low == "azureloadbalancer":
            return AddressSet.of([AZURE_LOAD_BALANCER])
        try:
            return AddressSet.of([text])
        except ValueError:
            return None


@dataclass(frozen=True)
class FlowQuery:
    """An inbound flow to the VM. `source` None means "anywhere on the Internet"."""

    port: int = 3389
    protocol: str = "Tcp"
    source: str | None = None  # an address or a CIDR prefix
    source_port: int | None = None  # None: any client port

    @property
    def source_label(self) -> str:
        return self.source or "Internet"


@dataclass(frozen=True)
class Decision:
    """A rule that decided (part of) the flow at one layer."""

    layer: str  # "admin" | "subnet" | "nic"
    nsg: str  # the NSG's name; for the admin layer, the network manager's
    rule: str
    priority: int
    access: str
    default: bool = False
    sources: AddressSet = field(default=EMPTY, compare=False, repr=False)


@dataclass(frozen=True)
class Unresolved:
    layer: str
    nsg: str
    rule: str
    priority: int
    access: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class LayerResult:
    layer: str
    nsg: str | None  # None: no NSG at this layer (everything passes it)
    nsg_id: str | None
    allowed: AddressSet
    decisions: tuple[Decision, ...] = ()
    unresolved: tuple[Unresolved, ...] = ()


@dataclass(frozen=True)
class FlowVerdict:
    verdict: str  # allowed | restricted | denied | unknown
    scope: AddressSet
    allowed: AddressSet
    allowed_sources: tuple[str, ...]
    decided_by: tuple[Decision, ...]
    layers: tuple[LayerResult, ...]
    unresolved: tuple[Unresolved, ...] = ()
    reason: str = ""

    def layer(self, name: str) -> LayerResult | None:
        return next((lr for lr in self.layers if lr.layer == name), None)


def inbound_rules(nsg: Nsg) -> list[NsgRule]:
    """The NSG's inbound rules in evaluation order; the default rules added if the data lacks them."""
    rules = [r for r in nsg.rules if r.direction.lower() == "inbound"]
    if not any(r.default for r in rules):
        rules.extend(DEFAULT_INBOUND_RULES)
    # Priorities are unique per direction in Azure; the name only makes the order total for bad data.
    return sorted(rules, key=lambda r: (r.priority, r.default, r.name.lower()))


def _destination_matches(
    rule: NsgRule, destination: IPAddress | None, nic_asgs: Sequence[str], ctx: TagContext
) -> bool:
    if rule.destination_asgs:
        wanted = {a.lower() for a in rule.destination_asgs}
        if any(a.lower() in wanted for a in nic_asgs):
            return True
    for prefix in rule.destination_prefixes:
        low = prefix.strip().lower()
        if low in _ANY:
            return True
        if destination is None:
            # The NIC's own address is always inside its VNet.
            if low == "virtualnetwork":
                return True
            continue
        resolved = ctx.resolve(prefix)
        # A NIC's private address is never part of a public service tag.
        if resolved is not None and destination in resolved:
            return True
    return False


def _source_port_matches(rule: NsgRule, flow: FlowQuery) -> bool:
    ranges = parse_ports(rule.source_ports)
    if flow.source_port is not None:
        return _ports_cover(ranges, flow.source_port)
    # Any client port: an Allow must admit every port to be relied on, a Deny counts if it
    # blocks any (the verdict is "allowed" only when the connection gets in whatever the port).
    if rule.access.lower() == "allow":
        return ranges == (ALL_PORTS,)
    return bool(ranges)


def _source_set(rule: NsgRule, ctx: TagContext) -> tuple[AddressSet, tuple[str, ...]]:
    resolved = EMPTY
    unknown: list[str] = []
    for prefix in rule.source_prefixes:
        value = ctx.resolve(prefix)
        if value is None:
            unknown.append(prefix)
        else:
            resolved = resolved | value
    for asg in rule.source_asgs:
        members = ctx.asg_members.get(asg.lower())
        if members is None:
            unknown.append(f"asg:{asg.rstrip('/').rsplit('/', 1)[-1]}")
        else:
            resolved = resolved | AddressSet.of(members)
    return resolved, tuple(unknown)


def _unknown_space(tags: Sequence[str], ctx: TagContext) -> AddressSet:
    """Where an unresolvable source may lie: public space for service tags, the VNet for ASGs,
    private space for a Virtual Network Manager network group (other VNets)."""
    space = EMPTY
    if any(not t.startswith(("asg:", "group:")) for t in tags):
        space = space | internet(ctx.vnet_prefixes)
    if any(t.startswith("asg:") for t in tags):
        space = space | AddressSet.of(ctx.vnet_prefixes)
    if any(t.startswith("group:") for t in tags):
        space = space | (EVERYTHING - internet())
    return space


def evaluate_layer(
    layer: str,
    nsg: Nsg | None,
    flow: FlowQuery,
    scope: AddressSet,
    destination_ip: str | None,
    nic_asgs: Sequence[str] = (),
    ctx: TagContext | None = None,
    bound: str = "lower",
) -> LayerResult:
    """First-match evaluation of one NSG over a set of source addresses.

    `bound` says how an unresolvable tag is taken: "lower" (its Allow admits nothing, its Deny
    blocks all it could) or "upper" (the opposite).
    """
    if nsg is None:
        return LayerResult(layer, None, None, scope)
    ctx = ctx or TagContext()
    destination = ipaddress.ip_address(destination_ip) if destination_ip else None
    remaining = scope
    allowed = EMPTY
    decisions: list[Decision] = []
    unresolved: list[Unresolved] = []
    for rule in inbound_rules(nsg):
        if not remaining:
            break
        if not _protocol_matches(rule.protocol, flow.protocol):
            continue
        if not _ports_cover(parse_ports(rule.destination_ports), flow.port):
            continue
        if not _source_port_matches(rule, flow):
            continue
        if not _destination_matches(rule, destination, nic_asgs, ctx):
            continue
        sources, unknown_tags = _source_set(rule, ctx)
        is_allow = rule.access.lower() == "allow"
        if unknown_tags:
            maybe = remaining & _unknown_space(unknown_tags, ctx)
            if maybe:
                unresolved.append(
                    Unresolved(layer, nsg.name, rule.name, rule.priority, rule.access, unknown_tags)
                )
                # Lower bound: unknown allows admit nothing, unknown denies block all they could.
                if (bound == "lower") != is_allow:
                    sources = sources | maybe
        claimed = remaining & sources
        if not claimed:
            continue
        decisions.append(
            Decision(
                layer, nsg.name, rule.name, rule.priority, rule.access.capitalize(), rule.default, claimed
            )
        )
        if is_allow:
            allowed = allowed | claimed
        remaining = remaining - claimed
    # Flows no rule matched (only possible with hand-made rule sets) are denied, like DenyAllInBound.
    return LayerResult(layer, nsg.name, nsg.id, allowed, tuple(decisions), tuple(unresolved))


def source_scope(flow: FlowQuery, vnet_prefixes: Sequence[str] = ()) -> AddressSet:
    if flow.source is None:
        return internet(vnet_prefixes)
    return AddressSet.of([flow.source])


def _classify(allowed: AddressSet, scope: AddressSet) -> str:
    if not allowed:
        return DENIED
    return ALLOWED if allowed == scope else RESTRICTED


# --------------------------------------------------------------------------------------------
# Azure Virtual Network Manager security admin rules: evaluated before any NSG
# --------------------------------------------------------------------------------------------
#
# learn.microsoft.com/azure/virtual-network-manager/concept-security-admins ("Security admin
# rules", "The order of evaluation"): admin rules are evaluated first, by priority, the first match
# deciding; "Allow" lets the traffic on to the NSGs, which still decide; "Always Allow" admits it
# without evaluating the NSGs; "Deny" stops it, the NSGs are not evaluated. Traffic no admin rule
# matches goes on to the NSGs as well.

ALWAYS_ALLOW = "AlwaysAllow"


@dataclass(frozen=True)
class AdminResult:
    """The admin layer over a source scope: what it admits outright, stops, or passes to the NSGs."""

    always: AddressSet
    denied: AddressSet
    decisions: tuple[Decision, ...] = ()
    unresolved: tuple[Unresolved, ...] = ()


def admin_as_nsg_rule(rule: AdminRule) -> NsgRule:
    """An admin rule in the NSG evaluator's terms (the matching is the same five-tuple match)."""
    protocol = "*" if rule.protocol.lower() in ("any", "all", "*") else rule.protocol
    return NsgRule(
        name=rule.name,
        priority=rule.priority,
        access="Deny" if rule.access.lower() == "deny" else "Allow",
        direction=rule.direction,
        protocol=protocol,
        source_prefixes=rule.sources or ("*",),
        source_ports=rule.source_ports or ("*",),
        destination_prefixes=rule.destinations or ("*",),
        destination_ports=rule.destination_ports or ("*",),
    )


def evaluate_admin(
    rules: Sequence[AdminRule],
    flow: FlowQuery,
    scope: AddressSet,
    destination_ip: str | None,
    ctx: TagContext,
    bound: str = "lower",
) -> AdminResult:
    """First-match evaluation of the inbound admin rules over a set of sources.

    With `bound` "lower" an unresolvable source tag admits nothing through an Always Allow or an
    Allow (so a later Deny may still stop it) and stops all it could through a Deny; "upper" is
    the opposite.
    """
    inbound = sorted(
        (r for r in rules if r.direction.lower() == "inbound"), key=lambda r: (r.priority, r.name.lower())
    )
    destination = ipaddress.ip_address(destination_ip) if destination_ip else None
    remaining = scope
    always = EMPTY
    denied = EMPTY
    decisions: list[Decision] = []
    unresolved: list[Unresolved] = []
    for admin in inbound:
        if not remaining:
            break
        rule = admin_as_nsg_rule(admin)
        access = ALWAYS_ALLOW if admin.access.lower() == "alwaysallow" else rule.access
        if not _protocol_matches(rule.protocol, flow.protocol):
            continue
        if not _ports_cover(parse_ports(rule.destination_ports), flow.port):
            continue
        if not _source_port_matches(rule, flow):
            continue
        if not _destination_matches(rule, destination, (), ctx):
            continue
        sources, unknown_tags = _source_set(rule, ctx)
        if unknown_tags:
            maybe = remaining & _unknown_space(unknown_tags, ctx)
            if maybe:
                unresolved.append(
                    Unresolved("admin", admin.manager, admin.name, admin.priority, access, unknown_tags)
                )
                # An admit (Allow passes on to the NSGs, Always Allow admits) claims the unknown part
                # only for the upper bound; a Deny only for the lower one.
                if (access == "Deny") == (bound == "lower"):
                    sources = sources | maybe
        claimed = remaining & sources
        if not claimed:
            continue
        decisions.append(
            Decision(
                "admin", admin.manager, admin.name, admin.priority, access, admin.kind == "Default", claimed
            )
        )
        if access == ALWAYS_ALLOW:
            always = always | claimed
        elif access == "Deny":
            denied = denied | claimed
        remaining = remaining - claimed
    return AdminResult(always, denied, tuple(decisions), tuple(unresolved))


def evaluate(
    flow: FlowQuery,
    *,
    destination_ip: str | None,
    subnet_nsg: Nsg | None,
    nic_nsg: Nsg | None,
    vnet_prefixes: Sequence[str] = (),
    nic_asgs: Sequence[str] = (),
    asg_members: Mapping[str, tuple[str, ...]] | None = None,
    closed_without_nsg: bool = False,
    admin_rules: Sequence[AdminRule] = (),
    cache: dict[Any, FlowVerdict] | None = None,
) -> FlowVerdict:
    """Evaluate an inbound flow through the admin rules, then the subnet NSG, then the NIC NSG.

    `closed_without_nsg`: the NIC's public IP (or the load balancer in front) is Standard SKU,
    which is closed to inbound traffic unless an NSG admits it; with no NSG at either layer
    everything is then denied.

    `cache`: a dict shared across the NICs of one fleet. The destination address only decides which
    rules apply, so NICs behind the same NSGs whose addresses select the same rules share one
    (immutable) verdict: fleets cost one evaluation per distinct network setup, not per VM.
    """
    ctx = TagContext(tuple(vnet_prefixes), dict(asg_members or {}))
    admin = tuple(admin_rules)
    if cache is None:
        return _evaluate(flow, destination_ip, subnet_nsg, nic_nsg, ctx, nic_asgs, closed_without_nsg, admin)
    destination = ipaddress.ip_address(destination_ip) if destination_ip else None

    def layer_key(nsg: Nsg | None) -> tuple[str, tuple[str, ...]] | None:
        if nsg is None:
            return None
        applicable = tuple(
            r.name for r in inbound_rules(nsg) if _destination_matches(r, destination, nic_asgs, ctx)
        )
        return nsg.id.lower(), applicable

    admin_key = tuple(r for r in admin if _destination_matches(admin_as_nsg_rule(r), destination, (), ctx))
    key = (
        flow,
        ctx.vnet_prefixes,
        tuple(sorted(ctx.asg_members.items())),
        closed_without_nsg,
        layer_key(subnet_nsg),
        layer_key(nic_nsg),
        admin_key,
    )
    verdict = cache.get(key)
    if verdict is None:
        verdict = _evaluate(
            flow, destination_ip, subnet_nsg, nic_nsg, ctx, nic_asgs, closed_without_nsg, admin
        )
        cache[key] = verdict
    return verdict


def _evaluate(
    flow: FlowQuery,
    destination_ip: str | None,
    subnet_nsg: Nsg | None,
    nic_nsg: Nsg | None,
    ctx: TagContext,
    nic_asgs: Sequence[str],
    closed_without_nsg: bool,
    admin_rules: tuple[AdminRule, ...] = (),
) -> FlowVerdict:
    scope = source_scope(flow, ctx.vnet_prefixes)
    no_nsg = subnet_nsg is None and nic_nsg is None
    results: dict[str, tuple[AdminResult, list[LayerResult], AddressSet]] = {}
    for bound in ("lower", "upper"):
        admin = evaluate_admin(admin_rules, flow, scope, destination_ip, ctx, bound)
        if no_nsg:
            layers = [LayerResult("subnet", None, None, scope), LayerResult("nic", None, None, scope)]
            nsg_allowed = EMPTY if closed_without_nsg else scope
        else:
            layers = [
                evaluate_layer("subnet", subnet_nsg, flow, scope, destination_ip, nic_asgs, ctx, bound),
                evaluate_layer("nic", nic_nsg, flow, scope, destination_ip, nic_asgs, ctx, bound),
            ]
            nsg_allowed = layers[0].allowed & layers[1].allowed
        passed = scope - admin.always - admin.denied
        results[bound] = (admin, layers, admin.always | (nsg_allowed & passed))
    admin, (sub, nic), allowed = results["lower"]
    upper_admin, upper_layers, upper_allowed = results["upper"]
    unresolved = admin.unresolved + sub.unresolved + nic.unresolved
    verdict = _classify(allowed, scope)
    upper = _classify(upper_allowed, scope)
    reason = ""
    extra_sources: tuple[str, ...] = ()
    if no_nsg:
        reason = (
            "No NSG on the subnet or the NIC, and a Standard public IP or load balancer is closed to "
            "inbound traffic unless an NSG allows it."
            if closed_without_nsg
            else "No NSG on the subnet or the NIC: nothing filters inbound traffic."
        )
    if upper != verdict:
        tags = sorted({t for u in unresolved for t in u.tags})
        only_service_tags = not any(t.startswith(("asg:", "group:")) for t in tags)
        if flow.source is None and upper == ALLOWED and only_service_tags:
            # A service tag is a proper, non-empty part of public space: it can neither open the
            # whole Internet nor shut all of it, so the answer is "some sources" either way.
            verdict = RESTRICTED
            allow_tags = {
                t for u in unresolved if u.access.lower() in ("allow", "alwaysallow") for t in u.tags
            }
            extra_sources = tuple(sorted(allow_tags))
            if not allow_tags:
                # Only unresolved denies: everything the known rules admit, minus those tags.
                allowed = upper_allowed
                admin, (sub, nic) = upper_admin, upper_layers
            reason = f"Also depends on service tag(s) {', '.join(tags)}, not expanded offline."
        else:
            verdict = UNKNOWN
            reason = (
                f"The answer depends on what {', '.join(tags)} contain(s), "
                "which azrdp cannot resolve offline."
            )

    # Report what Network Watcher would: the admin rules that decided, then the subnet's deciding
    # rules over what reached the NSGs, then the NIC's over what the subnet let through.
    passed = scope - admin.always - admin.denied
    decided = list(admin.decisions)
    decided.extend(d for d in sub.decisions if d.sources & passed)
    reaching_nic = sub.allowed & passed
    decided.extend(d for d in nic.decisions if d.sources & reaching_nic)
    return FlowVerdict(
        verdict,
        scope,
        allowed,
        _describe(allowed, scope) + extra_sources,
        tuple(decided),
        (sub, nic),
        unresolved,
        reason,
    )


def _describe(allowed: AddressSet, scope: AddressSet) -> tuple[str, ...]:
    if not allowed:
        return ()
    if allowed == scope:
        return tuple(scope.prefixes()) if scope.size() == 1 or len(scope.prefixes()) == 1 else ("Internet",)
    return tuple(allowed.prefixes())
