"""The rest of the way in: load balancer NAT rules, the subnet's route table, Virtual Network
Manager admin rules, and (opt-in) the NIC's effective routes.

Single VM: the load balancers the NIC references and the admin rules of its VNet are read while the
inventory reads the VNet and NSGs (round 3); the subnet's route table and any load balancer
frontend public IP follow (round 4, only when they exist).

Fleet: load balancers and route tables are listed once (per resource group, or for the
subscription) beside the inventory's listings; admin rules cost one POST per VNet that holds a
checked VM (not per VM); anything referenced in another resource group is read with a GET.

Parsers are pure functions over REST JSON (read raw through `azrdp.azure.arm`); azure.* is imported
inside functions only.
REST contracts: LoadBalancers_Get/List/ListAll, RouteTables_Get/List/ListAll,
NetworkInterfaces_GetEffectiveRouteTable, ListNetworkManagerEffectiveSecurityAdminRules
(POST .../virtualNetworks/{vnet}/listNetworkManagerEffectiveSecurityAdminRules, body {skipToken}).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azrdp.errors import AzrdpError
from azrdp.facts import (
    AdminRule,
    NatRule,
    NicFacts,
    PathFacts,
    PublicIp,
    Route,
    RouteTable,
    VmFacts,
    group_of,
    name_of,
)

if TYPE_CHECKING:
    from azrdp.azure.clients import Clients

Json = Mapping[str, Any]
MAX_WORKERS = 8
# Admin rule pages: the POST answers a page and a skipToken; bound the loop whatever Azure says.
MAX_ADMIN_PAGES = 50

LB_READ = "load balancer"
ROUTE_TABLE_READ = "route table"
ADMIN_READ = "admin rules"
EFFECTIVE_ROUTES_READ = "effective routes"
FRONTEND_IP_READ = "load balancer frontend IP"


# --------------------------------------------------------------------------------------------
# Pure parsers
# --------------------------------------------------------------------------------------------


def _props(d: Any) -> Json:
    p = d.get("properties") if isinstance(d, Mapping) else None
    return p if isinstance(p, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _ref(value: Any) -> str | None:
    return str(value["id"]) if isinstance(value, Mapping) and value.get("id") else None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def lb_of(child_id: str) -> str:
    """The load balancer id of a frontend, pool or rule id."""
    lowered = child_id.lower()
    at = lowered.find("/loadbalancers/")
    if at < 0:
        return child_id
    end = child_id.find("/", at + len("/loadbalancers/"))
    return child_id if end < 0 else child_id[:end]


@dataclass(frozen=True)
class LoadBalancer:
    id: str
    name: str
    sku: str
    # frontend id (lower) -> (name, public IP id, private IP)
    frontends: Mapping[str, tuple[str, str | None, str | None]]
    rules: Mapping[str, Json]  # inbound NAT rule id (lower) -> rule JSON
    pools: Mapping[str, Json]  # backend pool id (lower) -> pool JSON


def load_balancer_from_rest(d: Json) -> LoadBalancer:
    p = _props(d)
    sku = d.get("sku") if isinstance(d.get("sku"), Mapping) else {}
    frontends = {}
    for f in _list(p.get("frontendIPConfigurations")):
        fp = _props(f)
        frontends[str(f.get("id", "")).lower()] = (
            str(f.get("name", "")),
            _ref(fp.get("publicIPAddress")),
            fp.get("privateIPAddress") or None,
        )
    return LoadBalancer(
        id=str(d.get("id", "")),
        name=str(d.get("name", "")),
        sku=str((sku or {}).get("name") or "Basic"),
        frontends=frontends,
        rules={
            str(r.get("id", "")).lower(): r for r in _list(p.get("inboundNatRules")) if isinstance(r, Mapping)
        },
        pools={
            str(b.get("id", "")).lower(): b
            for b in _list(p.get("backendAddressPools"))
            if isinstance(b, Mapping)
        },
    )


def _nat_rule(lb: LoadBalancer, rule: Json, frontend_port: int | None, backend_port: int | None) -> NatRule:
    rp = _props(rule)
    frontend_id = (_ref(rp.get("frontendIPConfiguration")) or "").lower()
    name, pip_id, private_ip = lb.frontends.get(frontend_id, ("", None, None))
    start, end = _int(rp.get("frontendPortRangeStart")), _int(rp.get("frontendPortRangeEnd"))
    return NatRule(
        load_balancer_id=lb.id,
        load_balancer=lb.name,
        rule=str(rule.get("name", "")),
        protocol=str(rp.get("protocol") or "Tcp"),
        frontend_port=frontend_port,
        backend_port=backend_port if backend_port is not None else (_int(rp.get("backendPort")) or 0),
        frontend_name=name,
        frontend_public_ip_id=pip_id,
        frontend_private_ip=None if pip_id else private_ip,
        sku=lb.sku,
        floating_ip=bool(rp.get("enableFloatingIP")),
        port_range=(start, end) if start is not None and end is not None and (start or end) else None,
    )


def nat_rules_for(nic: NicFacts, lbs: Mapping[str, LoadBalancer]) -> tuple[NatRule, ...]:
    """The NAT rules that lead to this NIC: v1 rules it references, v2 rules over its pools."""
    out: list[NatRule] = []
    for rule_id in nic.lb_nat_rule_ids:
        lb = lbs.get(lb_of(rule_id).lower())
        rule = lb.rules.get(rule_id.lower()) if lb else None
        if lb is None or rule is None:
            continue
        out.append(_nat_rule(lb, rule, _int(_props(rule).get("frontendPort")), None))
    for pool_id in nic.lb_pool_ids:
        lb = lbs.get(lb_of(pool_id).lower())
        pool = lb.pools.get(pool_id.lower()) if lb else None
        if lb is None or pool is None:
            continue
        mine = _pool_address(pool, nic)
        mappings = {
            str(m.get("inboundNatRuleName", "")).lower(): m
            for m in _list(_props(mine).get("inboundNatRulesPortMapping"))
            if isinstance(m, Mapping)
        }
        for rule in lb.rules.values():
            if (_ref(_props(rule).get("backendAddressPool")) or "").lower() != pool_id.lower():
                continue
            mapping = mappings.get(str(rule.get("name", "")).lower())
            frontend = _int(mapping.get("frontendPort")) if mapping else None
            backend = _int(mapping.get("backendPort")) if mapping else None
            out.append(_nat_rule(lb, rule, frontend, backend))
    return tuple(out)


def _pool_address(pool: Json, nic: NicFacts) -> Json:
    for address in _list(_props(pool).get("loadBalancerBackendAddresses")):
        ap = _props(address)
        ipconfig = _ref(ap.get("networkInterfaceIPConfiguration"))
        if ipconfig and nic.ipconfig_id and ipconfig.lower() == nic.ipconfig_id.lower():
            return address  # type: ignore[no-any-return]
        if ap.get("ipAddress") and ap.get("ipAddress") == nic.private_ip:
            return address  # type: ignore[no-any-return]
    return {}


def route_table_from_rest(d: Json) -> RouteTable:
    p = _props(d)
    routes = []
    for r in _list(p.get("routes")):
        rp = _props(r)
        prefix = rp.get("addressPrefix")
        routes.append(
            Route(
                name=str(r.get("name", "")),
                address_prefixes=(str(prefix),) if prefix else (),
                next_hop_type=str(rp.get("nextHopType") or ""),
                next_hop_ip=rp.get("nextHopIpAddress") or None,
                source="User",
            )
        )
    return RouteTable(
        id=str(d.get("id", "")),
        name=str(d.get("name", "")),
        routes=tuple(routes),
        disable_bgp_route_propagation=bool(p.get("disableBgpRoutePropagation")),
    )


def effective_routes_from_rest(d: Json) -> tuple[Route, ...]:
    out = []
    for r in _list(d.get("value")):
        if not isinstance(r, Mapping):
            continue
        hops = [str(h) for h in _list(r.get("nextHopIpAddress")) if h]
        out.append(
            Route(
                name=str(r.get("name") or ""),
                address_prefixes=tuple(str(p) for p in _list(r.get("addressPrefix"))),
                next_hop_type=str(r.get("nextHopType") or ""),
                next_hop_ip=hops[0] if hops else None,
                source=str(r.get("source") or "Default"),
                state=str(r.get("state") or "Active"),
            )
        )
    return tuple(out)


def _segment(resource_id: str, kind: str) -> str:
    parts = resource_id.split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == kind.lower():
            return parts[i + 1]
    return ""


def _admin_addresses(items: Any) -> tuple[str, ...]:
    out = []
    for item in _list(items):
        if not isinstance(item, Mapping):
            continue
        kind = str(item.get("addressPrefixType") or "IPPrefix")
        prefix = str(item.get("addressPrefix") or "")
        if not prefix:
            continue
        out.append(f"group:{name_of(prefix)}" if kind.lower() == "networkgroup" else prefix)
    return tuple(out) or ("*",)


def admin_rules_from_rest(items: Iterable[Any]) -> tuple[AdminRule, ...]:
    rules = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        p = _props(item)
        rid = str(item.get("id", ""))
        rules.append(
            AdminRule(
                id=rid,
                name=name_of(rid),
                access=str(p.get("access") or "Allow"),
                priority=_int(p.get("priority")) or 0,
                direction=str(p.get("direction") or "Inbound"),
                protocol=str(p.get("protocol") or "Any"),
                sources=_admin_addresses(p.get("sources")),
                destinations=_admin_addresses(p.get("destinations")),
                source_ports=tuple(str(x) for x in _list(p.get("sourcePortRanges"))) or ("*",),
                destination_ports=tuple(str(x) for x in _list(p.get("destinationPortRanges"))) or ("*",),
                manager=_segment(rid, "networkManagers"),
                configuration=_segment(rid, "securityAdminConfigurations"),
                collection=_segment(rid, "ruleCollections"),
                kind=str(item.get("kind") or "Custom"),
            )
        )
    return tuple(rules)


def vnet_of(subnet_id: str | None) -> str | None:
    if not subnet_id:
        return None
    at = subnet_id.lower().rfind("/subnets/")
    return subnet_id[:at] if at > 0 else None


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _parallel(tasks: Sequence[Callable[[], None]]) -> None:
    if len(tasks) <= 1:
        for task in tasks:
            task()
        return
    with ThreadPoolExecutor(
        max_workers=min(MAX_WORKERS, len(tasks)), thread_name_prefix="azrdp-path"
    ) as pool:
        list(pool.map(lambda t: t(), tasks))


def _reason(err: AzrdpError) -> str:
    return f"{err.code}: {err.message}"


@dataclass
class PathReader:
    """Gathers the path resources of one VM or a fleet, then assembles PathFacts per VM (pure)."""

    clients: Clients
    lbs: dict[str, LoadBalancer] = field(default_factory=dict)
    route_tables: dict[str, RouteTable] = field(default_factory=dict)
    pips: dict[str, PublicIp] = field(default_factory=dict)
    admin: dict[str, tuple[AdminRule, ...]] = field(default_factory=dict)  # VNet id (lower) -> rules
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)  # id (lower) -> (what, reason)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- listings (fleets) --------------------------------------------------------------------

    def list_all(self, resource_group: str | None) -> None:
        """Load balancers and route tables of a resource group or the subscription, in parallel."""
        from azrdp.azure.arm import NETWORK_API, group_path
        from azrdp.azure.clients import translate_errors

        arm = self.clients.arm
        sub = self.clients.subscription_id
        scope = f"resource group '{resource_group}'" if resource_group else "the subscription"

        def lbs() -> None:
            with translate_errors(f"the load balancers of {scope}"):
                for item in arm.items(
                    group_path(sub, resource_group, "Microsoft.Network", "loadBalancers"), NETWORK_API
                ):
                    self._add_lb(item)

        def tables() -> None:
            with translate_errors(f"the route tables of {scope}"):
                for item in arm.items(
                    group_path(sub, resource_group, "Microsoft.Network", "routeTables"), NETWORK_API
                ):
                    self._add_table(item)

        _parallel([lbs, tables])

    def _add_lb(self, d: Json) -> None:
        lb = load_balancer_from_rest(d)
        with self._lock:
            self.lbs[lb.id.lower()] = lb

    def _add_table(self, d: Json) -> None:
        table = route_table_from_rest(d)
        with self._lock:
            self.route_tables[table.id.lower()] = table

    # -- GETs for what is referenced but not gathered ------------------------------------------

    def prefetch(self, nics: Sequence[NicFacts], admin: bool = True) -> None:
        """Round 3 of a single VM: the NICs' load balancers and their VNets' admin rules."""
        tasks: list[Callable[[], None]] = []
        for lb_id in sorted({lb_of(r).lower(): lb_of(r) for n in nics for r in self._lb_refs(n)}.values()):
            if lb_id.lower() not in self.lbs and lb_id.lower() not in self.failed:
                tasks.append(lambda i=lb_id: self._get_lb(i))  # type: ignore[misc]
        if admin:
            vnets = {v.lower(): v for n in nics if (v := vnet_of(n.subnet_id))}
            tasks.extend(lambda v=v: self._get_admin(v) for v in sorted(vnets.values()))  # type: ignore[misc]
        _parallel(tasks)

    def fetch_missing(self, facts: Iterable[VmFacts], admin: bool = True) -> None:
        """What the VMs reference and no listing held: admin rules per VNet, route tables, load
        balancers in other groups; then the load balancers' frontend public IPs."""
        nics = [n for f in facts for n in f.nics if n.primary]
        tasks: list[Callable[[], None]] = []
        lb_ids = {lb_of(r).lower(): lb_of(r) for n in nics for r in self._lb_refs(n)}
        for low, lb_id in sorted(lb_ids.items()):
            if low not in self.lbs and low not in self.failed:
                tasks.append(lambda i=lb_id: self._get_lb(i))  # type: ignore[misc]
        tables = {
            n.subnet.route_table_id.lower(): n.subnet.route_table_id
            for n in nics
            if n.subnet and n.subnet.route_table_id
        }
        for low, table_id in sorted(tables.items()):
            if low not in self.route_tables and low not in self.failed:
                tasks.append(lambda i=table_id: self._get_table(i))  # type: ignore[misc]
        if admin:
            vnets = {v.lower(): v for n in nics if (v := vnet_of(n.subnet_id))}
            for low, vnet_id in sorted(vnets.items()):
                if low not in self.admin and low not in self.failed:
                    tasks.append(lambda v=vnet_id: self._get_admin(v))  # type: ignore[misc]
        _parallel(tasks)
        # Frontend public IPs of the load balancers these NICs reach (a handful: one per frontend).
        wanted: dict[str, str] = {}
        for nic in nics:
            for rule in nat_rules_for(nic, self.lbs):
                pip = rule.frontend_public_ip_id
                if pip and pip.lower() not in self.pips and pip.lower() not in self.failed:
                    wanted[pip.lower()] = pip
        _parallel([lambda p=p: self._get_pip(p) for p in sorted(wanted.values())])  # type: ignore[misc]

    @staticmethod
    def _lb_refs(nic: NicFacts) -> tuple[str, ...]:
        return (*nic.lb_nat_rule_ids, *nic.lb_pool_ids)

    def _fail(self, rid: str, what: str, err: AzrdpError) -> None:
        with self._lock:
            self.failed[rid.lower()] = (what, _reason(err))

    def _get(self, rid: str, what: str) -> Json:
        from azrdp.azure.arm import NETWORK_API, resource_path
        from azrdp.azure.clients import translate_errors

        with translate_errors(f"{what} '{name_of(rid)}'"):
            found: Json = self.clients.arm.get(resource_path(rid), NETWORK_API)
        return found

    def _get_lb(self, lb_id: str) -> None:
        try:
            self._add_lb(self._get(lb_id, "load balancer"))
        except AzrdpError as err:
            self._fail(lb_id, LB_READ, err)

    def _get_table(self, table_id: str) -> None:
        try:
            self._add_table(self._get(table_id, "route table"))
        except AzrdpError as err:
            self._fail(table_id, ROUTE_TABLE_READ, err)

    def _get_pip(self, pip_id: str) -> None:
        from azrdp.azure.inventory import public_ip_from_rest

        try:
            d = self._get(pip_id, "public IP")
            pip = public_ip_from_rest(d)
            with self._lock:
                self.pips[pip.id.lower()] = pip
        except AzrdpError as err:
            self._fail(pip_id, FRONTEND_IP_READ, err)

    def _get_admin(self, vnet_id: str) -> None:
        try:
            rules = read_admin_rules(self.clients, vnet_id)
            with self._lock:
                self.admin[vnet_id.lower()] = rules
        except AzrdpError as err:
            self._fail(vnet_id, ADMIN_READ, err)

    def add_pips(self, pips: Iterable[PublicIp]) -> None:
        with self._lock:
            for pip in pips:
                self.pips.setdefault(pip.id.lower(), pip)

    # -- assembly (pure) ------------------------------------------------------------------------

    def assemble(self, facts: VmFacts, admin: bool = True) -> PathFacts | None:
        nic = facts.primary_nic
        if nic is None:
            return None
        unreadable: list[tuple[str, str, str]] = []
        for lb_id in {lb_of(r).lower() for r in self._lb_refs(nic)}:
            if lb_id in self.failed:
                unreadable.append((LB_READ, lb_id, self.failed[lb_id][1]))
        rules = []
        for rule in nat_rules_for(nic, self.lbs):
            pip_id = rule.frontend_public_ip_id
            if pip_id:
                pip = self.pips.get(pip_id.lower())
                if pip is None and pip_id.lower() in self.failed:
                    unreadable.append((FRONTEND_IP_READ, pip_id, self.failed[pip_id.lower()][1]))
                rules.append(_with_pip(rule, pip))
            else:
                rules.append(rule)
        table = None
        table_id = nic.subnet.route_table_id if nic.subnet else None
        if table_id:
            table = self.route_tables.get(table_id.lower())
            if table is None:
                why = self.failed.get(table_id.lower(), (ROUTE_TABLE_READ, "not found"))[1]
                unreadable.append((ROUTE_TABLE_READ, table_id, why))
        admin_rules: tuple[AdminRule, ...] | None = None
        vnet_id = vnet_of(nic.subnet_id)
        if admin and vnet_id:
            admin_rules = self.admin.get(vnet_id.lower())
            if admin_rules is None:
                why = self.failed.get(vnet_id.lower(), (ADMIN_READ, "not read"))[1]
                unreadable.append((ADMIN_READ, vnet_id, why))
        return PathFacts(tuple(rules), table, admin_rules, None, tuple(unreadable))


def _with_pip(rule: NatRule, pip: PublicIp | None) -> NatRule:
    from dataclasses import replace

    return replace(rule, frontend_public_ip=pip)


def read_admin_rules(clients: Clients, vnet_id: str) -> tuple[AdminRule, ...]:
    """Every effective security admin rule on a VNet (all pages). Raises AzrdpError."""
    from azrdp.azure.arm import NETWORK_API, resource_path
    from azrdp.azure.clients import translate_errors

    rules: list[Any] = []
    token: str | None = None
    path = resource_path(vnet_id) + "/listNetworkManagerEffectiveSecurityAdminRules"
    with translate_errors(f"the security admin rules of virtual network '{name_of(vnet_id)}'"):
        for _ in range(MAX_ADMIN_PAGES):
            result = clients.arm.post(path, NETWORK_API, {"skipToken": token} if token else {})
            rules.extend(_list(result.get("value")))
            token = result.get("skipToken") or None
            if not token:
                break
    return admin_rules_from_rest(rules)


def get_effective_routes(clients: Clients, nic_id: str) -> tuple[Route, ...] | str:
    """Azure's effective routes for a NIC (a POST LRO, running VMs only), or why not."""
    from azrdp.azure.clients import translate_errors

    try:
        with translate_errors(f"the effective routes of NIC '{name_of(nic_id)}'"):
            poller = clients.network.network_interfaces.begin_get_effective_route_table(
                group_of(nic_id), name_of(nic_id)
            )
            return effective_routes_from_rest(poller.result(timeout=120).as_dict())
    except AzrdpError as err:
        return err.message
