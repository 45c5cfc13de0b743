"""Engine pieces that need no emulator: import hygiene, effective-rule parsing and comparison, parsers."""

from __future__ import annotations

import json
import subprocess
import sys

from azrdp.azure.inventory import effective_nsgs_from_rest, nic_from_rest, nsg_from_rest, vm_from_rest
from azrdp.checks.control_plane import EffectiveComparison
from azrdp.engine.check import CheckOptions, assess, compare_effective
from azrdp.facts import NicFacts, PublicIp, Subnet, VmFacts, Vnet

P = "/subscriptions/s/resourceGroups/rg/providers"


def test_engine_imports_neither_ui_nor_azure() -> None:
    code = (
        "import sys, azrdp.engine.check, azrdp.targets, azrdp.nsg, azrdp.azure.inventory\n"
        "bad = [m for m in sys.modules\n"
        "       if m.split('.')[0] in ('typer', 'rich', 'click') or m.startswith('azure.')]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def effective_doc(nic_rule_access: str) -> dict[str, object]:
    def entry(layer: str, access: str) -> dict[str, object]:
        assoc = (
            {"subnet": {"id": f"{P}/Microsoft.Network/virtualNetworks/v/subnets/s"}}
            if layer == "subnet"
            else {"networkInterface": {"id": f"{P}/Microsoft.Network/networkInterfaces/nic"}}
        )
        return {
            "networkSecurityGroup": {"id": f"{P}/Microsoft.Network/networkSecurityGroups/{layer}-nsg"},
            "association": assoc,
            "effectiveSecurityRules": [
                {
                    "name": "securityRules/rdp",
                    "protocol": "Tcp",
                    "sourcePortRange": "0-65535",
                    "destinationPortRange": "3389-3389",
                    "sourceAddressPrefix": "Internet",
                    "expandedSourceAddressPrefix": ["203.0.113.0/24", "198.51.100.0/24"],
                    "destinationAddressPrefix": "0.0.0.0/0",
                    "access": access,
                    "priority": 100,
                    "direction": "Inbound",
                },
                {
                    "name": "defaultSecurityRules/DenyAllInBound",
                    "protocol": "All",
                    "sourcePortRange": "0-65535",
                    "destinationPortRange": "0-65535",
                    "sourceAddressPrefix": "0.0.0.0/0",
                    "destinationAddressPrefix": "0.0.0.0/0",
                    "access": "Deny",
                    "priority": 65500,
                    "direction": "Inbound",
                },
            ],
        }

    return {"value": [entry("subnet", "Allow"), entry("nic", nic_rule_access)]}


def nic() -> NicFacts:
    subnet = Subnet(f"{P}/Microsoft.Network/virtualNetworks/v/subnets/s", "s", ("10.0.0.0/24",))
    return NicFacts(
        id=f"{P}/Microsoft.Network/networkInterfaces/nic",
        name="nic",
        private_ip="10.0.0.4",
        subnet_id=subnet.id,
        public_ip_id=f"{P}/Microsoft.Network/publicIPAddresses/pip",
        public_ip=PublicIp(f"{P}/Microsoft.Network/publicIPAddresses/pip", "pip", "20.0.0.1", sku="Standard"),
        subnet=subnet,
        vnet=Vnet(f"{P}/Microsoft.Network/virtualNetworks/v", "v", ("10.0.0.0/16",), (subnet,)),
    )


def test_effective_rules_are_parsed_with_expanded_prefixes() -> None:
    layers = effective_nsgs_from_rest(effective_doc("Allow"))
    assert [(layer, nsg.name) for layer, nsg in layers] == [("subnet", "subnet-nsg"), ("nic", "nic-nsg")]
    rdp, deny = layers[0][1].rules
    assert rdp.source_prefixes == ("203.0.113.0/24", "198.51.100.0/24") and not rdp.default
    assert deny.default and deny.name == "DenyAllInBound" and deny.protocol == "All"


def test_effective_comparison_and_disagreement_finding() -> None:
    flow = CheckOptions(source_ip="203.0.113.7").flow
    allowed = compare_effective(nic(), flow, effective_nsgs_from_rest(effective_doc("Allow")))
    assert allowed.verdict == "allowed" and allowed.decided_by == ("subnet:rdp", "nic:rdp")
    denied = compare_effective(nic(), flow, effective_nsgs_from_rest(effective_doc("Deny")))
    assert denied.verdict == "denied"
    assert compare_effective(nic(), flow, "AuthorizationFailed").error == "AuthorizationFailed"

    # The NSG definitions (none here: Standard IP, no NSG -> denied) against Azure's "allowed".
    facts = VmFacts(
        id=f"{P}/Microsoft.Compute/virtualMachines/vm",
        name="vm",
        resource_group="rg",
        os_type="Windows",
        power_state="running",
        agent_status="Ready",
        nics=(nic(),),
    )
    result = assess(facts, CheckOptions(source_ip="203.0.113.7"), allowed)
    finding = next(f for f in result.findings if f.id == "effective-rules-disagree")
    assert finding.severity.value == "warning" and finding.source.value == "networkWatcher"
    same = assess(facts, CheckOptions(source_ip="203.0.113.7"), EffectiveComparison("denied"))
    assert "effective-rules-disagree" not in [f.id for f in same.findings]


def test_parsers_tolerate_missing_optional_fields() -> None:
    vm = vm_from_rest({"id": f"{P}/Microsoft.Compute/virtualMachines/vm", "name": "vm", "properties": {}})
    assert (vm.power_state, vm.agent_status, vm.os_type, vm.boot_diagnostics) == (None, None, None, None)
    vm = vm_from_rest(
        {
            "id": f"{P}/Microsoft.Compute/virtualMachines/vm",
            "name": "vm",
            "properties": {
                "storageProfile": {"osDisk": {"osType": "Windows"}},
                "provisioningState": "Failed",
                "instanceView": {
                    "statuses": [
                        {"code": "ProvisioningState/failed/OSProvisioningTimedOut", "level": "Error"},
                        {"code": "PowerState/running"},
                    ],
                    "vmAgent": {"vmAgentVersion": "Unknown", "statuses": [{"displayStatus": "Not Ready"}]},
                },
            },
        }
    )
    assert vm.provisioning_code == "ProvisioningState/failed/OSProvisioningTimedOut"
    assert (vm.power_state, vm.agent_status, vm.agent_version, vm.boot_diagnostics) == (
        "running",
        "Not Ready",
        "Unknown",
        False,
    )
    assert vm.status_problems == (("ProvisioningState/failed/OSProvisioningTimedOut", ""),)
    nic_facts = nic_from_rest({"id": "x", "name": "n", "properties": {"ipConfigurations": []}})
    assert nic_facts.private_ip is None and nic_facts.subnet_id is None
    plural = nsg_from_rest(
        {
            "id": "n",
            "name": "n",
            "properties": {
                "securityRules": [
                    {
                        "name": "r",
                        "properties": {
                            "priority": 100,
                            "access": "Allow",
                            "direction": "Inbound",
                            "protocol": "Tcp",
                            "sourceAddressPrefixes": ["1.2.3.4", "5.6.7.0/24"],
                            "destinationPortRanges": ["3389", "3390-3391"],
                            "destinationApplicationSecurityGroups": [{"id": "asg1"}],
                        },
                    }
                ]
            },
        }
    )
    (rule,) = plural.rules
    assert rule.source_prefixes == ("1.2.3.4", "5.6.7.0/24") and rule.destination_ports == (
        "3389",
        "3390-3391",
    )
    assert rule.destination_asgs == ("asg1",) and rule.destination_prefixes == ()
    assert json.dumps(rule.source_ports) == '["*"]'
