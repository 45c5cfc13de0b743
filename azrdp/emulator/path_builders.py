"""Factories for load balancers, route tables, network watchers and Virtual Network Manager
resources, in the shapes of the official examples (see azrdp.emulator.netpaths), plus
`fleet-paths:N`: a generated fleet where some VMs sit behind one load balancer's NAT rules, some
behind a route to an appliance and some under an admin Deny.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azrdp.emulator import builders
from azrdp.emulator.builders import rg_prefix, stable_guid

if TYPE_CHECKING:
    from azrdp.emulator.scenario import Scenario

Resource = dict[str, Any]
NETWORK_WATCHER_GROUP = "NetworkWatcherRG"


def load_balancer(
    subscription: str,
    resource_group: str,
    name: str,
    location: str,
    *,
    public_ip_id: str,
    nat_rules: list[tuple[str, int, int]] = (),  # type: ignore[assignment]
    pool: str | None = None,
    pool_rule: tuple[str, int, int, int] | None = None,  # name, range start, range end, backend port
    sku: str = "Standard",
) -> Resource:
    """A public load balancer with one frontend, v1 NAT rules (name, frontend, backend port) and,
    optionally, a backend pool with a v2 NAT rule over it."""
    lb_id = f"{rg_prefix(subscription, resource_group)}/Microsoft.Network/loadBalancers/{name}"
    frontend_id = f"{lb_id}/frontendIPConfigurations/frontend"
    rules: list[Resource] = []
    for rule_name, frontend_port, backend_port in nat_rules:
        rules.append(
            {
                "name": rule_name,
                "id": f"{lb_id}/inboundNatRules/{rule_name}",
                "type": "Microsoft.Network/loadBalancers/inboundNatRules",
                "etag": f'W/"{stable_guid(lb_id, rule_name)}"',
                "properties": {
                    "provisioningState": "Succeeded",
                    "frontendIPConfiguration": {"id": frontend_id},
                    "frontendPort": frontend_port,
                    "backendPort": backend_port,
                    "enableFloatingIP": False,
                    "idleTimeoutInMinutes": 4,
                    "protocol": "Tcp",
                    "enableTcpReset": True,
                },
            }
        )
    pools: list[Resource] = []
    if pool:
        pool_id = f"{lb_id}/backendAddressPools/{pool}"
        pools.append(
            {
                "name": pool,
                "id": pool_id,
                "type": "Microsoft.Network/loadBalancers/backendAddressPools",
                "etag": f'W/"{stable_guid(lb_id, pool)}"',
                "properties": {"provisioningState": "Succeeded", "loadBalancerBackendAddresses": []},
            }
        )
        if pool_rule:
            rule_name, start, end, backend_port = pool_rule
            rules.append(
                {
                    "name": rule_name,
                    "id": f"{lb_id}/inboundNatRules/{rule_name}",
                    "type": "Microsoft.Network/loadBalancers/inboundNatRules",
                    "etag": f'W/"{stable_guid(lb_id, rule_name)}"',
                    "properties": {
                        "provisioningState": "Succeeded",
                        "frontendIPConfiguration": {"id": frontend_id},
                        "frontendPort": 0,
                        "backendPort": backend_port,
                        "enableFloatingIP": False,
                        "idleTimeoutInMinutes": 4,
                        "protocol": "Tcp",
                        "enableTcpReset": True,
                        "frontendPortRangeStart": start,
                        "frontendPortRangeEnd": end,
                        "backendAddressPool": {"id": pool_id},
                    },
                }
            )
    return {
        "name": name,
        "id": lb_id,
        "type": "Microsoft.Network/loadBalancers",
        "location": location,
        "tags": {},
        "etag": f'W/"{stable_guid(lb_id)}"',
        "sku": {"name": sku, "tier": "Regional"},
        "properties": {
            "provisioningState": "Succeeded",
            "resourceGuid": stable_guid(lb_id, "guid"),
            "frontendIPConfigurations": [
                {
                    "name": "frontend",
                    "id": frontend_id,
                    "type": "Microsoft.Network/loadBalancers/frontendIPConfigurations",
                    "etag": f'W/"{stable_guid(lb_id, "frontend")}"',
                    "properties": {
                        "provisioningState": "Succeeded",
                        "privateIPAllocationMethod": "Dynamic",
                        "publicIPAddress": {"id": public_ip_id},
                    },
                }
            ],
            "backendAddressPools": pools,
            "loadBalancingRules": [],
            "probes": [],
            "inboundNatRules": rules,
            "inboundNatPools": [],
        },
    }


def nat_rule_id(lb: Resource, rule: str) -> str:
    return f"{lb['id']}/inboundNatRules/{rule}"


def attach_to_lb(nic: Resource, *, nat_rules: list[str] = (), pools: list[str] = ()) -> None:  # type: ignore[assignment]
    """Reference NAT rules and backend pools from the NIC's primary IP configuration."""
    props = nic["properties"]["ipConfigurations"][0]["properties"]
    if nat_rules:
        props["loadBalancerInboundNatRules"] = [{"id": r} for r in nat_rules]
    if pools:
        props["loadBalancerBackendAddressPools"] = [{"id": p} for p in pools]


def route_table(
    subscription: str,
    resource_group: str,
    name: str,
    location: str,
    routes: list[tuple[str, str, str, str | None]],
) -> Resource:
    """`routes`: (name, address prefix, next hop type, next hop IP or None)."""
    rt_id = f"{rg_prefix(subscription, resource_group)}/Microsoft.Network/routeTables/{name}"
    items = []
    for route_name, prefix, hop, hop_ip in routes:
        props: dict[str, Any] = {
            "provisioningState": "Succeeded",
            "addressPrefix": prefix,
            "nextHopType": hop,
        }
        if hop_ip:
            props["nextHopIpAddress"] = hop_ip
        items.append(
            {
                "name": route_name,
                "id": f"{rt_id}/routes/{route_name}",
                "type": "Microsoft.Network/routeTables/routes",
                "etag": f'W/"{stable_guid(rt_id, route_name)}"',
                "properties": props,
            }
        )
    return {
        "name": name,
        "id": rt_id,
        "type": "Microsoft.Network/routeTables",
        "location": location,
        "tags": {},
        "etag": f'W/"{stable_guid(rt_id)}"',
        "properties": {
            "provisioningState": "Succeeded",
            "resourceGuid": stable_guid(rt_id, "guid"),
            "disableBgpRoutePropagation": False,
            "routes": items,
        },
    }


def associate_route_table(vnet: Resource, subnet_name: str, table: Resource) -> None:
    for subnet in vnet["properties"]["subnets"]:
        if subnet["name"] == subnet_name:
            subnet["properties"]["routeTable"] = {"id": table["id"]}


def network_watcher(subscription: str, location: str) -> Resource:
    name = f"NetworkWatcher_{location}"
    nw_id = f"{rg_prefix(subscription, NETWORK_WATCHER_GROUP)}/Microsoft.Network/networkWatchers/{name}"
    return {
        "name": name,
        "id": nw_id,
        "type": "Microsoft.Network/networkWatchers",
        "location": location,
        "tags": {},
        "etag": f'W/"{stable_guid(nw_id)}"',
        "properties": {"provisioningState": "Succeeded"},
    }


def admin_deny(
    subscription: str,
    resource_group: str,
    manager: str,
    location: str,
    vnet_ids: list[str],
    *,
    port: str = "3389",
    access: str = "Deny",
    rule: str = "deny-rdp-inbound",
    priority: int = 10,
    source: str = "Internet",
    source_type: str = "ServiceTag",
) -> list[Resource]:
    """A network manager, a network group with the VNets as static members, a security admin
    configuration with one rule collection and one rule; parents listed before children."""
    nm_id = f"{rg_prefix(subscription, resource_group)}/Microsoft.Network/networkManagers/{manager}"
    group_id = f"{nm_id}/networkGroups/rdp-guarded"
    config_id = f"{nm_id}/securityAdminConfigurations/baseline"
    coll_id = f"{config_id}/ruleCollections/remote-access"
    out: list[Resource] = [
        {
            "name": manager,
            "id": nm_id,
            "type": "Microsoft.Network/networkManagers",
            "location": location,
            "tags": {},
            "properties": {
                "provisioningState": "Succeeded",
                "networkManagerScopes": {
                    "subscriptions": [f"/subscriptions/{subscription}"],
                    "managementGroups": [],
                },
                "networkManagerScopeAccesses": ["SecurityAdmin"],
            },
        },
        {
            "name": "rdp-guarded",
            "id": group_id,
            "type": "Microsoft.Network/networkManagers/networkGroups",
            "properties": {
                "description": "VNets whose RDP the security team governs",
                "memberType": "VirtualNetwork",
            },
        },
    ]
    for index, vnet_id in enumerate(vnet_ids):
        out.append(
            {
                "name": f"member-{index}",
                "id": f"{group_id}/staticMembers/member-{index}",
                "type": "Microsoft.Network/networkManagers/networkGroups/staticMembers",
                "properties": {"resourceId": vnet_id, "region": location},
            }
        )
    out += [
        {
            "name": "baseline",
            "id": config_id,
            "type": "Microsoft.Network/networkManagers/securityAdminConfigurations",
            "properties": {
                "description": "Company baseline",
                "applyOnNetworkIntentPolicyBasedServices": ["None"],
            },
        },
        {
            "name": "remote-access",
            "id": coll_id,
            "type": "Microsoft.Network/networkManagers/securityAdminConfigurations/ruleCollections",
            "properties": {
                "description": "Remote access from the Internet",
                "appliesToGroups": [{"networkGroupId": group_id}],
            },
        },
        {
            "name": rule,
            "id": f"{coll_id}/rules/{rule}",
            "type": "Microsoft.Network/networkManagers/securityAdminConfigurations/ruleCollections/rules",
            "kind": "Custom",
            "properties": {
                "description": f"{access} RDP from {source}",
                "protocol": "Tcp",
                "sources": [{"addressPrefix": source, "addressPrefixType": source_type}],
                "destinations": [{"addressPrefix": "*", "addressPrefixType": "IPPrefix"}],
                "sourcePortRanges": ["0-65535"],
                "destinationPortRanges": [port],
                "access": access,
                "priority": priority,
                "direction": "Inbound",
            },
        },
    ]
    return out


def paths_fleet(count: int, *, groups: int | None = None, seed: int = 0) -> Scenario:
    """`fleet:N` plus the three ways in or out that NSGs do not show, on known VMs.

    Group 00: its `workloads` VMs without a public IP (every fourth) reach RDP through NAT rules of one
    Standard load balancer (frontend ports 50001...). Group 01: its `workloads` subnet routes
    0.0.0.0/0 to a virtual appliance. Group 02: its VNet is under a Virtual Network Manager admin rule
    that denies RDP from the Internet.
    """
    from azrdp.emulator.scenario import generate_fleet

    scenario = generate_fleet(count, groups=groups or max(3, min(10, (count + 49) // 50)), seed=seed)
    sub, loc = scenario.subscription_id, scenario.location
    resources = scenario.resources
    by_id = {r["id"].lower(): r for r in resources}
    vnets = [r for r in resources if r["type"] == "Microsoft.Network/virtualNetworks"]
    nics = [r for r in resources if r["type"] == "Microsoft.Network/networkInterfaces"]
    extra: list[Resource] = []
    # Group 00: NAT rules on one load balancer for NICs without a public IP.
    group0 = [n for n in nics if "/resourcegroups/rg-fleet-00/" in n["id"].lower()]
    lb_pip = builders.public_ip(sub, "rg-fleet-00", "lb-rdp-ip", loc, "198.51.250.10")
    natted = [
        n
        for n in group0
        if "publicIPAddress" not in n["properties"]["ipConfigurations"][0]["properties"]
        and n["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"].endswith("/workloads")
    ][::4]
    lb = load_balancer(
        sub,
        "rg-fleet-00",
        "lb-rdp",
        loc,
        public_ip_id=lb_pip["id"],
        nat_rules=[(f"rdp-{n['name']}", 50001 + i, 3389) for i, n in enumerate(natted)],
    )
    for nic in natted:
        attach_to_lb(nic, nat_rules=[nat_rule_id(lb, f"rdp-{nic['name']}")])
    extra += [lb_pip, lb]
    # Group 01: 0.0.0.0/0 to an appliance on the workloads subnet.
    if len(vnets) > 1:
        table = route_table(
            sub,
            "rg-fleet-01",
            "rt-to-nva",
            loc,
            [("default-to-nva", "0.0.0.0/0", "VirtualAppliance", "10.1.200.4")],
        )
        associate_route_table(vnets[1], "workloads", table)
        extra.append(table)
    # Group 02: an admin rule denies RDP from the Internet.
    if len(vnets) > 2:
        extra += admin_deny(sub, "rg-fleet-02", "avnm-corp", loc, [vnets[2]["id"]])
    del by_id
    scenario.resources = [*extra, *resources]
    scenario.name = "fleet-paths"
    scenario.description += (
        "; load balancer NAT in rg-fleet-00, appliance route in rg-fleet-01, admin Deny in rg-fleet-02"
    )
    return scenario
