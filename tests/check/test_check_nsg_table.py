"""Hand-worked NSG evaluation cases: every rule field, both layers, the default rules, tags, ASGs.

Each row was worked out on paper the way Azure evaluates inbound traffic (subnet NSG, then NIC
NSG; first match by priority) and says which rule Network Watcher's IP flow verify would name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from azrdp.facts import Nsg, NsgRule
from azrdp.nsg import FlowQuery, evaluate, parse_ports

VNET = ("10.0.0.0/16",)
VM_IP = "10.0.0.4"
ASG_WEB = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/web"
ASG_JUMP = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/jump"
ME = "203.0.113.7"


def R(name: str, priority: int, access: str = "Allow", **kw: Any) -> NsgRule:
    kw.setdefault("protocol", "Tcp")
    kw.setdefault("destination_ports", ("3389",))
    return NsgRule(name, priority, access, **kw)


@dataclass
class Case:
    id: str
    subnet: list[NsgRule] | None
    nic: list[NsgRule] | None
    flow: FlowQuery
    verdict: str
    decided: list[tuple[str, str, str]]  # (layer, rule, access)
    allowed: tuple[str, ...] | None = None
    kw: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("no-nsg-anywhere-is-open", None, None, FlowQuery(), "allowed", [], ("Internet",)),
    Case(
        "standard-ip-without-nsg-is-closed",
        None,
        None,
        FlowQuery(),
        "denied",
        [],
        (),
        {"closed_without_nsg": True},
    ),
    Case(
        "only-default-rules-deny-internet",
        [],
        None,
        FlowQuery(source=ME),
        "denied",
        [("subnet", "DenyAllInBound", "Deny")],
    ),
    Case(
        "source-single-ip-allows",
        None,
        [R("me", 100, source_prefixes=(ME,))],
        FlowQuery(source=ME),
        "allowed",
        [("nic", "me", "Allow")],
        (f"{ME}/32",),
    ),
    Case(
        "source-single-ip-other-address-falls-through",
        None,
        [R("me", 100, source_prefixes=(ME,))],
        FlowQuery(source="198.51.100.1"),
        "denied",
        [("nic", "DenyAllInBound", "Deny")],
    ),
    Case(
        "source-cidr-restricts-internet",
        None,
        [R("office", 100, source_prefixes=("203.0.113.0/24",))],
        FlowQuery(),
        "restricted",
        [("nic", "office", "Allow"), ("nic", "DenyAllInBound", "Deny")],
        ("203.0.113.0/24",),
    ),
    Case(
        "source-prefix-list",
        None,
        [R("two", 100, source_prefixes=("198.51.100.0/24", "203.0.113.8/29"))],
        FlowQuery(),
        "restricted",
        [("nic", "two", "Allow"), ("nic", "DenyAllInBound", "Deny")],
        ("198.51.100.0/24", "203.0.113.8/29"),
    ),
    Case(
        "source-star-opens-everything",
        None,
        [R("any", 100, source_prefixes=("*",))],
        FlowQuery(),
        "allowed",
        [("nic", "any", "Allow")],
        ("Internet",),
    ),
    Case(
        "source-internet-tag",
        None,
        [R("inet", 100, source_prefixes=("Internet",))],
        FlowQuery(),
        "allowed",
        [("nic", "inet", "Allow")],
        ("Internet",),
    ),
    Case(
        "internet-tag-does-not-cover-vnet-sources",
        None,
        [R("inet", 100, "Deny", source_prefixes=("Internet",))],
        FlowQuery(source="10.0.1.5"),
        "allowed",
        [("nic", "AllowVnetInBound", "Allow")],
    ),
    Case(
        "virtualnetwork-tag-default-rule-admits-vnet-peer",
        None,
        [],
        FlowQuery(source="10.0.9.9"),
        "allowed",
        [("nic", "AllowVnetInBound", "Allow")],
    ),
    Case(
        "azure-load-balancer-default-rule",
        None,
        [],
        FlowQuery(source="168.63.129.16"),
        "allowed",
        [("nic", "AllowAzureLoadBalancerInBound", "Allow")],
    ),
    Case(
        "azure-load-balancer-is-not-internet",
        None,
        [R("alb", 100, source_prefixes=("AzureLoadBalancer",))],
        FlowQuery(),
        "denied",
        [("nic", "DenyAllInBound", "Deny")],
    ),
    Case(
        "protocol-udp-rule-ignores-tcp",
        None,
        [R("udp", 100, protocol="Udp", source_prefixes=("*",))],
        FlowQuery(source=ME),
        "denied",
        [("nic", "DenyAllInBound", "Deny")],
    ),
    Case(
        "protocol-udp-rule-admits-udp",
        None,
        [R("udp", 100, protocol="Udp", source_prefixes=("*",))],
        FlowQuery(source=ME, protocol="Udp"),
        "allowed",
        [("nic", "udp", "Allow")],
    ),
    Case(
        "protocol-any",
        None,
        [R("any", 100, protocol="*", source_prefixes=("*",))],
        FlowQuery(source=ME, protocol="Udp"),
        "allowed",
        [("nic", "any", "Allow")],
    ),
    Case(
        "protocol-icmp-rule-ignores-tcp",
        None,
        [R("icmp", 100, protocol="Icmp", source_prefixes=("*",))],
        FlowQuery(source=ME),
        "denied",
        [("nic", "DenyAllInBound", "Deny")],
    ),
    Case(
        "destination-port-range",
        None,
        [R("rng", 100, source_prefixes=("*",), destination_ports=("3380-3390",))],
        FlowQuery(source=ME),
        "allowed",
        [("nic", "rng", "Allow")],
    ),
    Case(
        "destination-port-list",
        None,
        [R("lst", 100, source_prefixes=("*",), destination_ports=("22", "443", "3389"))],
        FlowQuery(source=ME),
        "allowed",
        [("nic", "lst", "Allow")],
    ),
    Case(
        "destination-port-other",
        None,
        [R("ssh", 100, source_prefixes=("*",), destination_ports=("22",))],
        FlowQuery(source=ME),
        "denied",
        [("nic", "DenyAllInBound", "Deny")],
    ),
    Case(
        "destination-port-star",
        None,
        [R("all", 100, source_prefixes=("*",), destination_ports=("*",))],
        FlowQuery(source=ME, port=3390),
        "allowed",
        [("nic", "all", "Allow")],
    ),
    Case(
        "custom-port-flow",
        None,
        [R("rdp", 100, source_prefixes=("*",))],
        FlowQuery(source=ME, port=3390),
        "denied",
        [("nic", "DenyAllInBound", "Deny")],
    ),
    Case(
        "source-port-specific-rule-with-known-port",
        None,
        [R("sp", 100, source_prefixes=("*",), source_ports=("50000-50010",))],
        FlowQuery(source=ME, source_port=50005),
        "allowed",
        [("nic", "sp", "Allow")],
    ),
    Case(
        "source-port-allow-is-not-relied-on-for-any-port",
        None,
        [R("sp", 100, source_prefixes=("*",), source_ports=("50000-50010",))],
        FlowQuery(source=ME),
        "denied",
        [("nic", "DenyAllInBound", "Deny")],
    ),
    Case(
        "source-port-deny-counts-for-any-port",
        None,
        [
            R("sp", 100, "Deny", source_prefixes=("*",), source_ports=("1024-2048",)),
            R("all", 200, source_prefixes=("*",)),
        ],
        FlowQuery(source=ME),
        "denied",
        [("nic", "sp", "Deny")],
    ),
    Case(
        "destination-vm-ip",
        None,
        [R("dst", 100, source_prefixes=("*",), destination_prefixes=(VM_IP,))],
        FlowQuery(source=ME),
        "allowed",
        [("nic", "dst", "Allow")],
    ),
    Case(
        "destination-other-ip",
        None,
        [R("dst", 100, source_prefixes=("*",), destination_prefixes=("10.0.0.5",))],
        FlowQuery(source=ME),
        "denied",
        [("nic", "DenyAllInBound", "Deny")],
    ),
    Case(
        "destination-public-ip-never-matches",
        None,
        [R("pip", 100, source_prefixes=("*",), destination_prefixes=("20.1.2.3",))],
        FlowQuery(source=ME),
        "denied",
        [("nic", "DenyAllInBound", "Deny")],
    ),
    Case(
        "destination-virtualnetwork",
        None,
        [R("vn", 100, source_prefixes=("*",), destination_prefixes=("VirtualNetwork",))],
        FlowQuery(source=ME),
        "allowed",
        [("nic", "vn", "Allow")],
    ),
    Case(
        "destination-prefix-list",
        None,
        [R("dl", 100, source_prefixes=("*",), destination_prefixes=("10.0.1.0/24", "10.0.0.0/24"))],
        FlowQuery(source=ME),
        "allowed",
        [("nic", "dl", "Allow")],
    ),
    Case(
        "destination-asg-member",
        None,
        [R("asg", 100, source_prefixes=("*",), destination_prefixes=(), destination_asgs=(ASG_WEB,))],
        FlowQuery(source=ME),
        "allowed",
        [("nic", "asg", "Allow")],
        None,
        {"nic_asgs": (ASG_WEB.upper(),)},
    ),
    Case(
        "destination-asg-not-member",
        None,
        [R("asg", 100, source_prefixes=("*",), destination_prefixes=(), destination_asgs=(ASG_JUMP,))],
        FlowQuery(source=ME),
        "denied",
        [("nic", "DenyAllInBound", "Deny")],
        None,
        {"nic_asgs": (ASG_WEB,)},
    ),
    Case(
        "source-asg-with-known-members",
        None,
        [R("from-jump", 100, "Deny", source_prefixes=(), source_asgs=(ASG_JUMP,))],
        FlowQuery(source="10.0.2.10"),
        "denied",
        [("nic", "from-jump", "Deny")],
        None,
        {"asg_members": {ASG_JUMP.lower(): ("10.0.2.10",)}},
    ),
    Case(
        "source-asg-never-holds-internet-addresses",
        None,
        [R("from-jump", 100, source_prefixes=(), source_asgs=(ASG_JUMP,))],
        FlowQuery(),
        "denied",
        [("nic", "DenyAllInBound", "Deny")],
    ),
    Case(
        "priority-deny-before-allow",
        None,
        [R("allow", 200, source_prefixes=("*",)), R("deny", 100, "Deny", source_prefixes=("*",))],
        FlowQuery(source=ME),
        "denied",
        [("nic", "deny", "Deny")],
    ),
    Case(
        "priority-allow-before-deny",
        None,
        [R("allow", 100, source_prefixes=(ME,)), R("deny", 110, "Deny", source_prefixes=("*",))],
        FlowQuery(source=ME),
        "allowed",
        [("nic", "allow", "Allow")],
    ),
    Case(
        "deny-carves-hole-out-of-allow",
        None,
        [
            R("deny-one", 100, "Deny", source_prefixes=("203.0.113.0/25",)),
            R("office", 110, source_prefixes=("203.0.113.0/24",)),
        ],
        FlowQuery(),
        "restricted",
        [("nic", "deny-one", "Deny"), ("nic", "office", "Allow"), ("nic", "DenyAllInBound", "Deny")],
        ("203.0.113.128/25",),
    ),
    Case(
        "outbound-rules-are-ignored",
        None,
        [R("out", 100, source_prefixes=("*",), direction="Outbound")],
        FlowQuery(source=ME),
        "denied",
        [("nic", "DenyAllInBound", "Deny")],
    ),
    Case(
        "subnet-denies-nic-allows",
        [R("deny", 100, "Deny", source_prefixes=("*",))],
        [R("allow", 100, source_prefixes=("*",))],
        FlowQuery(source=ME),
        "denied",
        [("subnet", "deny", "Deny")],
    ),
    Case(
        "subnet-allows-nic-denies",
        [R("allow", 100, source_prefixes=("*",))],
        [R("deny", 100, "Deny", source_prefixes=("*",))],
        FlowQuery(source=ME),
        "denied",
        [("subnet", "allow", "Allow"), ("nic", "deny", "Deny")],
    ),
    Case(
        "both-allow",
        [R("a", 100, source_prefixes=("Internet",))],
        [R("b", 300, source_prefixes=(ME,))],
        FlowQuery(source=ME),
        "allowed",
        [("subnet", "a", "Allow"), ("nic", "b", "Allow")],
    ),
    Case(
        "layers-intersect-internet-prefixes",
        [R("a", 100, source_prefixes=("198.51.100.0/24", "203.0.113.0/24"))],
        [R("b", 100, source_prefixes=("203.0.113.0/24", "192.0.2.0/24"))],
        FlowQuery(),
        "restricted",
        [
            ("subnet", "a", "Allow"),
            ("subnet", "DenyAllInBound", "Deny"),
            ("nic", "b", "Allow"),
            ("nic", "DenyAllInBound", "Deny"),
        ],
        ("203.0.113.0/24",),
    ),
    Case(
        "source-prefix-flow",
        None,
        [R("office", 100, source_prefixes=("203.0.113.0/25",))],
        FlowQuery(source="203.0.113.0/24"),
        "restricted",
        [("nic", "office", "Allow"), ("nic", "DenyAllInBound", "Deny")],
        ("203.0.113.0/25",),
    ),
    Case(
        "unresolvable-tag-decides-unknown",
        None,
        [R("gw", 100, source_prefixes=("AzureCloud",))],
        FlowQuery(source=ME),
        "unknown",
        [("nic", "DenyAllInBound", "Deny")],
    ),
    Case(
        "unresolvable-tag-irrelevant-for-vnet-source",
        None,
        [R("gw", 100, "Deny", source_prefixes=("GatewayManager",))],
        FlowQuery(source="10.0.3.3"),
        "allowed",
        [("nic", "AllowVnetInBound", "Allow")],
    ),
    Case(
        "unresolvable-tag-cannot-change-a-restricted-answer",
        None,
        [
            R("office", 100, source_prefixes=("198.51.100.0/24",)),
            R("gw", 110, source_prefixes=("GatewayManager",)),
        ],
        FlowQuery(),
        "restricted",
        [("nic", "office", "Allow"), ("nic", "DenyAllInBound", "Deny")],
        ("198.51.100.0/24", "GatewayManager"),
    ),
    Case(
        "unresolvable-deny-tag-before-internet-allow",
        None,
        [
            R("no-cloud", 100, "Deny", source_prefixes=("AzureCloud",)),
            R("inet", 110, source_prefixes=("Internet",)),
        ],
        FlowQuery(),
        "restricted",
        [("nic", "inet", "Allow")],
        ("Internet",),
    ),
]


def nsg(name: str, rules: list[NsgRule] | None) -> Nsg | None:
    if rules is None:
        return None
    return Nsg(
        f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/{name}",
        name,
        tuple(rules),
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hand_worked(case: Case) -> None:
    v = evaluate(
        case.flow,
        destination_ip=VM_IP,
        subnet_nsg=nsg("subnet-nsg", case.subnet),
        nic_nsg=nsg("nic-nsg", case.nic),
        vnet_prefixes=VNET,
        **case.kw,
    )
    assert v.verdict == case.verdict
    assert [(d.layer, d.rule, d.access) for d in v.decided_by] == case.decided
    if case.allowed is not None:
        assert v.allowed_sources == case.allowed
    for d in v.decided_by:
        assert d.nsg == f"{d.layer}-nsg"


def test_decisions_carry_priority_and_default_flag() -> None:
    v = evaluate(
        FlowQuery(source=ME),
        destination_ip=VM_IP,
        subnet_nsg=None,
        nic_nsg=nsg("nic-nsg", [R("x", 4000, "Deny", source_prefixes=("1.2.3.4",))]),
        vnet_prefixes=VNET,
    )
    (d,) = v.decided_by
    assert (d.rule, d.priority, d.default) == ("DenyAllInBound", 65500, True)


@pytest.mark.parametrize(
    ("specs", "ranges"),
    [
        (("*",), ((0, 65535),)),
        (("3389",), ((3389, 3389),)),
        (("3000-4000", "3389"), ((3000, 4000),)),
        (("22", "3389-3390", "443"), ((22, 22), (443, 443), (3389, 3390))),
        (("80,443",), ((80, 80), (443, 443))),
        (("bogus", "70000", "5-1"), ()),
    ],
)
def test_parse_ports(specs: tuple[str, ...], ranges: tuple[tuple[int, int], ...]) -> None:
    assert parse_ports(specs) == ranges
