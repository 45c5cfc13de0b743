"""Property-based tests of the NSG evaluator (azrdp.nsg)."""

from __future__ import annotations

import ipaddress

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from azrdp.facts import Nsg, NsgRule
from azrdp.nsg import ALLOWED, DENIED, AddressSet, FlowQuery, evaluate, evaluate_layer, internet

VNET = ("10.0.0.0/16",)
VM_IP = "10.0.0.4"

ipv4 = st.integers(min_value=0, max_value=2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
cidr = st.tuples(ipv4, st.integers(min_value=4, max_value=32)).map(
    lambda t: str(ipaddress.ip_network(f"{t[0]}/{t[1]}", strict=False))
)
source_prefix = st.one_of(
    st.sampled_from(
        ["*", "Internet", "VirtualNetwork", "AzureLoadBalancer", "203.0.113.0/24", "10.0.1.0/24"]
    ),
    cidr,
    ipv4,
)
port_spec = st.sampled_from(["*", "3389", "3380-3390", "22", "443", "1-1024", "3389-3389", "0-65535"])
dest_prefix = st.sampled_from(["*", VM_IP, "10.0.0.0/24", "VirtualNetwork", "192.168.1.0/24", "Internet"])


@st.composite
def rules(draw: st.DrawFn, min_size: int = 0, max_size: int = 8, low: int = 100) -> list[NsgRule]:
    priorities = draw(
        st.lists(
            st.integers(min_value=low, max_value=4096), unique=True, min_size=min_size, max_size=max_size
        )
    )
    out = []
    for i, priority in enumerate(priorities):
        out.append(
            NsgRule(
                name=f"r{i}",
                priority=priority,
                access=draw(st.sampled_from(["Allow", "Deny"])),
                protocol=draw(st.sampled_from(["Tcp", "Udp", "*", "Icmp"])),
                source_prefixes=tuple(draw(st.lists(source_prefix, min_size=1, max_size=3))),
                source_ports=(draw(st.sampled_from(["*", "*", "*", "1024-65535"])),),
                destination_prefixes=tuple(draw(st.lists(dest_prefix, min_size=1, max_size=2))),
                destination_ports=tuple(draw(st.lists(port_spec, min_size=1, max_size=3))),
            )
        )
    return out


flows = st.builds(
    FlowQuery,
    port=st.sampled_from([3389, 22, 443, 3390]),
    protocol=st.sampled_from(["Tcp", "Udp"]),
    source=st.one_of(st.none(), ipv4, st.sampled_from(["203.0.113.7", "10.0.1.5", "168.63.129.16"])),
    source_port=st.one_of(st.none(), st.integers(min_value=1, max_value=65535)),
)
single_ip_flows = st.builds(
    FlowQuery,
    port=st.sampled_from([3389, 22, 443]),
    protocol=st.sampled_from(["Tcp", "Udp"]),
    source=st.one_of(ipv4, st.sampled_from(["203.0.113.7", "10.0.1.5"])),
    source_port=st.integers(min_value=1, max_value=65535),
)


def nsg(name: str, rule_list: list[NsgRule]) -> Nsg:
    return Nsg(
        f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/{name}",
        name,
        tuple(rule_list),
    )


def run(flow: FlowQuery, subnet: list[NsgRule] | None, nic: list[NsgRule] | None):  # type: ignore[no-untyped-def]
    return evaluate(
        flow,
        destination_ip=VM_IP,
        subnet_nsg=nsg("sub-nsg", subnet) if subnet is not None else None,
        nic_nsg=nsg("nic-nsg", nic) if nic is not None else None,
        vnet_prefixes=VNET,
    )


def key(v):  # type: ignore[no-untyped-def]
    return (
        v.verdict,
        v.allowed,
        v.allowed_sources,
        [(d.layer, d.rule, d.priority, d.access) for d in v.decided_by],
    )


@settings(max_examples=150, deadline=None)
@given(flows, rules(), rules(), st.randoms(use_true_random=False))
def test_rule_order_in_the_list_never_matters(flow, subnet, nic, rnd) -> None:  # type: ignore[no-untyped-def]
    before = key(run(flow, subnet, nic))
    rnd.shuffle(subnet)
    rnd.shuffle(nic)
    assert key(run(flow, subnet, nic)) == before


@settings(max_examples=150, deadline=None)
@given(single_ip_flows, rules(min_size=1), rules(min_size=1, low=100))
def test_a_higher_priority_match_is_never_overridden(flow, base, extra) -> None:  # type: ignore[no-untyped-def]
    layer = evaluate_layer("nic", nsg("n", base), flow, AddressSet.of([flow.source]), VM_IP)
    assert len(layer.decisions) == 1  # one source address: exactly one rule decides
    decider = layer.decisions[0]
    # Rules added below the decider (higher priority numbers) change nothing.
    taken = {r.priority for r in base}
    lower = [r for r in extra if r.priority > decider.priority and r.priority not in taken]
    again = evaluate_layer("nic", nsg("n", base + lower), flow, AddressSet.of([flow.source]), VM_IP)
    assert [(d.rule, d.access) for d in again.decisions] == [(decider.rule, decider.access)]
    assert again.allowed == layer.allowed
    # A rule above it that matches the flow takes over, whatever the decider said.
    assume(decider.priority > 100)
    for access in ("Allow", "Deny"):
        top = NsgRule("top", 100, access, protocol=flow.protocol, source_prefixes=(str(flow.source),))
        rs = [r for r in base if r.priority != 100] + [top]
        third = evaluate_layer("nic", nsg("n", rs), flow, AddressSet.of([flow.source]), VM_IP)
        assert [(d.rule, d.access) for d in third.decisions] == [("top", access)]


@settings(max_examples=150, deadline=None)
@given(flows, rules(low=101), rules(low=101), st.sampled_from(["subnet", "nic"]))
def test_deny_all_at_priority_100_denies_every_flow(flow, subnet, nic, where) -> None:  # type: ignore[no-untyped-def]
    deny_all = NsgRule("deny-all", 100, "Deny")
    if where == "subnet":
        subnet = [*subnet, deny_all]
    else:
        nic = [*nic, deny_all]
    v = run(flow, subnet, nic)
    assert v.verdict == DENIED
    assert v.allowed_sources == ()
    layer = v.layer(where)
    assert layer is not None
    assert [(d.rule, d.access) for d in layer.decisions] == [("deny-all", "Deny")]


@settings(max_examples=150, deadline=None)
@given(flows, rules(), rules())
def test_subnet_and_nic_compose_as_and(flow, subnet, nic) -> None:  # type: ignore[no-untyped-def]
    both = run(flow, subnet, nic)
    only_subnet = run(flow, subnet, None)
    only_nic = run(flow, None, nic)
    assert both.allowed == only_subnet.allowed & only_nic.allowed
    if flow.source is not None and "/" not in flow.source:
        assert (both.verdict == ALLOWED) == (only_subnet.verdict == ALLOWED and only_nic.verdict == ALLOWED)


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        FlowQuery, port=st.sampled_from([3389, 22]), protocol=st.just("Tcp"), source_port=st.just(50000)
    ),
    rules(),
    rules(),
    st.lists(ipv4, min_size=1, max_size=10),
)
def test_internet_verdict_agrees_with_single_addresses(flow, subnet, nic, probes) -> None:  # type: ignore[no-untyped-def]
    whole = run(flow, subnet, nic)
    for ip in probes:
        if ip not in whole.scope:
            continue
        one = run(FlowQuery(flow.port, flow.protocol, ip, flow.source_port), subnet, nic)
        assert (one.verdict == ALLOWED) == (ip in whole.allowed), ip


small = st.lists(
    st.tuples(st.integers(0, 255), st.integers(24, 32)).map(
        lambda t: str(ipaddress.ip_network(f"10.9.9.{t[0]}/{t[1]}", strict=False))
    ),
    max_size=6,
)


def members(prefixes: list[str]) -> set[int]:
    return {int(a) for p in prefixes for a in ipaddress.ip_network(p)}


@given(small, small)
def test_address_set_algebra_matches_python_sets(a: list[str], b: list[str]) -> None:
    sa, sb = AddressSet.of(a), AddressSet.of(b)
    ma, mb = members(a), members(b)
    assert members((sa | sb).prefixes()) == ma | mb
    assert members((sa & sb).prefixes()) == ma & mb
    assert members((sa - sb).prefixes()) == ma - mb
    assert (sa - sb).size() == len(ma - mb)


def test_internet_excludes_private_and_vnet_space() -> None:
    net = internet(["203.0.113.0/28"])
    for inside in ("8.8.8.8", "203.0.113.77", "2001:4860::1"):
        assert inside in net
    for outside in (
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "127.0.0.1",
        "169.254.1.1",
        "224.0.0.1",
        "168.63.129.16",
        "203.0.113.5",
        "fd00::1",
    ):
        assert outside not in net


@settings(max_examples=100, deadline=None)
@given(
    flows,
    rules(),
    rules(),
    st.lists(st.sampled_from(["10.0.0.4", "10.0.0.5", "10.0.1.9", "10.0.200.1"]), min_size=1),
)
def test_shared_cache_gives_the_same_verdicts(flow, subnet, nic, destinations) -> None:  # type: ignore[no-untyped-def]
    cache: dict = {}  # type: ignore[type-arg]
    for dest in destinations:
        kw = dict(subnet_nsg=nsg("sub-nsg", subnet), nic_nsg=nsg("nic-nsg", nic), vnet_prefixes=VNET)
        plain = evaluate(flow, destination_ip=dest, **kw)  # type: ignore[arg-type]
        cached = evaluate(flow, destination_ip=dest, cache=cache, **kw)  # type: ignore[arg-type]
        assert key(cached) == key(plain)
