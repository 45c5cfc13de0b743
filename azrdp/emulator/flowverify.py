"""Network Watcher IP flow verify: one packet, judged by the admin rules and the NSGs.

Deliberately written apart from azrdp.nsg (which reasons over *sets* of sources): this engine
looks at one 5-tuple, rule by rule, the way IP flow verify describes it
(learn.microsoft.com/azure/network-watcher/ip-flow-verify-overview: the NSGs of the subnet and the
NIC, and the Virtual Network Manager admin rules of the VNet, are evaluated). Being a separate
implementation, it is the oracle azrdp's evaluator is tested against.

Order (learn.microsoft.com/azure/virtual-network-manager/concept-security-admins,
learn.microsoft.com/azure/virtual-network/network-security-group-how-it-works): admin rules by
priority, first match: Deny stops, Always Allow admits, Allow goes on to the NSGs; then inbound the
subnet's NSG and the NIC's (outbound the NIC's first), each first match by priority; both must allow.
Service tags resolved here: Internet, VirtualNetwork, AzureLoadBalancer; other tags match nothing.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from azrdp.emulator.effective import internet_prefixes
from azrdp.emulator.netpaths import address_in, effective_admin_rules, vnet_prefixes
from azrdp.emulator.store import ResourceStore

Resource = dict[str, Any]
PLATFORM = "168.63.129.16"


def _ports(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)] if value not in (None, "") else []


def _port_in(port: int, specs: list[str]) -> bool:
    for spec in specs:
        for part in spec.split(","):
            text = part.strip()
            if text in ("*", ""):
                return text == "*"
            low, _, high = text.partition("-")
            try:
                if int(low) <= port <= int(high or low):
                    return True
            except ValueError:
                continue
    return False


def _address_matches(address: str, spec: str, vnet: list[str]) -> bool:
    low = spec.strip().lower()
    if low in ("*", "any", "0.0.0.0/0"):
        return True
    if low == "internet":
        return address_in(address, list(internet_prefixes())) and not address_in(address, vnet)
    if low == "virtualnetwork":
        return address_in(address, vnet) or address == PLATFORM
    if low == "azureloadbalancer":
        return address == PLATFORM
    return address_in(address, [spec])


def _protocol_matches(rule_protocol: Any, protocol: str) -> bool:
    value = str(rule_protocol or "*").lower()
    return value in ("*", "any", "all") or value == protocol.lower()


class Packet:
    def __init__(self, body: dict[str, Any]) -> None:
        self.direction = str(body["direction"])
        self.protocol = str(body["protocol"])
        self.local_ip = str(body["localIPAddress"])
        self.remote_ip = str(body["remoteIPAddress"])
        self.local_port = int(str(body["localPort"]))
        self.remote_port = int(str(body["remotePort"]))

    @property
    def inbound(self) -> bool:
        return self.direction.lower() == "inbound"

    def ends(self) -> tuple[str, int, str, int]:
        """(source, source port, destination, destination port) as the rules see them."""
        if self.inbound:
            return self.remote_ip, self.remote_port, self.local_ip, self.local_port
        return self.local_ip, self.local_port, self.remote_ip, self.remote_port


def _nsg_rule_matches(props: dict[str, Any], packet: Packet, vnet: list[str], nic_asgs: set[str]) -> bool:
    if str(props.get("direction", "")).lower() != packet.direction.lower():
        return False
    if not _protocol_matches(props.get("protocol"), packet.protocol):
        return False
    src, sport, dst, dport = packet.ends()
    if not _port_in(sport, _ports(props.get("sourcePortRanges")) or _ports(props.get("sourcePortRange"))):
        return False
    if not _port_in(
        dport, _ports(props.get("destinationPortRanges")) or _ports(props.get("destinationPortRange"))
    ):
        return False
    own_asgs_side = "destination" if packet.inbound else "source"
    for side, address in (("source", src), ("destination", dst)):
        prefixes = _ports(props.get(f"{side}AddressPrefixes")) or _ports(props.get(f"{side}AddressPrefix"))
        asgs = {str(a.get("id", "")).lower() for a in props.get(f"{side}ApplicationSecurityGroups") or ()}
        if asgs:
            if side != own_asgs_side or not asgs & nic_asgs:
                return False
            continue
        if not any(_address_matches(address, p, vnet) for p in prefixes):
            return False
    return True


def _evaluate_nsg(nsg: Resource, packet: Packet, vnet: list[str], nic_asgs: set[str]) -> tuple[str, str]:
    props = nsg.get("properties") or {}
    rules = [("securityRules", r) for r in props.get("securityRules") or ()]
    rules += [("defaultSecurityRules", r) for r in props.get("defaultSecurityRules") or ()]
    rules.sort(key=lambda item: int((item[1].get("properties") or {}).get("priority") or 0))
    for array, rule in rules:
        rule_props = rule.get("properties") or {}
        if _nsg_rule_matches(rule_props, packet, vnet, nic_asgs):
            return str(rule_props.get("access")), f"{array}/{rule.get('name')}"
    return (
        "Deny",
        "defaultSecurityRules/DenyAllInBound" if packet.inbound else "defaultSecurityRules/DenyAllOutBound",
    )


def _admin_matches(props: dict[str, Any], packet: Packet, vnet: list[str]) -> bool:
    if str(props.get("direction", "")).lower() != packet.direction.lower():
        return False
    if not _protocol_matches(props.get("protocol"), packet.protocol):
        return False
    src, sport, dst, dport = packet.ends()
    if not _port_in(sport, _ports(props.get("sourcePortRanges")) or ["*"]):
        return False
    if not _port_in(dport, _ports(props.get("destinationPortRanges")) or ["*"]):
        return False
    for side, address in (("sources", src), ("destinations", dst)):
        items = props.get(side) or [{"addressPrefix": "*"}]
        if not any(
            str(i.get("addressPrefixType", "IPPrefix")) != "NetworkGroup"
            and _address_matches(address, str(i.get("addressPrefix", "")), vnet)
            for i in items
        ):
            return False
    return True


def verify(store: ResourceStore, nic: Resource, body: dict[str, Any]) -> dict[str, str]:
    """The IP flow verify result for one NIC: {"access": "Allow"|"Deny", "ruleName": ...}."""
    packet = Packet(body)
    props = nic.get("properties") or {}
    subnet = None
    asgs: set[str] = set()
    for ipconfig in props.get("ipConfigurations") or ():
        ip_props = ipconfig.get("properties") or {}
        asgs |= {str(a.get("id", "")).lower() for a in ip_props.get("applicationSecurityGroups") or ()}
        if ip_props.get("privateIPAddress") == packet.local_ip:
            subnet = store.get(str((ip_props.get("subnet") or {}).get("id", "")))
    vnet = vnet_prefixes(store, subnet)
    if subnet is not None:
        vnet_resource = store.get(subnet["id"].rsplit("/subnets/", 1)[0])
        rules = effective_admin_rules(store, vnet_resource) if vnet_resource else []
        rules.sort(key=lambda r: int((r.get("properties") or {}).get("priority") or 0))
        for rule in rules:
            rule_props = rule.get("properties") or {}
            if not _admin_matches(rule_props, packet, vnet):
                continue
            access = str(rule_props.get("access"))
            name = str(rule["id"]).rsplit("/", 1)[-1]
            if access == "Deny":
                return {"access": "Deny", "ruleName": name}
            if access == "AlwaysAllow":
                return {"access": "Allow", "ruleName": name}
            break  # Allow: the NSGs decide
    layers: list[Resource] = []
    subnet_nsg = store.get(
        str(((subnet or {}).get("properties") or {}).get("networkSecurityGroup", {}).get("id", ""))
    )
    nic_nsg = store.get(str((props.get("networkSecurityGroup") or {}).get("id", "")))
    for nsg in (subnet_nsg, nic_nsg) if packet.inbound else (nic_nsg, subnet_nsg):
        if nsg is not None:
            layers.append(nsg)
    decision = {"access": "Allow", "ruleName": ""}
    for nsg in layers:
        access, name = _evaluate_nsg(nsg, packet, vnet, asgs)
        decision = {"access": access, "ruleName": name}
        if access != "Allow":
            break
    return decision


def valid_ip(text: Any) -> bool:
    try:
        ipaddress.ip_address(str(text))
        return True
    except ValueError:
        return False
