"""Factories for ARM-shaped resources, used by the fleet generator and the built-in scenarios.

Each returns the dict exactly as the REST API would return it (plus the emulator-side `instanceView`
shortcut and `guest` on VMs), so generated scenarios and hand-written JSON load the same way.
"""

from __future__ import annotations

import hashlib
from typing import Any

Resource = dict[str, Any]

DEFAULT_RULES: tuple[tuple[str, int, str, str, str, str, str], ...] = (
    # name, priority, direction, source, destination, access, description
    (
        "AllowVnetInBound",
        65000,
        "Inbound",
        "VirtualNetwork",
        "VirtualNetwork",
        "Allow",
        "Allow inbound traffic from all VMs in VNET",
    ),
    (
        "AllowAzureLoadBalancerInBound",
        65001,
        "Inbound",
        "AzureLoadBalancer",
        "*",
        "Allow",
        "Allow inbound traffic from azure load balancer",
    ),
    ("DenyAllInBound", 65500, "Inbound", "*", "*", "Deny", "Deny all inbound traffic"),
    (
        "AllowVnetOutBound",
        65000,
        "Outbound",
        "VirtualNetwork",
        "VirtualNetwork",
        "Allow",
        "Allow outbound traffic from all VMs to all VMs in VNET",
    ),
    (
        "AllowInternetOutBound",
        65001,
        "Outbound",
        "*",
        "Internet",
        "Allow",
        "Allow outbound traffic from all VMs to Internet",
    ),
    ("DenyAllOutBound", 65500, "Outbound", "*", "*", "Deny", "Deny all outbound traffic"),
)


def rg_prefix(subscription: str, resource_group: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers"


def stable_guid(*parts: object) -> str:
    """A GUID-shaped digest of its inputs, so generated scenarios are identical run to run.

    Formatted by hand: uuid.UUID construction dominated the generation of 10,000-VM fleets.
    """
    digest = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=16).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"


def default_security_rules(nsg_id: str) -> list[Resource]:
    return [
        {
            "name": name,
            "id": f"{nsg_id}/defaultSecurityRules/{name}",
            "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules",
            "properties": {
                "provisioningState": "Succeeded",
                "description": description,
                "protocol": "*",
                "sourcePortRange": "*",
                "destinationPortRange": "*",
                "sourceAddressPrefix": source,
                "destinationAddressPrefix": destination,
                "access": access,
                "priority": priority,
                "direction": direction,
            },
        }
        for name, priority, direction, source, destination, access, description in DEFAULT_RULES
    ]


def security_rule(
    nsg_id: str,
    name: str,
    *,
    priority: int,
    access: str = "Allow",
    direction: str = "Inbound",
    protocol: str = "Tcp",
    source: str = "*",
    destination: str = "*",
    destination_port: str = "3389",
    source_port: str = "*",
    description: str | None = None,
) -> Resource:
    props: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "protocol": protocol,
        "sourcePortRange": source_port,
        "destinationPortRange": destination_port,
        "sourceAddressPrefix": source,
        "destinationAddressPrefix": destination,
        "access": access,
        "priority": priority,
        "direction": direction,
    }
    if description:
        props["description"] = description
    return {
        "name": name,
        "id": f"{nsg_id}/securityRules/{name}",
        "type": "Microsoft.Network/networkSecurityGroups/securityRules",
        "etag": f'W/"{stable_guid(nsg_id, name)}"',
        "properties": props,
    }


def nsg(
    subscription: str, resource_group: str, name: str, location: str, rules: list[Resource] | None = None
) -> Resource:
    nsg_id = f"{rg_prefix(subscription, resource_group)}/Microsoft.Network/networkSecurityGroups/{name}"
    return {
        "name": name,
        "id": nsg_id,
        "type": "Microsoft.Network/networkSecurityGroups",
        "location": location,
        "tags": {},
        "etag": f'W/"{stable_guid(nsg_id)}"',
        "properties": {
            "provisioningState": "Succeeded",
            "resourceGuid": stable_guid(nsg_id, "guid"),
            "securityRules": rules or [],
            "defaultSecurityRules": default_security_rules(nsg_id),
        },
    }


def nsg_id(subscription: str, resource_group: str, name: str) -> str:
    return f"{rg_prefix(subscription, resource_group)}/Microsoft.Network/networkSecurityGroups/{name}"


def vnet(
    subscription: str,
    resource_group: str,
    name: str,
    location: str,
    address_prefix: str,
    subnets: list[tuple[str, str, str | None]],
) -> Resource:
    """`subnets`: (name, address prefix, NSG id or None)."""
    vnet_id = f"{rg_prefix(subscription, resource_group)}/Microsoft.Network/virtualNetworks/{name}"
    subnet_list = []
    for subnet_name, prefix, subnet_nsg in subnets:
        props: dict[str, Any] = {"provisioningState": "Succeeded", "addressPrefix": prefix}
        if subnet_nsg:
            props["networkSecurityGroup"] = {"id": subnet_nsg}
        subnet_list.append(
            {
                "name": subnet_name,
                "id": f"{vnet_id}/subnets/{subnet_name}",
                "type": "Microsoft.Network/virtualNetworks/subnets",
                "etag": f'W/"{stable_guid(vnet_id, subnet_name)}"',
                "properties": props,
            }
        )
    return {
        "name": name,
        "id": vnet_id,
        "type": "Microsoft.Network/virtualNetworks",
        "location": location,
        "tags": {},
        "etag": f'W/"{stable_guid(vnet_id)}"',
        "properties": {
            "provisioningState": "Succeeded",
            "resourceGuid": stable_guid(vnet_id, "guid"),
            "addressSpace": {"addressPrefixes": [address_prefix]},
            "subnets": subnet_list,
            "virtualNetworkPeerings": [],
            "enableDdosProtection": False,
        },
    }


def public_ip(
    subscription: str,
    resource_group: str,
    name: str,
    location: str,
    address: str | None,
    *,
    fqdn: str | None = None,
) -> Resource:
    pip_id = f"{rg_prefix(subscription, resource_group)}/Microsoft.Network/publicIPAddresses/{name}"
    props: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "resourceGuid": stable_guid(pip_id, "guid"),
        "publicIPAddressVersion": "IPv4",
        "publicIPAllocationMethod": "Static" if address else "Dynamic",
        "idleTimeoutInMinutes": 4,
        "ipTags": [],
    }
    if address:
        props["ipAddress"] = address
    if fqdn:
        label = fqdn.split(".", 1)[0]
        props["dnsSettings"] = {"domainNameLabel": label, "fqdn": fqdn}
    return {
        "name": name,
        "id": pip_id,
        "type": "Microsoft.Network/publicIPAddresses",
        "location": location,
        "tags": {},
        "etag": f'W/"{stable_guid(pip_id)}"',
        "sku": {"name": "Standard", "tier": "Regional"},
        "properties": props,
    }


def nic(
    subscription: str,
    resource_group: str,
    name: str,
    location: str,
    *,
    subnet_id: str,
    private_ip: str,
    public_ip_id: str | None = None,
    nsg_id: str | None = None,
    mac: str = "00-0D-3A-00-00-01",
) -> Resource:
    nic_id = f"{rg_prefix(subscription, resource_group)}/Microsoft.Network/networkInterfaces/{name}"
    ip_props: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "privateIPAddress": private_ip,
        "privateIPAllocationMethod": "Dynamic",
        "subnet": {"id": subnet_id},
        "primary": True,
        "privateIPAddressVersion": "IPv4",
    }
    if public_ip_id:
        ip_props["publicIPAddress"] = {"id": public_ip_id}
    props: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "resourceGuid": stable_guid(nic_id, "guid"),
        "ipConfigurations": [
            {
                "name": "ipconfig1",
                "id": f"{nic_id}/ipConfigurations/ipconfig1",
                "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                "etag": f'W/"{stable_guid(nic_id, "ipconfig1")}"',
                "properties": ip_props,
            }
        ],
        "dnsSettings": {"dnsServers": [], "appliedDnsServers": []},
        "macAddress": mac,
        "enableAcceleratedNetworking": False,
        "enableIPForwarding": False,
        "primary": True,
        "nicType": "Standard",
    }
    if nsg_id:
        props["networkSecurityGroup"] = {"id": nsg_id}
    return {
        "name": name,
        "id": nic_id,
        "type": "Microsoft.Network/networkInterfaces",
        "location": location,
        "tags": {},
        "etag": f'W/"{stable_guid(nic_id)}"',
        "properties": props,
    }


def vm(
    subscription: str,
    resource_group: str,
    name: str,
    location: str,
    *,
    nic_ids: list[str],
    os: str = "Windows",
    size: str = "Standard_B2s",
    power_state: str = "running",
    agent: str | None = None,
    tags: dict[str, str] | None = None,
) -> Resource:
    vm_id = f"{rg_prefix(subscription, resource_group)}/Microsoft.Compute/virtualMachines/{name}"
    linux = os.lower() == "linux"
    os_disk = f"{name}_OsDisk_1_{stable_guid(vm_id, 'disk').replace('-', '')[:32]}"
    image = (
        {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}
        if linux
        else {
            "publisher": "MicrosoftWindowsServer",
            "offer": "WindowsServer",
            "sku": "2022-datacenter-azure-edition",
            "version": "latest",
        }
    )
    os_profile: dict[str, Any] = {
        "computerName": name[:15] if not linux else name,
        "adminUsername": "azureuser",
        "secrets": [],
        "allowExtensionOperations": True,
    }
    if linux:
        os_profile["linuxConfiguration"] = {"disablePasswordAuthentication": True, "provisionVMAgent": True}
    else:
        os_profile["windowsConfiguration"] = {
            "provisionVMAgent": True,
            "enableAutomaticUpdates": True,
            "patchSettings": {"patchMode": "AutomaticByOS", "assessmentMode": "ImageDefault"},
        }
    shortcut: dict[str, Any] = {"powerState": power_state}
    if agent is not None:
        shortcut["agent"] = agent
    return {
        "name": name,
        "id": vm_id,
        "type": "Microsoft.Compute/virtualMachines",
        "location": location,
        "tags": tags or {},
        "etag": '"1"',
        "properties": {
            "vmId": stable_guid(vm_id, "vmId"),
            "hardwareProfile": {"vmSize": size},
            "storageProfile": {
                "imageReference": image,
                "osDisk": {
                    "osType": "Linux" if linux else "Windows",
                    "name": os_disk,
                    "createOption": "FromImage",
                    "caching": "ReadWrite",
                    "managedDisk": {
                        "storageAccountType": "Premium_LRS",
                        "id": f"{rg_prefix(subscription, resource_group)}/Microsoft.Compute/disks/{os_disk}",
                    },
                    "deleteOption": "Delete",
                    "diskSizeGB": 30 if linux else 127,
                },
                "dataDisks": [],
            },
            "osProfile": os_profile,
            "networkProfile": {
                "networkInterfaces": [
                    {"id": nic_id, "properties": {"primary": index == 0}}
                    for index, nic_id in enumerate(nic_ids)
                ]
            },
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
            "provisioningState": "Succeeded",
            "timeCreated": "2025-01-15T09:30:00.0000000+00:00",
        },
        "instanceView": shortcut,
        "guest": {},
    }
