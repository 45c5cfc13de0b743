"""What Azure computes about the way into a VM: load balancer back-references and v2 NAT port
mappings, effective routes, and the Virtual Network Manager security admin rules in force on a VNet.

Shapes follow the official examples (Azure/azure-rest-api-specs, Microsoft.Network):
LoadBalancerGetInboundNatRulePortMapping.json (a v2 NAT rule over a backend pool, the pool's
`loadBalancerBackendAddresses[].properties.inboundNatRulesPortMapping`), InboundNatRuleGet.json
(`backendIPConfiguration` of a v1 rule), RouteTableGet.json, NetworkInterfaceEffectiveRouteTableList.json
and NetworkManagerEffectiveSecurityAdminRulesList.json.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from azrdp.emulator.ids import key
from azrdp.emulator.store import ResourceStore

Resource = dict[str, Any]

LB_TYPE = "Microsoft.Network/loadBalancers"
ROUTE_TABLE_TYPE = "Microsoft.Network/routeTables"
NETWORK_MANAGER_TYPE = "Microsoft.Network/networkManagers"
SYSTEM_NONE = ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16")


def _props(resource: Resource) -> dict[str, Any]:
    props = resource.get("properties")
    if not isinstance(props, dict):
        props = resource["properties"] = {}
    return props


def _ref_id(value: Any) -> str | None:
    return value["id"] if isinstance(value, dict) and isinstance(value.get("id"), str) else None


def _add_ref(items: list[Any], ref_id: str) -> None:
    if not any(isinstance(r, dict) and key(str(r.get("id", ""))) == key(ref_id) for r in items):
        items.append({"id": ref_id})


def link_paths(store: ResourceStore) -> None:
    """Fill the back-references ARM computes for load balancers and route tables.

    v1 NAT rule <- NIC ipconfig (`backendIPConfiguration`); backend pool <- NIC ipconfigs
    (`backendIPConfigurations`, `loadBalancerBackendAddresses` with `networkInterfaceIPConfiguration`);
    a v2 NAT rule over a pool gets one frontend port per pool member, in pool order, from
    `frontendPortRangeStart` (Azure allocates them; the order is not documented, azrdp only reads the
    mapping); route table `subnets`.
    """
    for nic in store.list("Microsoft.Network/networkInterfaces"):
        for ipconfig in _props(nic).get("ipConfigurations") or ():
            props = ipconfig.get("properties") or {}
            for ref in props.get("loadBalancerInboundNatRules") or ():
                rule = store.get(_ref_id(ref) or "")
                if rule is not None and "id" in ipconfig:
                    _props(rule).setdefault("backendIPConfiguration", {"id": ipconfig["id"]})
            for ref in props.get("loadBalancerBackendAddressPools") or ():
                pool = store.get(_ref_id(ref) or "")
                if pool is None or "id" not in ipconfig:
                    continue
                pool_props = _props(pool)
                _add_ref(pool_props.setdefault("backendIPConfigurations", []), ipconfig["id"])
                addresses = pool_props.setdefault("loadBalancerBackendAddresses", [])
                if not any(
                    key(
                        str(
                            (a.get("properties") or {})
                            .get("networkInterfaceIPConfiguration", {})
                            .get("id", "")
                        )
                    )
                    == key(ipconfig["id"])
                    for a in addresses
                    if isinstance(a, dict)
                ):
                    addresses.append(
                        {
                            "name": f"{nic['name']}_{ipconfig.get('name', 'ipconfig1')}",
                            "properties": {"networkInterfaceIPConfiguration": {"id": ipconfig["id"]}},
                        }
                    )
    for lb in store.list(LB_TYPE):
        _map_v2_ports(lb)
    for vnet in store.list("Microsoft.Network/virtualNetworks"):
        for subnet in _props(vnet).get("subnets") or ():
            table = store.get(_ref_id((subnet.get("properties") or {}).get("routeTable")) or "")
            if table is not None:
                _add_ref(_props(table).setdefault("subnets", []), subnet["id"])
    _network_watchers(store)


def _network_watchers(store: ResourceStore) -> None:
    """Azure enables Network Watcher in a region when a VNet is created there, as
    NetworkWatcherRG/NetworkWatcher_<region> (learn.microsoft.com/azure/network-watcher/
    network-watcher-create): one per VNet region, unless the scenario has a watcher there."""
    from azrdp.emulator.path_builders import network_watcher

    have = {
        (w["id"].split("/")[2].lower(), str(w.get("location", "")).lower())
        for w in store.list("Microsoft.Network/networkWatchers")
    }
    for vnet in store.list("Microsoft.Network/virtualNetworks"):
        sub, location = vnet["id"].split("/")[2], str(vnet.get("location", ""))
        if location and (sub.lower(), location.lower()) not in have:
            store.put(network_watcher(sub, location))
            have.add((sub.lower(), location.lower()))


def _map_v2_ports(lb: Resource) -> None:
    props = _props(lb)
    pools = {key(str(p.get("id", ""))): p for p in props.get("backendAddressPools") or ()}
    for rule in props.get("inboundNatRules") or ():
        rule_props = rule.get("properties") or {}
        pool = pools.get(key(_ref_id(rule_props.get("backendAddressPool")) or ""))
        start = rule_props.get("frontendPortRangeStart")
        end = rule_props.get("frontendPortRangeEnd")
        if pool is None or not isinstance(start, int) or not isinstance(end, int):
            continue
        _add_ref(_props(pool).setdefault("inboundNatRules", []), rule["id"])
        for index, address in enumerate(_props(pool).get("loadBalancerBackendAddresses") or ()):
            if start + index > end:
                break
            mappings = address.setdefault("properties", {}).setdefault("inboundNatRulesPortMapping", [])
            if not any(m.get("inboundNatRuleName") == rule["name"] for m in mappings):
                mappings.append(
                    {
                        "inboundNatRuleName": rule["name"],
                        "frontendPort": start + index,
                        "backendPort": rule_props.get("backendPort"),
                    }
                )


# ---------------------------------------------------------------------------------------------
# effective routes


def _subnet_of(store: ResourceStore, nic: Resource) -> Resource | None:
    for ipconfig in _props(nic).get("ipConfigurations") or ():
        props = ipconfig.get("properties") or {}
        if props.get("primary", True):
            return store.get(_ref_id(props.get("subnet")) or "")
    return None


def vnet_prefixes(store: ResourceStore, subnet: Resource | None) -> list[str]:
    if subnet is None:
        return []
    vnet = store.get(subnet["id"].rsplit("/subnets/", 1)[0])
    space = _props(vnet).get("addressSpace") if vnet else None
    return list((space or {}).get("addressPrefixes") or [])


def effective_routes(store: ResourceStore, nic: Resource) -> list[Resource]:
    """System routes plus the subnet's UDRs; a system route a UDR overrides is `Invalid`."""
    subnet = _subnet_of(store, nic)
    table = store.get(_ref_id((subnet or {}).get("properties", {}).get("routeTable")) or "")
    user: list[Resource] = []
    for route in _props(table).get("routes") or () if table else ():
        rp = route.get("properties") or {}
        entry: Resource = {
            "name": route.get("name"),
            "source": "User",
            "state": "Active",
            "addressPrefix": [rp.get("addressPrefix")],
            "nextHopType": rp.get("nextHopType"),
            "nextHopIpAddress": [rp["nextHopIpAddress"]] if rp.get("nextHopIpAddress") else [],
        }
        if table is not None:
            entry["disableBgpRoutePropagation"] = bool(_props(table).get("disableBgpRoutePropagation"))
        user.append(entry)
    overridden = {p for r in user for p in r["addressPrefix"]}
    system: list[Resource] = []
    prefixes = vnet_prefixes(store, subnet)
    for prefixes_, hop in (
        (prefixes, "VnetLocal"),
        (["0.0.0.0/0"], "Internet"),
        *(([p], "None") for p in SYSTEM_NONE),
    ):
        if not prefixes_:
            continue
        system.append(
            {
                "source": "Default",
                "state": "Invalid" if any(p in overridden for p in prefixes_) else "Active",
                "addressPrefix": list(prefixes_),
                "nextHopType": hop,
                "nextHopIpAddress": [],
            }
        )
    return system + user


# ---------------------------------------------------------------------------------------------
# Virtual Network Manager: effective security admin rules of a VNet


def _children(resource: Resource, name: str) -> list[Resource]:
    found = (resource.get("_children") or {}).get(name)
    return list(found) if isinstance(found, list) else []


def effective_admin_rules(store: ResourceStore, vnet: Resource) -> list[Resource]:
    """The admin rules in force on a VNet, as listNetworkManagerEffectiveSecurityAdminRules reports them.

    A rule is in force when its rule collection applies to a network group that has the VNet as a
    static member. Every security admin configuration counts as deployed to every region (the
    emulator has no commit operation), and dynamic membership through Azure Policy is not modelled.
    """
    out: list[Resource] = []
    vnet_key = key(vnet["id"])
    for manager in store.list(NETWORK_MANAGER_TYPE):
        groups: dict[str, Resource] = {}
        for group in _children(manager, "networkGroups"):
            members = _children(group, "staticMembers")
            if any(key(str((m.get("properties") or {}).get("resourceId", ""))) == vnet_key for m in members):
                groups[key(group["id"])] = group
        if not groups:
            continue
        for config in _children(manager, "securityAdminConfigurations"):
            config_props = config.get("properties") or {}
            for collection in _children(config, "ruleCollections"):
                coll_props = collection.get("properties") or {}
                applies = [
                    g
                    for g in coll_props.get("appliesToGroups") or ()
                    if key(str(g.get("networkGroupId", ""))) in groups
                ]
                if not applies:
                    continue
                for rule in _children(collection, "rules"):
                    rule_props = {
                        k: v for k, v in (rule.get("properties") or {}).items() if k != "resourceGuid"
                    }
                    rule_props.setdefault("provisioningState", "Succeeded")
                    out.append(
                        {
                            "id": rule["id"],
                            "configurationDescription": config_props.get("description", ""),
                            "ruleCollectionDescription": coll_props.get("description", ""),
                            "ruleCollectionAppliesToGroups": [
                                {"networkGroupId": g["networkGroupId"]} for g in applies
                            ],
                            "ruleGroups": [
                                {
                                    "id": groups[key(g["networkGroupId"])]["id"],
                                    "properties": {
                                        "description": (
                                            groups[key(g["networkGroupId"])].get("properties") or {}
                                        ).get("description", ""),
                                        "provisioningState": "Succeeded",
                                    },
                                }
                                for g in applies
                            ],
                            "kind": rule.get("kind", "Custom"),
                            "properties": rule_props,
                        }
                    )
    return out


def address_in(address: str, prefixes: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for prefix in prefixes:
        try:
            if ip in ipaddress.ip_network(prefix, strict=False):
                return True
        except ValueError:
            continue
    return False
