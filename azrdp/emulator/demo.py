"""The `azrdp demo` fleet: one resource group in which every VM fails RDP for a different reason.

Built from the same factories as the other scenarios, with the guest states of the built-in guest
scenarios, so the demo shows exactly what `check`, `diagnose` and `repair` do on those machines.
The engineer's address is DEMO_SOURCE_IP (a documentation address, RFC 5737); the NSGs admit
RDP from the admin range 203.0.113.0/24 around it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from azrdp.emulator import builders, path_builders
from azrdp.emulator.guest_scenarios import GUEST_SCENARIOS
from azrdp.emulator.scenario import Scenario

SUBSCRIPTION = "6f1d2c3b-4a59-4e68-9d7c-0b1a2c3d4e5f"
LOCATION = "westeurope"
GROUP = "rg-demo"
ADMIN_RANGE = "203.0.113.0/24"
DEMO_SOURCE_IP = "203.0.113.7"


@dataclass(frozen=True)
class DemoVm:
    name: str
    failure: str  # what is wrong, in one line
    guest_scenarios: tuple[str, ...] = ()  # built-in guest scenarios merged into the VM's guest
    power_state: str = "running"
    agent: str | None = None
    nic_deny: bool = False  # a NIC NSG rule denies RDP from anywhere
    extra_guest: dict[str, Any] = field(default_factory=dict)
    nat_port: int | None = None  # no public IP: the demo load balancer's NAT rule, this frontend port
    boot_screen: str | None = None  # stuck at this boot screen for hours (azrdp.emulator.platform)


DEMO_VMS: tuple[DemoVm, ...] = (
    DemoVm("web01", "nothing: the healthy reference"),
    DemoVm("web02", "a NIC NSG rule denies RDP from anywhere", nic_deny=True),
    DemoVm("web03", "the VM is deallocated", power_state="deallocated"),
    DemoVm(
        "app01",
        "0x904: the RDP certificate expired and MachineKeys permissions block its renewal",
        ("rdp-cert-expired", "machinekeys-acl-corrupt"),
    ),
    DemoVm("app02", "TermService is stopped", ("termservice-not-running",)),
    DemoVm("app03", "Remote Desktop is turned off in the registry", ("rdp-disabled",)),
    DemoVm("app04", "the Remote Desktop firewall rule is disabled", ("firewall-rule-disabled",)),
    DemoVm("app05", "TLS 1.2 is disabled for servers", ("tls12-server-disabled",)),
    DemoVm(
        "jump01",
        "the guest agent is not ready: RDP may work, but nothing can run inside the VM",
        agent="notReady",
    ),
    DemoVm(
        "jump02",
        "running for hours but stuck at 'Getting Windows ready': Windows never finished booting",
        boot_screen="getting-windows-ready",
    ),
    DemoVm(
        "web04",
        "no public IP of its own: RDP goes through a load balancer NAT rule (198.51.100.40:50001 -> 3389)",
        nat_port=50001,
    ),
)
LB_ADDRESS = "198.51.100.40"
DEMO_DESCRIPTION = (
    f"the `azrdp demo` fleet: {len(DEMO_VMS)} Windows VMs in {GROUP}, each failing RDP for a different "
    "reason (one healthy reference)"
)


def _stuck_instance_view(name: str) -> dict[str, Any]:
    """A full instance view: running since long ago, the agent never Ready since."""
    return {
        "computerName": name,
        "hyperVGeneration": "V2",
        "vmAgent": {
            "vmAgentVersion": "Unknown",
            "statuses": [
                {
                    "code": "ProvisioningState/Unavailable",
                    "level": "Warning",
                    "displayStatus": "Not Ready",
                    "message": "VM status blob is found but not yet populated.",
                    "time": "2025-06-02T06:41:07+00:00",
                }
            ],
            "extensionHandlers": [],
        },
        "disks": [],
        "statuses": [
            {
                "code": "ProvisioningState/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
                "time": "2025-06-02T06:12:44.3829811+00:00",
            },
            {"code": "PowerState/running", "level": "Info", "displayStatus": "VM running"},
        ],
    }


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key] = [*into[key], *copy.deepcopy(value)]
        else:
            into[key] = copy.deepcopy(value)


def demo_guest(vm: DemoVm) -> dict[str, Any]:
    by_name = {s.name: s for s in GUEST_SCENARIOS}
    guest: dict[str, Any] = {}
    for name in vm.guest_scenarios:
        _merge(guest, by_name[name].guest)
    _merge(guest, vm.extra_guest)
    if len({c.get("thumbprint") for c in guest.get("certificates", [])}) > 1:
        # Two broken-certificate stories describe one certificate: keep the first, with both faults.
        first, *rest = guest["certificates"]
        for cert in rest:
            first.update({k: v for k, v in cert.items() if k != "thumbprint"})
        guest["certificates"] = [first]
    return guest


def demo_scenario() -> Scenario:
    sub, rg, loc = SUBSCRIPTION, GROUP, LOCATION
    subnet_nsg_id = builders.nsg_id(sub, rg, "nsg-subnet-demo")
    subnet_nsg = builders.nsg(
        sub,
        rg,
        "nsg-subnet-demo",
        loc,
        [builders.security_rule(subnet_nsg_id, "allow-rdp-admins", priority=300, source=ADMIN_RANGE)],
    )
    vnet = builders.vnet(
        sub, rg, "vnet-demo", loc, "10.40.0.0/16", [("servers", "10.40.1.0/24", subnet_nsg_id)]
    )
    subnet_id = vnet["properties"]["subnets"][0]["id"]
    resources: list[dict[str, Any]] = [subnet_nsg, vnet]
    lb_pip = builders.public_ip(sub, rg, "lb-demo-ip", loc, LB_ADDRESS)
    lb = path_builders.load_balancer(
        sub,
        rg,
        "lb-demo",
        loc,
        public_ip_id=lb_pip["id"],
        nat_rules=[(f"rdp-{v.name}", v.nat_port, 3389) for v in DEMO_VMS if v.nat_port],
    )
    resources += [lb_pip, lb]
    for index, spec in enumerate(DEMO_VMS):
        nic_nsg_id = builders.nsg_id(sub, rg, f"{spec.name}-nsg")
        rules = [builders.security_rule(nic_nsg_id, "allow-rdp-admins", priority=1000, source=ADMIN_RANGE)]
        if spec.nic_deny:
            rules.append(builders.security_rule(nic_nsg_id, "deny-rdp-all", priority=200, access="Deny"))
        nic_nsg = builders.nsg(sub, rg, f"{spec.name}-nsg", loc, rules)
        # Standard SKU public IPs are static: the address survives deallocation.
        pip = (
            None
            if spec.nat_port
            else builders.public_ip(sub, rg, f"{spec.name}-ip", loc, f"198.51.100.{20 + index}")
        )
        nic = builders.nic(
            sub,
            rg,
            f"{spec.name}-nic",
            loc,
            subnet_id=subnet_id,
            private_ip=f"10.40.1.{10 + index}",
            public_ip_id=pip["id"] if pip else None,
            nsg_id=nic_nsg["id"],
            mac=f"00-0D-3A-40-01-{10 + index:02X}",
        )
        vm = builders.vm(
            sub,
            rg,
            spec.name,
            loc,
            nic_ids=[nic["id"]],
            power_state=spec.power_state,
            agent=spec.agent,
            tags={"demo": "azrdp"},
        )
        vm["guest"] = demo_guest(spec)
        if spec.nat_port:
            path_builders.attach_to_lb(nic, nat_rules=[path_builders.nat_rule_id(lb, f"rdp-{spec.name}")])
        if spec.boot_screen:
            vm["instanceView"] = _stuck_instance_view(spec.name)
            vm["platform"] = {"bootDiagnostics": {"screen": spec.boot_screen}}
        resources.extend([r for r in (nic_nsg, pip, nic, vm) if r is not None])
    return Scenario(
        name="demo",
        description=DEMO_DESCRIPTION,
        subscription_id=sub,
        location=loc,
        resources=resources,
        resource_groups=[{"name": rg, "location": loc}],
        owned=True,
    )
