"""Control-plane facts about a VM, as gathered by `azrdp.azure.inventory`.

Plain frozen dataclasses with no SDK types in them, so checks and the NSG evaluator stay pure and
tests can build facts by hand. Resource IDs are kept as Azure returned them; compare them with
`same_id`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def same_id(a: str | None, b: str | None) -> bool:
    """ARM IDs compare case-insensitively (casing differs between clients and API versions)."""
    return a is not None and b is not None and a.lower() == b.lower()


def name_of(resource_id: str | None) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1] if resource_id else ""


def group_of(resource_id: str | None) -> str:
    """The resource group segment of an ARM ID ('' when there is none)."""
    parts = (resource_id or "").split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[i + 1]
    return ""


@dataclass(frozen=True)
class NsgRule:
    """One security rule, with singular and plural forms merged into tuples.

    Ports are kept as Azure spells them ("*", "3389", "3000-4000"); prefixes as CIDR, single
    address, "*" or a service tag; application security groups as resource IDs.
    """

    name: str
    priority: int
    access: str  # "Allow" | "Deny"
    direction: str = "Inbound"  # "Inbound" | "Outbound"
    protocol: str = "*"  # "Tcp" | "Udp" | "Icmp" | "Esp" | "Ah" | "*"
    source_prefixes: tuple[str, ...] = ("*",)
    source_ports: tuple[str, ...] = ("*",)
    destination_prefixes: tuple[str, ...] = ("*",)
    destination_ports: tuple[str, ...] = ("*",)
    source_asgs: tuple[str, ...] = ()
    destination_asgs: tuple[str, ...] = ()
    default: bool = False
    description: str = ""

    @property
    def qualified_name(self) -> str:
        """The name as Network Watcher reports it: securityRules/x or defaultSecurityRules/x."""
        return f"{'defaultSecurityRules' if self.default else 'securityRules'}/{self.name}"


@dataclass(frozen=True)
class Nsg:
    id: str
    name: str
    rules: tuple[NsgRule, ...] = ()
    location: str = ""

    @property
    def resource_group(self) -> str:
        return group_of(self.id)


@dataclass(frozen=True)
class PublicIp:
    id: str
    name: str
    address: str | None = None  # absent while a Dynamic address is unassigned
    allocation: str = ""
    fqdn: str | None = None
    sku: str = ""


@dataclass(frozen=True)
class Subnet:
    id: str
    name: str
    address_prefixes: tuple[str, ...] = ()
    nsg_id: str | None = None


@dataclass(frozen=True)
class Vnet:
    id: str
    name: str
    address_space: tuple[str, ...] = ()
    subnets: tuple[Subnet, ...] = ()

    @property
    def has_bastion_subnet(self) -> bool:
        return any(s.name.lower() == "azurebastionsubnet" for s in self.subnets)

    def subnet(self, subnet_id: str | None) -> Subnet | None:
        return next((s for s in self.subnets if same_id(s.id, subnet_id)), None)


@dataclass(frozen=True)
class NicFacts:
    """A NIC of the VM with what its primary IP configuration points at, resolved."""

    id: str
    name: str
    primary: bool = True
    private_ip: str | None = None
    private_ips: tuple[str, ...] = ()
    accelerated_networking: bool = False
    ip_forwarding: bool = False
    asgs: tuple[str, ...] = ()
    subnet_id: str | None = None
    public_ip_id: str | None = None
    nsg_id: str | None = None
    # Resolved references (None when absent, or when they could not be read).
    public_ip: PublicIp | None = None
    nsg: Nsg | None = None
    subnet: Subnet | None = None
    vnet: Vnet | None = None
    subnet_nsg: Nsg | None = None
    # References that exist but could not be read (e.g. 403 on another resource group): id -> reason.
    unreadable: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class VmFacts:
    id: str
    name: str
    resource_group: str
    subscription_id: str = ""
    location: str = ""
    vm_size: str = ""
    os_type: str | None = None  # "Windows" | "Linux" | None when unknown
    os_name: str | None = None
    provisioning_state: str | None = None
    provisioning_code: str | None = None  # e.g. "ProvisioningState/failed/OSProvisioningTimedOut"
    power_state: str | None = None  # "running", "deallocated", ... (the PowerState/ suffix)
    agent_status: str | None = None  # "Ready", "Not Ready", None when never reported
    agent_version: str | None = None
    agent_message: str | None = None
    boot_diagnostics: bool | None = None
    tags: tuple[tuple[str, str], ...] = ()
    nics: tuple[NicFacts, ...] = ()
    # Statuses at Warning/Error level in the instance view (code, message), for evidence.
    status_problems: tuple[tuple[str, str], ...] = ()
    extensions: tuple[str, ...] = field(default=())

    @property
    def primary_nic(self) -> NicFacts | None:
        return next((n for n in self.nics if n.primary), self.nics[0] if self.nics else None)

    @property
    def tag_map(self) -> dict[str, str]:
        return dict(self.tags)
