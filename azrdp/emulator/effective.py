"""Effective security rules as `networkInterfaces/{nic}/effectiveNetworkSecurityGroups` reports them.

Differences from the NSG view (all modelled): one entry per NSG that applies (NIC and subnet), `*`
becomes `All` / `0-65535` / `0.0.0.0/0`, single ports become ranges (`3389-3389`), service tags keep
their name and gain `expanded*AddressPrefix` lists, default rules are named `defaultSecurityRules/...`.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from azrdp.emulator.store import ResourceStore

Resource = dict[str, Any]

AZURE_PLATFORM = "168.63.129.16/32"
_NOT_INTERNET = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/3",
)


@lru_cache(maxsize=1)
def internet_prefixes() -> tuple[str, ...]:
    """Public IPv4 space: everything except private, shared, loopback, link-local and multicast."""
    remaining = [ipaddress.IPv4Network("0.0.0.0/0")]
    for excluded in map(ipaddress.IPv4Network, _NOT_INTERNET):
        next_round: list[ipaddress.IPv4Network] = []
        for net in remaining:
            if net.overlaps(excluded):
                if excluded.subnet_of(net):
                    next_round.extend(net.address_exclude(excluded))
            else:
                next_round.append(net)
        remaining = next_round
    return tuple(str(n) for n in sorted(remaining))


def _port(value: str) -> str:
    value = value.strip()
    if value == "*":
        return "0-65535"
    return value if "-" in value else f"{value}-{value}"


def _prefix(value: str) -> str:
    value = value.strip()
    if value == "*":
        return "0.0.0.0/0"
    if "/" not in value and value[:1].isdigit():
        return f"{value}/32"
    return value


def _expand(value: str, vnet_prefixes: list[str]) -> list[str] | None:
    tag = value.lower()
    if tag == "internet":
        return list(internet_prefixes())
    if tag == "virtualnetwork":
        return [*vnet_prefixes, AZURE_PLATFORM]
    if tag == "azureloadbalancer":
        return [AZURE_PLATFORM]
    return None


def effective_rule(rule: Resource, array: str, vnet_prefixes: list[str]) -> Resource:
    props = rule.get("properties") or {}
    protocol = str(props.get("protocol", "*"))
    out: Resource = {
        "name": f"{array}/{rule.get('name')}",
        "protocol": "All" if protocol == "*" else protocol,
    }
    for singular, plural in (
        ("sourcePortRange", "sourcePortRanges"),
        ("destinationPortRange", "destinationPortRanges"),
    ):
        if props.get(plural):
            out[plural] = [_port(p) for p in props[plural]]
        else:
            out[singular] = _port(str(props.get(singular, "*")))
    for side in ("source", "destination"):
        singular, plural = f"{side}AddressPrefix", f"{side}AddressPrefixes"
        values = props.get(plural) or [props.get(singular, "*")]
        if props.get(plural):
            out[plural] = [_prefix(str(p)) for p in values]
        else:
            out[singular] = _prefix(str(values[0]))
        expanded: list[str] = []
        tagged = False
        for value in values:
            more = _expand(str(value), vnet_prefixes)
            if more is not None:
                tagged = True
                expanded.extend(more)
        for group in props.get(f"{side}ApplicationSecurityGroups") or ():
            tagged = True
            expanded.append(str(group.get("id", "")))
        if tagged:
            out[f"expanded{side[:1].upper()}{side[1:]}AddressPrefix"] = expanded
    out["access"] = props.get("access")
    out["priority"] = props.get("priority")
    out["direction"] = props.get("direction")
    return out


def effective_groups(store: ResourceStore, nic: Resource) -> list[Resource]:
    props = nic.get("properties") or {}
    entries: list[Resource] = []
    subnet: Resource | None = None
    for ipconfig in props.get("ipConfigurations") or ():
        ip_props = ipconfig.get("properties") or {}
        if ip_props.get("primary", True):
            ref = ip_props.get("subnet") or {}
            subnet = store.get(ref["id"]) if isinstance(ref.get("id"), str) else None
            break
    vnet_prefixes: list[str] = []
    if subnet is not None:
        vnet = store.get(subnet["id"].rsplit("/subnets/", 1)[0])
        vnet_prefixes = list(
            ((vnet or {}).get("properties") or {}).get("addressSpace", {}).get("addressPrefixes") or []
        )
    candidates: list[tuple[str, Resource, dict[str, Any]]] = []
    nic_nsg = (props.get("networkSecurityGroup") or {}).get("id")
    if isinstance(nic_nsg, str):
        candidates.append((nic_nsg, nic, {"networkInterface": {"id": nic["id"]}}))
    if subnet is not None:
        subnet_nsg = ((subnet.get("properties") or {}).get("networkSecurityGroup") or {}).get("id")
        if isinstance(subnet_nsg, str):
            candidates.append((subnet_nsg, subnet, {"subnet": {"id": subnet["id"]}}))
    by_nsg: dict[str, Resource] = {}
    for nsg_id, _, association in candidates:
        nsg = store.get(nsg_id)
        if nsg is None:
            continue
        same = by_nsg.get(nsg["id"].lower())
        if same is not None:
            # One NSG on both the NIC and its subnet: Azure reports it once, with both associations.
            same["association"].update(association)
            continue
        nsg_props = nsg.get("properties") or {}
        rules = [
            effective_rule(r, "securityRules", vnet_prefixes) for r in nsg_props.get("securityRules") or ()
        ]
        rules += [
            effective_rule(r, "defaultSecurityRules", vnet_prefixes)
            for r in nsg_props.get("defaultSecurityRules") or ()
        ]
        entry = {
            "networkSecurityGroup": {"id": nsg["id"]},
            "association": dict(association),
            "effectiveSecurityRules": rules,
        }
        by_nsg[nsg["id"].lower()] = entry
        entries.append(entry)
    return entries
