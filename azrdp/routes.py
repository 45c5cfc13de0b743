"""Pure route evaluator: which route carries the VM's replies back to an RDP client, and is it the
way the session came in?

Azure routes the traffic leaving a subnet by the subnet's route table: the system routes, and the
user-defined routes (UDRs) of the route table associated with the subnet, by longest prefix match;
among routes with the same prefix a UDR wins over a BGP route, which wins over a system route
(learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview, "System routes" and
"How Azure selects a route"). The default system routes are the VNet's address space -> VnetLocal,
0.0.0.0/0 -> Internet, and 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 -> None (the
VNet's own range wins over those by being more specific).

A reply to a session that came in on a public address (the NIC's public IP, or a public load
balancer's frontend through a NAT rule) must leave through next hop Internet, where Azure
translates it back; sent to a virtual appliance, a VPN/ExpressRoute gateway or anywhere else it
leaves from another address or not at all, and the client drops it: asymmetric routing
(learn.microsoft.com/azure/firewall/integrate-lb, "Asymmetric routing"). A route with next hop
None drops the reply whatever the way in.

Offline, the evaluator sees the UDRs and the default system routes; routes learned over BGP
(a gateway advertising 0.0.0.0/0, on-premises prefixes) and peering routes are only in the NIC's
effective routes (`--effective`). So a private client's address that only a *system* None route
covers is reported as undecided, not as dropped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from azrdp.facts import Route, RouteTable
from azrdp.nsg import EMPTY, AddressSet

SYSTEM_NONE_PREFIXES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
INTERNET = "Internet"
NONE = "None"

# Among routes with the same prefix: user-defined, then BGP, then system.
_SOURCE_RANK = {"user": 0, "virtualnetworkgateway": 1, "default": 2}


def system_routes(vnet_prefixes: Sequence[str]) -> tuple[Route, ...]:
    routes = []
    if vnet_prefixes:
        routes.append(Route("VirtualNetwork", tuple(vnet_prefixes), "VnetLocal", source="Default"))
    routes.append(Route("Internet", ("0.0.0.0/0",), INTERNET, source="Default"))
    routes.extend(Route(f"None {p}", (p,), NONE, source="Default") for p in SYSTEM_NONE_PREFIXES)
    return tuple(routes)


def offline_routes(table: RouteTable | None, vnet_prefixes: Sequence[str]) -> tuple[Route, ...]:
    """The routes azrdp can know without asking Azure: the subnet's UDRs and the system routes."""
    return (*(table.routes if table else ()), *system_routes(vnet_prefixes))


@dataclass(frozen=True)
class RouteShare:
    """The part of the client scope whose replies one route decides."""

    route: Route
    prefix: str
    sources: AddressSet


@dataclass(frozen=True)
class ReturnPath:
    """How the replies to a client scope leave, for a session that came in one way (`public`)."""

    public: bool
    scope: AddressSet
    shares: tuple[RouteShare, ...]
    symmetric: AddressSet  # replies that leave the way the session came in
    asymmetric: AddressSet  # replies that leave another way
    dropped: AddressSet  # replies a None route drops
    undecided: AddressSet  # replies whose route azrdp cannot know offline
    table: str | None = None  # the route table's name
    effective: bool = False  # evaluated over Azure's effective routes

    @property
    def bad(self) -> tuple[RouteShare, ...]:
        return tuple(s for s in self.shares if s.sources & (self.asymmetric | self.dropped))


def _rank(route: Route) -> int:
    return _SOURCE_RANK.get(route.source.lower(), 1)


def decide(routes: Sequence[Route], scope: AddressSet) -> tuple[RouteShare, ...]:
    """Longest prefix match over a set of destinations: which route takes which part of `scope`."""
    candidates: list[tuple[int, int, int, Route, str]] = []
    for order, route in enumerate(routes):
        if route.state.lower() != "active":
            continue
        for prefix in route.address_prefixes:
            try:
                net = ipaddress.ip_network(prefix.strip(), strict=False)
            except ValueError:
                continue  # a service tag as destination (UDRs may name one): not resolvable offline
            candidates.append((-net.prefixlen, _rank(route), order, route, str(net)))
    candidates.sort(key=lambda c: c[:3])
    remaining = scope
    shares: list[RouteShare] = []
    for _, _, _, route, prefix in candidates:
        if not remaining:
            break
        claimed = remaining & AddressSet.of([prefix])
        if claimed:
            shares.append(RouteShare(route, prefix, claimed))
            remaining = remaining - claimed
    return tuple(shares)


def return_path(
    routes: Sequence[Route],
    scope: AddressSet,
    *,
    public: bool,
    table: str | None = None,
    effective: bool = False,
) -> ReturnPath:
    """Judge the replies to `scope` for a session that came in on a public (or private) address."""
    shares = decide(routes, scope)
    symmetric = asymmetric = dropped = undecided = EMPTY
    for share in shares:
        hop = share.route.next_hop_type.lower()
        system = share.route.source.lower() == "default" and not effective
        if hop == NONE.lower():
            if system and not public:
                # A private client is reached through gateway or peering routes azrdp does not see.
                undecided = undecided | share.sources
            else:
                dropped = dropped | share.sources
        elif not public or hop == INTERNET.lower():
            symmetric = symmetric | share.sources
        else:
            asymmetric = asymmetric | share.sources
    covered = symmetric | asymmetric | dropped | undecided
    undecided = undecided | (scope - covered)
    return ReturnPath(public, scope, shares, symmetric, asymmetric, dropped, undecided, table, effective)
