"""Network routes through the real SDK: NSGs and rules, NICs, effective NSGs, VNets, subnets, public IPs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from fixtures_emulator import sdk_clients

from azrdp.emulator import Emulator

RG = "rg-rdp"
NIC_NSG = "vm-rdp01-nsg"
DEFAULT_RULES = [
    ("AllowVnetInBound", 65000, "Inbound", "Allow"),
    ("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow"),
    ("DenyAllInBound", 65500, "Inbound", "Deny"),
    ("AllowVnetOutBound", 65000, "Outbound", "Allow"),
    ("AllowInternetOutBound", 65001, "Outbound", "Allow"),
    ("DenyAllOutBound", 65500, "Outbound", "Deny"),
]


def rule_body(priority: int, **overrides: Any) -> dict[str, Any]:
    props = {
        "protocol": "Tcp",
        "sourcePortRange": "*",
        "destinationPortRange": "3389",
        "sourceAddressPrefix": "198.51.100.7/32",
        "destinationAddressPrefix": "*",
        "access": "Allow",
        "priority": priority,
        "direction": "Inbound",
    }
    props.update(overrides)
    return {"properties": props}


def test_nsg_get_list_and_list_all_carry_the_six_default_rules(emulator: Emulator) -> None:
    _, network = sdk_clients(emulator)
    nsg = network.network_security_groups.get(RG, NIC_NSG)
    defaults = [(r.name, r.priority, r.direction, r.access) for r in nsg.default_security_rules]
    assert defaults == DEFAULT_RULES
    assert all(r.id.endswith(f"/defaultSecurityRules/{r.name}") for r in nsg.default_security_rules)
    assert [r.name for r in nsg.security_rules] == ["allow-rdp-admin"]
    assert [n.id.rsplit("/", 1)[1] for n in nsg.network_interfaces] == ["vm-rdp01-nic"]
    assert {g.name for g in network.network_security_groups.list(RG)} == {NIC_NSG, "nsg-subnet-default"}
    assert len(list(network.network_security_groups.list_all())) == 2
    subnet_nsg = network.network_security_groups.get(RG, "nsg-subnet-default")
    assert [s.id.rsplit("/", 1)[1] for s in subnet_nsg.subnets] == ["default"]


def test_default_rule_get_and_list(emulator: Emulator) -> None:
    _, network = sdk_clients(emulator)
    rule = network.default_security_rules.get(RG, NIC_NSG, "DenyAllInBound")
    assert (rule.priority, rule.access) == (65500, "Deny")
    assert len(list(network.default_security_rules.list(RG, NIC_NSG))) == 6


def test_security_rule_put_is_an_lro_and_shows_up_in_the_nsg(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("healthy", lro_seconds=0.2)
    _, network = sdk_clients(emu)
    poller = network.security_rules.begin_create_or_update(RG, NIC_NSG, "allow-rdp-helpdesk", rule_body(1100))
    assert network.security_rules.get(RG, NIC_NSG, "allow-rdp-helpdesk").provisioning_state == "Updating"
    created = poller.result()
    assert (created.name, created.provisioning_state, created.priority) == (
        "allow-rdp-helpdesk",
        "Succeeded",
        1100,
    )
    put = [r for r in emu.requests if r.method == "PUT"]
    assert [r.status for r in put] == [201]
    names = [r.name for r in network.network_security_groups.get(RG, NIC_NSG).security_rules]
    assert names == ["allow-rdp-admin", "allow-rdp-helpdesk"]
    # A second PUT updates in place (200).
    network.security_rules.begin_create_or_update(
        RG, NIC_NSG, "allow-rdp-helpdesk", rule_body(1100, sourceAddressPrefix="198.51.100.8/32")
    ).result()
    assert [r.status for r in emu.requests if r.method == "PUT"] == [201, 200]
    assert (
        network.security_rules.get(RG, NIC_NSG, "allow-rdp-helpdesk").source_address_prefix
        == "198.51.100.8/32"
    )


def test_security_rule_validation_errors(emulator: Emulator) -> None:
    _, network = sdk_clients(emulator)
    with pytest.raises(HttpResponseError) as duplicate:
        network.security_rules.begin_create_or_update(RG, NIC_NSG, "dup", rule_body(1000)).result()
    assert (duplicate.value.status_code, duplicate.value.error.code) == (400, "SecurityRuleConflict")
    with pytest.raises(HttpResponseError) as priority:
        network.security_rules.begin_create_or_update(RG, NIC_NSG, "low", rule_body(50)).result()
    assert priority.value.error.code == "SecurityRuleInvalidPriority"
    with pytest.raises(HttpResponseError) as both:
        network.security_rules.begin_create_or_update(
            RG, NIC_NSG, "both", rule_body(1200, destinationPortRanges=["3389"])
        ).result()
    # Singular and plural forms are mutually exclusive (exactly one per side, Azure/azure-cli#8615).
    assert both.value.error.code == "SecurityRuleInvalidParameter"
    assert "must specify a non empty value for exactly one of: DestinationPortRanges" in str(both.value)
    with pytest.raises(HttpResponseError) as protocol:
        network.security_rules.begin_create_or_update(
            RG, NIC_NSG, "p", rule_body(1300, protocol="Foo")
        ).result()
    assert protocol.value.error.code == "SecurityRuleInvalidProtocol"


def test_security_rule_delete_is_an_lro(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("nsg-blocked")
    _, network = sdk_clients(emu)
    network.security_rules.begin_delete(RG, NIC_NSG, "deny-rdp").result()
    assert [r.name for r in network.security_rules.list(RG, NIC_NSG)] == ["allow-rdp-admin"]
    with pytest.raises(ResourceNotFoundError) as gone:
        network.security_rules.get(RG, NIC_NSG, "deny-rdp")
    assert gone.value.error.code == "NotFound"
    deletes = [r for r in emu.requests if r.method == "DELETE"]
    assert [r.status for r in deletes] == [202]
    network.security_rules.begin_delete(RG, NIC_NSG, "deny-rdp").result()  # absent: 204, no error
    assert [r.status for r in emu.requests if r.method == "DELETE"] == [202, 204]


def test_nic_get_list_list_all(emulator: Emulator) -> None:
    _, network = sdk_clients(emulator)
    nic = network.network_interfaces.get(RG, "vm-rdp01-nic")
    ipconfig = nic.ip_configurations[0]
    assert ipconfig.private_ip_address == "10.20.1.4"
    assert ipconfig.subnet.id.endswith("/virtualNetworks/vnet-rdp/subnets/default")
    assert ipconfig.public_ip_address.id.endswith("/publicIPAddresses/vm-rdp01-ip")
    assert nic.network_security_group.id.endswith(f"/networkSecurityGroups/{NIC_NSG}")
    assert nic.virtual_machine.id.endswith("/virtualMachines/vm-rdp01")
    assert [n.name for n in network.network_interfaces.list(RG)] == ["vm-rdp01-nic"]
    assert [n.name for n in network.network_interfaces.list_all()] == ["vm-rdp01-nic"]


def test_vnet_subnet_and_public_ip(emulator: Emulator) -> None:
    _, network = sdk_clients(emulator)
    vnet = network.virtual_networks.get(RG, "vnet-rdp")
    assert vnet.address_space.address_prefixes == ["10.20.0.0/16"]
    subnet = network.subnets.get(RG, "vnet-rdp", "default")
    assert subnet.network_security_group.id.endswith("/nsg-subnet-default")
    assert [c.id.rsplit("/", 1)[1] for c in subnet.ip_configurations] == ["ipconfig1"]
    assert [s.name for s in network.subnets.list(RG, "vnet-rdp")] == ["default"]
    assert [v.name for v in network.virtual_networks.list(RG)] == ["vnet-rdp"]
    assert [v.name for v in network.virtual_networks.list_all()] == ["vnet-rdp"]
    pip = network.public_ip_addresses.get(RG, "vm-rdp01-ip")
    assert (pip.ip_address, pip.public_ip_allocation_method) == ("198.51.100.10", "Static")
    assert pip.ip_configuration.id.endswith("/networkInterfaces/vm-rdp01-nic/ipConfigurations/ipconfig1")
    assert pip.dns_settings.fqdn == "vm-rdp01.westeurope.cloudapp.azure.com"
    assert [p.name for p in network.public_ip_addresses.list(RG)] == ["vm-rdp01-ip"]
    assert [p.name for p in network.public_ip_addresses.list_all()] == ["vm-rdp01-ip"]


def test_network_not_found_paths(emulator: Emulator) -> None:
    _, network = sdk_clients(emulator)
    with pytest.raises(ResourceNotFoundError) as nsg:
        network.network_security_groups.get(RG, "nope")
    assert nsg.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as subnet:
        network.subnets.get(RG, "vnet-rdp", "nope")
    assert subnet.value.error.code == "NotFound"
    with pytest.raises(ResourceNotFoundError) as group:
        network.public_ip_addresses.get("rg-missing", "x")
    assert group.value.error.code == "ResourceGroupNotFound"


def test_effective_nsgs_report_nic_and_subnet_groups(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("nsg-blocked")
    _, network = sdk_clients(emu)
    result = network.network_interfaces.begin_list_effective_network_security_groups(
        RG, "vm-rdp01-nic"
    ).result()
    groups = result.as_dict()["value"]
    assert [list(g["association"]) for g in groups] == [["networkInterface"], ["subnet"]]
    nic_rules = {r["name"]: r for r in groups[0]["effectiveSecurityRules"]}
    deny = nic_rules["securityRules/deny-rdp"]
    assert (deny["protocol"], deny["destinationPortRange"], deny["sourceAddressPrefix"]) == (
        "Tcp",
        "3389-3389",
        "0.0.0.0/0",
    )
    deny_all = nic_rules["defaultSecurityRules/DenyAllInBound"]
    assert (deny_all["protocol"], deny_all["sourcePortRange"]) == ("All", "0-65535")
    vnet_rule = nic_rules["defaultSecurityRules/AllowVnetInBound"]
    assert vnet_rule["sourceAddressPrefix"] == "VirtualNetwork"
    assert vnet_rule["expandedSourceAddressPrefix"] == ["10.20.0.0/16", "168.63.129.16/32"]
    internet = nic_rules["defaultSecurityRules/AllowInternetOutBound"]["expandedDestinationAddressPrefix"]
    assert "10.0.0.0/8" not in internet and "192.168.0.0/16" not in internet and "1.0.0.0/8" in internet
    assert [r.status for r in emu.requests if r.method == "POST"] == [202]


def test_effective_nsgs_follow_rule_changes(emulator: Emulator) -> None:
    _, network = sdk_clients(emulator)
    network.security_rules.begin_create_or_update(
        RG, "nsg-subnet-default", "deny-all-rdp", rule_body(100, access="Deny", sourceAddressPrefix="*")
    ).result()
    result = network.network_interfaces.begin_list_effective_network_security_groups(
        RG, "vm-rdp01-nic"
    ).result()
    subnet_rules = [r.name for r in result.value[1].effective_security_rules]
    assert subnet_rules[:2] == ["securityRules/allow-rdp-admin", "securityRules/deny-all-rdp"]


def test_effective_nsgs_need_a_running_vm(make_emulator: Callable[..., Emulator]) -> None:
    _, network = sdk_clients(make_emulator("deallocated"))
    with pytest.raises(HttpResponseError) as caught:
        network.network_interfaces.begin_list_effective_network_security_groups(RG, "vm-rdp01-nic").result()
    assert caught.value.status_code == 400


def test_network_lists_page_with_absolute_next_links(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator("fleet:120:3", page_size=25)
    _, network = sdk_clients(emu)
    nics = list(network.network_interfaces.list_all())
    assert len(nics) == 120
    nsgs = list(network.network_security_groups.list_all())
    assert len(nsgs) == 3 * 5
    vnets = list(network.virtual_networks.list_all())
    assert len(vnets) == 3 and all(len(v.subnets) == 2 for v in vnets)
    pips = list(network.public_ip_addresses.list_all())
    assert 0 < len(pips) < 120
    nic_pages = [r for r in emu.requests if r.path.endswith("/networkInterfaces")]
    assert len(nic_pages) == 5
    assert all("api-version=2026-03-01" in r.query for r in nic_pages)
