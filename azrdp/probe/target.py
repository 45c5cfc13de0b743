"""Where to probe: HOST[:PORT] parsing, and a VM's public or private IP through the control plane.

VM resolution goes through azrdp.azure (imported inside the function), so importing this module
never loads the Azure SDK.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azrdp.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from azrdp.facts import VmFacts

_HOST_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


@dataclass(frozen=True)
class ProbeTarget:
    host: str
    port: int
    # The VM the address came from, when resolved through Azure (name, resourceGroup, id, ipKind ...).
    vm: dict[str, Any] | None = None
    expected_names: tuple[str, ...] = field(default_factory=tuple)


def _port(text: str, source: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise UsageError(
            f"The port {text!r} in {source} is not valid.",
            "A port is a number from 1 to 65535.",
            "Use HOST:PORT, e.g. 10.0.0.4:3389, or --port.",
        )
    return int(text)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_HOST_LABEL.match(label) for label in name.split("."))


def parse_host_port(text: str) -> tuple[str, int | None]:
    """'host', 'host:port', '[v6]:port' or a bare IPv6 address -> (host, port or None)."""
    value = text.strip()
    host, port = value, None
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not value[end + 1 :].startswith(":")):
            raise UsageError(f"The target {text!r} is not valid.", fix="Write IPv6 as [2001:db8::4]:3389.")
        host = value[1:end]
        rest = value[end + 2 :]
        if value[end + 1 :]:
            port = _port(rest, repr(text))
    elif value.count(":") == 1:
        host, port_text = value.split(":")
        port = _port(port_text, repr(text))
    if not host or not _valid_host(host):
        raise UsageError(
            f"The target {text!r} is not a host name or IP address.",
            fix="Pass HOST[:PORT], or a VM name with -g RG, or --ids with the VM's resource ID.",
        )
    return host, port


def host_target(text: str, port_option: int | None, default_port: int) -> ProbeTarget:
    host, port = parse_host_port(text)
    if port is not None and port_option is not None and port != port_option:
        raise UsageError(
            f"The target {text!r} names port {port} but --port says {port_option}.",
            fix="Give the port once.",
        )
    return ProbeTarget(host=host, port=port or port_option or default_port)


def resolve_vm(
    *,
    name: str | None,
    resource_group: str | None,
    ids: list[str] | None,
    subscription: str | None,
    cloud: str | None,
    private: bool,
    port: int | None,
) -> ProbeTarget:
    """Look the VM up in Azure and return where to knock: its NIC's public IP, else a public load
    balancer's NAT frontend for the RDP port, else (with `private`, or only then) its private IP.

    Reads the VM, its NICs, their public IPs and the load balancers they reference; changes nothing.
    """
    from azrdp.azure.auth import resolve_context
    from azrdp.azure.clients import Clients, translate_errors
    from azrdp.azure.inventory import complete_vm_facts
    from azrdp.targets import VmRef, parse_vm_id, split_ids, validate_group_name, validate_vm_name

    id_values = split_ids(ids)
    if len(id_values) > 1:
        raise UsageError(
            f"azrdp probe takes one VM, but {len(id_values)} IDs were given.",
            fix="Probe one VM per run, e.g. in a loop over `az vm list --query '[].id' -o tsv`.",
        )
    if id_values:
        ref = parse_vm_id(id_values[0])
    elif name and resource_group:
        ref = VmRef(validate_group_name(resource_group), validate_vm_name(name))
    else:
        raise UsageError(
            "A VM needs its resource group.", fix="Pass VM -g RG, or --ids with the VM's resource ID."
        )

    ctx = resolve_context(subscription, cloud, id_values)
    if ref.subscription_id and ref.subscription_id != ctx.subscription_id:
        ctx = ctx.for_subscription(ref.subscription_id)
    clients = Clients(ctx)
    what = f"VM '{ref.name}' in resource group '{ref.resource_group}'"
    try:
        with translate_errors(what):
            vm_json = clients.compute.virtual_machines.get(
                ref.resource_group, ref.name, expand="instanceView"
            ).as_dict()
        facts = complete_vm_facts(clients, vm_json)
        # NAT rules to the RDP port 3389; an explicit --port is where to knock, not the backend port.
        nat = _nat_endpoints(clients, facts, 3389) if not private else ()
    finally:
        clients.close()
    return vm_target(facts, vm_json, private=private, port=port, nat=nat)


def _nat_endpoints(clients: Any, facts: VmFacts, backend_port: int) -> tuple[Any, ...]:
    """Public NAT frontends that lead to the primary NIC's RDP port (one GET per load balancer)."""
    from azrdp.azure.paths import PathReader
    from azrdp.engine.check import endpoints_of
    from azrdp.facts import VIA_LB_NAT
    from azrdp.nsg import FlowQuery

    nic = facts.primary_nic
    if nic is None or not (nic.lb_nat_rule_ids or nic.lb_pool_ids):
        return ()
    reader = PathReader(clients)
    reader.fetch_missing([facts], admin=False)
    paths = reader.assemble(facts, admin=False)
    return tuple(
        e for e in endpoints_of(nic, paths, FlowQuery(backend_port)) if e.via == VIA_LB_NAT and e.public
    )


def _computer_name(vm_json: dict[str, Any]) -> str | None:
    """osProfile.computerName, else the instance view's computerName (REST JSON shape)."""
    props = vm_json.get("properties") if isinstance(vm_json.get("properties"), dict) else {}
    for holder in ((props or {}).get("osProfile"), (props or {}).get("instanceView")):
        if isinstance(holder, dict) and holder.get("computerName"):
            return str(holder["computerName"])
    return None


def vm_target(
    facts: VmFacts,
    vm_json: dict[str, Any],
    *,
    private: bool,
    port: int | None,
    nat: tuple[Any, ...] = (),
) -> ProbeTarget:
    """Pick where to knock, in this order: the NIC's public IP (primary NIC first), a public load
    balancer NAT frontend (`nat`, its frontend port), the private IP with `private`. An explicit
    `port` wins over a NAT rule's frontend port."""
    rdp_port = port or 3389
    what = f"VM '{facts.name}' in resource group '{facts.resource_group}'"
    nics = sorted(facts.nics, key=lambda nic: not nic.primary)
    unreadable = [why for nic in nics for _, why in nic.unreadable]
    computer_name = _computer_name(vm_json)
    vm_doc: dict[str, Any] = {
        "id": facts.id,
        "name": facts.name,
        "resourceGroup": facts.resource_group,
        "subscriptionId": facts.subscription_id,
        "powerState": facts.power_state,
        "computerName": computer_name,
        "ipKind": "private" if private else "public",
    }
    expected = (str(computer_name),) if computer_name else ()
    if private:
        nic = next((n for n in nics if n.private_ip), None)
        if nic is None or not nic.private_ip:
            raise NotFoundError(
                f"{what} has no readable private IP.",
                "; ".join(unreadable),
                fix="Check the VM's NICs with `az vm nic list`, or probe an address directly.",
            )
        vm_doc.update({"ipAddress": nic.private_ip, "nic": nic.name, "via": "private"})
        return ProbeTarget(host=nic.private_ip, port=rdp_port, vm=vm_doc, expected_names=expected)
    with_ip = [n for n in nics if n.public_ip is not None]
    chosen = next((n.public_ip for n in with_ip if n.public_ip and n.public_ip.address), None)
    if chosen is None:
        knock = next((e for e in nat if e.address and e.port is not None), None)
        if knock is not None:
            vm_doc.update(
                {
                    "ipKind": "public",
                    "via": "load-balancer-nat",
                    "ipAddress": knock.address,
                    "natRule": knock.name,
                    "backendPort": knock.backend_port,
                    "fqdn": knock.fqdn,
                }
            )
            return ProbeTarget(
                host=str(knock.address), port=port or int(knock.port), vm=vm_doc, expected_names=expected
            )
        if nat:
            raise NotFoundError(
                f"{what} is reached through load balancer NAT ({nat[0].name}), but its frontend port "
                "for this VM is not known.",
                fix="Pass the frontend port with --port (`az network lb inbound-nat-rule show`).",
            )
    if chosen is None:
        pip = next((n.public_ip for n in with_ip if n.public_ip), None)
        if pip is not None:
            raise NotFoundError(
                f"The public IP '{pip.name}' of {what} has no address.",
                f"Its allocation is {pip.allocation or 'unknown'}; a Dynamic IP is released while the VM is "
                f"{facts.power_state or 'deallocated'}.",
                fix="Start the VM (or make the IP Static), then probe again; or use --private from the VNet.",
            )
        raise NotFoundError(
            f"{what} has no public IP.",
            "; ".join(unreadable),
            fix="Probe its private IP from inside the VNet (--private), or connect through Azure Bastion.",
        )
    vm_doc.update(
        {
            "ipAddress": chosen.address,
            "publicIpName": chosen.name,
            "fqdn": chosen.fqdn,
            "via": "nic-public-ip",
        }
    )
    return ProbeTarget(host=str(chosen.address), port=rdp_port, vm=vm_doc, expected_names=expected)
