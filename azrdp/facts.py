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
    route_table_id: str | None = None


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
    # The primary IP configuration's id and its load balancer references (inbound NAT rules of a
    # load balancer v1-style, and backend pools that v2 NAT rules map ports over).
    ipconfig_id: str | None = None
    lb_nat_rule_ids: tuple[str, ...] = ()
    lb_pool_ids: tuple[str, ...] = ()
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
    # osProfile.windowsConfiguration.provisionVMAgent (None when the model does not say).
    agent_provisioned: bool | None = None
    # When the last operation (create, start, restart...) finished: the instance view's
    # ProvisioningState status time, ISO 8601.
    last_operation_time: str | None = None
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


# --------------------------------------------------------------------------------------------
# The rest of the way in: load balancer NAT, routes, admin rules, platform and boot state
# --------------------------------------------------------------------------------------------

VIA_PUBLIC_IP = "nic-public-ip"
VIA_LB_NAT = "load-balancer-nat"
VIA_PRIVATE = "private"


@dataclass(frozen=True)
class NatRule:
    """An inbound NAT rule that maps a load balancer frontend port to this NIC's backend port."""

    load_balancer_id: str
    load_balancer: str
    rule: str
    protocol: str  # "Tcp" | "Udp" | "All"
    frontend_port: int | None  # None: a v2 rule whose port for this NIC is not known
    backend_port: int
    frontend_name: str = ""
    frontend_public_ip_id: str | None = None
    frontend_public_ip: PublicIp | None = None
    frontend_private_ip: str | None = None  # an internal load balancer's frontend
    sku: str = ""  # "Basic" | "Standard" | "Gateway"
    floating_ip: bool = False
    port_range: tuple[int, int] | None = None  # a v2 rule's frontend range


@dataclass(frozen=True)
class Endpoint:
    """Where an RDP client can knock: an address and port, and which way that leads in."""

    address: str | None
    port: int | None  # None: a v2 NAT rule whose frontend port for this NIC is not known
    via: str  # VIA_PUBLIC_IP | VIA_LB_NAT | VIA_PRIVATE
    public: bool = True  # False for the private IP and an internal load balancer's frontend
    name: str = ""  # public IP name, or load balancer/rule
    fqdn: str | None = None
    backend_port: int | None = None
    sku: str = ""  # the public IP's or load balancer's SKU


@dataclass(frozen=True)
class Route:
    """One route of a route table (UDR) or of the effective route table."""

    name: str
    address_prefixes: tuple[str, ...]
    next_hop_type: str  # VirtualNetworkGateway | VnetLocal | Internet | VirtualAppliance | None | ...
    next_hop_ip: str | None = None
    source: str = "User"  # User | Default | VirtualNetworkGateway (BGP) ...
    state: str = "Active"  # effective routes: Active | Invalid


@dataclass(frozen=True)
class RouteTable:
    id: str
    name: str
    routes: tuple[Route, ...] = ()
    disable_bgp_route_propagation: bool = False


@dataclass(frozen=True)
class AdminRule:
    """An Azure Virtual Network Manager security admin rule in force on a VNet."""

    id: str
    name: str
    access: str  # Allow | Deny | AlwaysAllow
    priority: int
    direction: str = "Inbound"
    protocol: str = "Any"  # Tcp | Udp | Icmp | Esp | Ah | Any
    sources: tuple[str, ...] = ("*",)  # prefixes and service tags
    destinations: tuple[str, ...] = ("*",)
    source_ports: tuple[str, ...] = ("*",)
    destination_ports: tuple[str, ...] = ("*",)
    manager: str = ""  # the network manager's name
    configuration: str = ""
    collection: str = ""
    kind: str = "Custom"  # Custom | Default


@dataclass(frozen=True)
class PathFacts:
    """What lies on the way in besides the NSGs, for the VM's primary NIC.

    `None` in a field means "not read" (not asked, or not applicable); a failed read is listed
    in `unreadable` as (what, resource id, reason) and leaves its field None.
    """

    nat_rules: tuple[NatRule, ...] = ()
    route_table: RouteTable | None = None
    admin_rules: tuple[AdminRule, ...] | None = None
    effective_routes: tuple[Route, ...] | None = None
    unreadable: tuple[tuple[str, str, str], ...] = ()

    def unread(self, what: str) -> str | None:
        """Why `what` ("load balancer", "route table", "admin rules", "effective routes") failed."""
        return next((why for kind, _, why in self.unreadable if kind == what), None)


@dataclass(frozen=True)
class PlatformHealth:
    """The VM's current Resource Health availability status."""

    state: str  # Available | Unavailable | Degraded | Unknown
    title: str = ""
    summary: str = ""
    reason_type: str = ""
    context: str = ""
    category: str = ""
    detailed_status: str = ""
    occurred: str | None = None
    reported: str | None = None
    resolution_eta: str | None = None
    error: str | None = None  # why it could not be read

    @property
    def customer_initiated(self) -> bool:
        """Stopped or restarted by a user rather than by the platform."""
        text = f"{self.reason_type} {self.context} {self.category}".lower()
        return "customer" in text or "user initiated" in text or "userinitiated" in text


@dataclass(frozen=True)
class BootDiagnostics:
    """What boot diagnostics showed: where the screenshot was saved and the serial log's end."""

    screenshot_path: str | None = None
    screenshot_bytes: int = 0
    screenshot_format: str | None = None  # bmp | png | jpeg
    serial_tail: tuple[str, ...] = ()
    serial_bytes: int = 0
    serial_truncated: bool = False
    error: str | None = None  # why they could not be read (the whole reading failed)
