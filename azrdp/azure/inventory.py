"""Control-plane facts for one VM (parallel GETs) and for fleets (list calls only).

Single VM, at most 3 sequential rounds (7 requests for a one-NIC VM):
  1. the VM with its instance view;
  2. its NICs, in parallel;
  3. in parallel: each VNet, each public IP, the NSG list of each VNet's resource group (which
     holds the subnet's NSG and, usually, the NIC's) and any NIC NSG living elsewhere.
  A subnet NSG in yet another resource group costs one more GET (a fourth round, rare).

Fleet: VM models, NICs, NSGs, VNets and public IPs are listed, type by type in parallel, so the
request count grows with the number of pages, not of VMs. No documented list call returns a VM's
model and its run-time status together (`$expand=instanceView` on a list "can only be specified if
a valid $filter option is specified", and the only filter is a scale set's id; `statusOnly=true`
returns status without the model or tags), so the status comes separately and is joined by id:
  * `--all`: `list_all()` for the models and `list_all(statusOnly=true)` for the status, in parallel;
  * `-g GROUP`: `list(GROUP)` for the models, then the status: one instance-view GET per VM when the
    group has at most INSTANCE_VIEW_GETS_MAX VMs (one parallel round), else `list_all(statusOnly=true)`
    read page by page until every VM of the group is found.
Scoped to a resource group, references to resources in other groups are fetched with GETs afterwards.

Every read is raw JSON through the SDK's pipeline (`azrdp.azure.arm`: its retries, which honour
Retry-After, authentication, logging and azrdp's request budget), never a generated model: the
parsers are pure module-level functions over REST dicts, built once per resource. There is no
second retry loop here; azure.* is imported inside functions only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from azrdp.errors import AzrdpError, AzureError
from azrdp.facts import NicFacts, Nsg, NsgRule, PublicIp, Subnet, VmFacts, Vnet, group_of, name_of

if TYPE_CHECKING:
    from azrdp.azure.clients import Clients

Json = Mapping[str, Any]
T = TypeVar("T")
MAX_WORKERS = 8
# Up to this many VMs in a group, their instance views are read one by one (in parallel): fewer
# requests than paging through the status of the whole subscription.
INSTANCE_VIEW_GETS_MAX = 3


# --------------------------------------------------------------------------------------------
# Pure parsers: REST JSON -> facts
# --------------------------------------------------------------------------------------------


def _props(d: Json) -> Json:
    p = d.get("properties")
    return p if isinstance(p, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _tuple_str(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(str(v) for v in value if v not in (None, ""))


def rule_from_rest(d: Json, default: bool = False) -> NsgRule:
    p = _props(d) or d  # effective rules are flat
    src = _tuple_str(p.get("sourceAddressPrefixes")) or _tuple_str(p.get("sourceAddressPrefix"))
    dst = _tuple_str(p.get("destinationAddressPrefixes")) or _tuple_str(p.get("destinationAddressPrefix"))
    src_asgs = tuple(str(a.get("id", "")) for a in _list(p.get("sourceApplicationSecurityGroups")))
    dst_asgs = tuple(str(a.get("id", "")) for a in _list(p.get("destinationApplicationSecurityGroups")))
    return NsgRule(
        name=str(d.get("name", "")),
        priority=int(p.get("priority") or 0),
        access=str(p.get("access") or "Deny"),
        direction=str(p.get("direction") or "Inbound"),
        protocol=str(p.get("protocol") or "*"),
        source_prefixes=src if (src or src_asgs) else ("*",),
        source_ports=_tuple_str(p.get("sourcePortRanges")) or _tuple_str(p.get("sourcePortRange")) or ("*",),
        destination_prefixes=dst if (dst or dst_asgs) else ("*",),
        destination_ports=_tuple_str(p.get("destinationPortRanges"))
        or _tuple_str(p.get("destinationPortRange"))
        or ("*",),
        source_asgs=src_asgs,
        destination_asgs=dst_asgs,
        default=default,
        description=str(p.get("description") or ""),
    )


def nsg_from_rest(d: Json) -> Nsg:
    p = _props(d)
    rules = [rule_from_rest(r) for r in _list(p.get("securityRules"))]
    rules += [rule_from_rest(r, default=True) for r in _list(p.get("defaultSecurityRules"))]
    return Nsg(str(d.get("id", "")), str(d.get("name", "")), tuple(rules), str(d.get("location", "")))


def nsg_subnet_ids(d: Json) -> list[str]:
    return [str(s.get("id", "")) for s in _list(_props(d).get("subnets")) if isinstance(s, Mapping)]


def public_ip_from_rest(d: Json) -> PublicIp:
    p = _props(d)
    sku = d.get("sku") if isinstance(d.get("sku"), Mapping) else {}
    dns = p.get("dnsSettings") if isinstance(p.get("dnsSettings"), Mapping) else {}
    return PublicIp(
        id=str(d.get("id", "")),
        name=str(d.get("name", "")),
        address=p.get("ipAddress") or None,
        allocation=str(p.get("publicIPAllocationMethod") or ""),
        fqdn=(dns or {}).get("fqdn") or None,
        sku=str((sku or {}).get("name") or "Basic"),
    )


def vnet_from_rest(d: Json) -> Vnet:
    p = _props(d)
    space = p.get("addressSpace") if isinstance(p.get("addressSpace"), Mapping) else {}
    subnets = []
    for s in _list(p.get("subnets")):
        sp = _props(s)
        prefixes = _tuple_str(sp.get("addressPrefixes")) or _tuple_str(sp.get("addressPrefix"))
        nsg = sp.get("networkSecurityGroup") if isinstance(sp.get("networkSecurityGroup"), Mapping) else None
        rt = sp.get("routeTable") if isinstance(sp.get("routeTable"), Mapping) else None
        subnets.append(
            Subnet(
                str(s.get("id", "")),
                str(s.get("name", "")),
                prefixes,
                (nsg or {}).get("id"),
                (rt or {}).get("id"),
            )
        )
    return Vnet(
        str(d.get("id", "")),
        str(d.get("name", "")),
        _tuple_str((space or {}).get("addressPrefixes")),
        tuple(subnets),
    )


def vnet_id_of_subnet(subnet_id: str | None) -> str | None:
    if not subnet_id:
        return None
    head, sep, _ = subnet_id.rpartition("/subnets/")
    if not sep:
        lowered = subnet_id.lower().rfind("/subnets/")
        return subnet_id[:lowered] if lowered > 0 else None
    return head


def nic_from_rest(d: Json) -> NicFacts:
    """A NIC with the references of its primary IP configuration (resolved later)."""
    p = _props(d)
    configs = [c for c in _list(p.get("ipConfigurations")) if isinstance(c, Mapping)]
    primary = next((c for c in configs if _props(c).get("primary")), configs[0] if configs else {})
    pp = _props(primary)
    asgs: list[str] = []
    for c in configs:
        asgs.extend(str(a.get("id", "")) for a in _list(_props(c).get("applicationSecurityGroups")))
    nsg = p.get("networkSecurityGroup") if isinstance(p.get("networkSecurityGroup"), Mapping) else None
    pip = pp.get("publicIPAddress") if isinstance(pp.get("publicIPAddress"), Mapping) else None
    subnet = pp.get("subnet") if isinstance(pp.get("subnet"), Mapping) else None
    return NicFacts(
        id=str(d.get("id", "")),
        name=str(d.get("name", "")),
        primary=bool(p.get("primary", True)),
        private_ip=pp.get("privateIPAddress") or None,
        private_ips=tuple(
            str(_props(c).get("privateIPAddress")) for c in configs if _props(c).get("privateIPAddress")
        ),
        accelerated_networking=bool(p.get("enableAcceleratedNetworking")),
        ip_forwarding=bool(p.get("enableIPForwarding")),
        asgs=tuple(dict.fromkeys(asgs)),
        subnet_id=(subnet or {}).get("id"),
        public_ip_id=(pip or {}).get("id"),
        nsg_id=(nsg or {}).get("id"),
        ipconfig_id=str(primary.get("id")) if primary.get("id") else None,
        lb_nat_rule_ids=_ref_ids(pp.get("loadBalancerInboundNatRules")),
        lb_pool_ids=_ref_ids(pp.get("loadBalancerBackendAddressPools")),
    )


def _ref_ids(value: Any) -> tuple[str, ...]:
    return tuple(str(r["id"]) for r in _list(value) if isinstance(r, Mapping) and r.get("id"))


def nic_vm_id(d: Json) -> str | None:
    vm = _props(d).get("virtualMachine")
    return str(vm.get("id")) if isinstance(vm, Mapping) and vm.get("id") else None


def _status_code(statuses: Iterable[Any], prefix: str) -> str | None:
    for s in statuses:
        code = str((s or {}).get("code") or "")
        if code.lower().startswith(prefix.lower() + "/"):
            return code
    return None


def _status_time(statuses: Iterable[Any], prefix: str) -> str | None:
    for s in statuses:
        if isinstance(s, Mapping) and str(s.get("code") or "").lower().startswith(prefix.lower() + "/"):
            return str(s["time"]) if s.get("time") else None
    return None


def vm_from_rest(d: Json, subscription_id: str = "") -> VmFacts:
    """The VM model (and its instance view, when present) as facts; NICs are not resolved here."""
    p = _props(d)
    iv = p.get("instanceView") if isinstance(p.get("instanceView"), Mapping) else {}
    iv = iv or {}
    statuses = _list(iv.get("statuses"))
    power = _status_code(statuses, "PowerState")
    prov_code = _status_code(statuses, "ProvisioningState")
    agent = iv.get("vmAgent") if isinstance(iv.get("vmAgent"), Mapping) else None
    agent_status = agent_message = agent_version = None
    if agent:
        agent_version = agent.get("vmAgentVersion") or None
        first = next(iter(_list(agent.get("statuses"))), None)
        if isinstance(first, Mapping):
            agent_status = first.get("displayStatus") or None
            agent_message = first.get("message") or None
    storage = p.get("storageProfile") if isinstance(p.get("storageProfile"), Mapping) else None
    os_disk = (storage or {}).get("osDisk") if isinstance((storage or {}).get("osDisk"), Mapping) else {}
    os_type = (os_disk or {}).get("osType") or None
    if not os_type and iv.get("osName"):
        os_type = "Windows" if "windows" in str(iv["osName"]).lower() else None
    diag = p.get("diagnosticsProfile") if isinstance(p.get("diagnosticsProfile"), Mapping) else None
    boot: bool | None = None
    if diag is not None:
        bd = diag.get("bootDiagnostics") if isinstance(diag.get("bootDiagnostics"), Mapping) else {}
        boot = bool((bd or {}).get("enabled"))
    elif storage is not None:
        boot = False  # a full model without diagnosticsProfile: boot diagnostics were never enabled
    os_profile = p.get("osProfile") if isinstance(p.get("osProfile"), Mapping) else {}
    win = (os_profile or {}).get("windowsConfiguration")
    provisioned = win.get("provisionVMAgent") if isinstance(win, Mapping) else None
    hw = p.get("hardwareProfile") if isinstance(p.get("hardwareProfile"), Mapping) else {}
    problems = tuple(
        (str(s.get("code", "")), str(s.get("message") or s.get("displayStatus") or ""))
        for s in statuses
        if isinstance(s, Mapping) and str(s.get("level", "")).lower() in ("warning", "error")
    )
    tags = d.get("tags") if isinstance(d.get("tags"), Mapping) else {}
    vm_id = str(d.get("id", ""))
    return VmFacts(
        id=vm_id,
        name=str(d.get("name", "")),
        resource_group=group_of(vm_id),
        subscription_id=subscription_id or _sub_of(vm_id),
        location=str(d.get("location", "")),
        vm_size=str((hw or {}).get("vmSize") or ""),
        os_type=str(os_type) if os_type else None,
        os_name=iv.get("osName") or None,
        provisioning_state=p.get("provisioningState") or None,
        provisioning_code=prov_code,
        power_state=power.split("/", 1)[1].lower() if power else None,
        agent_status=agent_status,
        agent_version=agent_version,
        agent_message=agent_message,
        boot_diagnostics=boot,
        agent_provisioned=provisioned if isinstance(provisioned, bool) else None,
        last_operation_time=_status_time(statuses, "ProvisioningState"),
        tags=tuple((str(k), str(v)) for k, v in (tags or {}).items()),
        status_problems=problems,
    )


def vm_nic_ids(d: Json) -> list[str]:
    """NIC IDs of a VM model, primary first (None if the model carries no networkProfile)."""
    profile = _props(d).get("networkProfile")
    if not isinstance(profile, Mapping):
        return []
    nics = [n for n in _list(profile.get("networkInterfaces")) if isinstance(n, Mapping) and n.get("id")]
    nics.sort(key=lambda n: not (_props(n).get("primary") or n.get("primary")))
    return [str(n["id"]) for n in nics]


def _sub_of(resource_id: str) -> str:
    parts = resource_id.split("/")
    return parts[2] if len(parts) > 2 and parts[1].lower() == "subscriptions" else ""


# --------------------------------------------------------------------------------------------
# Assembly: NIC + looked-up references -> resolved NicFacts
# --------------------------------------------------------------------------------------------


@dataclass
class Lookup:
    """Resources gathered so far, by lower-cased ID, plus why some could not be read."""

    nsgs: dict[str, Nsg] = field(default_factory=dict)
    vnets: dict[str, Vnet] = field(default_factory=dict)
    pips: dict[str, PublicIp] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def add_nsg(self, d: Json) -> None:
        nsg = nsg_from_rest(d)
        self.nsgs[nsg.id.lower()] = nsg

    def add_vnet(self, d: Json) -> None:
        vnet = vnet_from_rest(d)
        self.vnets[vnet.id.lower()] = vnet

    def add_pip(self, d: Json) -> None:
        pip = public_ip_from_rest(d)
        self.pips[pip.id.lower()] = pip

    def missing(self, nic: NicFacts) -> dict[str, list[str]]:
        """References of the NIC not gathered yet, by kind."""
        out: dict[str, list[str]] = {"nsg": [], "vnet": [], "pip": []}
        if nic.nsg_id and nic.nsg_id.lower() not in self.nsgs:
            out["nsg"].append(nic.nsg_id)
        vnet_id = vnet_id_of_subnet(nic.subnet_id)
        if vnet_id and vnet_id.lower() not in self.vnets:
            out["vnet"].append(vnet_id)
        elif vnet_id:
            subnet = self.vnets[vnet_id.lower()].subnet(nic.subnet_id)
            if subnet and subnet.nsg_id and subnet.nsg_id.lower() not in self.nsgs:
                out["nsg"].append(subnet.nsg_id)
        if nic.public_ip_id and nic.public_ip_id.lower() not in self.pips:
            out["pip"].append(nic.public_ip_id)
        return out

    def resolve(self, nic: NicFacts) -> NicFacts:
        unreadable: list[tuple[str, str]] = []

        def get(table: Mapping[str, T], rid: str | None) -> T | None:
            if not rid:
                return None
            found = table.get(rid.lower())
            if found is None:
                unreadable.append((rid, self.failed.get(rid.lower(), "not found")))
            return found

        vnet = get(self.vnets, vnet_id_of_subnet(nic.subnet_id))
        subnet = vnet.subnet(nic.subnet_id) if vnet else None
        if vnet is not None and subnet is None:
            unreadable.append((nic.subnet_id or "", "subnet not found in its VNet"))
        return replace(
            nic,
            nsg=get(self.nsgs, nic.nsg_id),
            public_ip=get(self.pips, nic.public_ip_id),
            vnet=vnet,
            subnet=subnet,
            subnet_nsg=get(self.nsgs, subnet.nsg_id) if subnet else None,
            unreadable=tuple(unreadable),
        )


def _parallel(tasks: Sequence[Callable[[], T]], workers: int = MAX_WORKERS) -> list[T]:
    if len(tasks) <= 1:
        return [t() for t in tasks]
    with ThreadPoolExecutor(max_workers=min(workers, len(tasks)), thread_name_prefix="azrdp-inv") as pool:
        return list(pool.map(lambda t: t(), tasks))


def _reason(err: AzrdpError) -> str:
    return f"{err.code}: {err.message}"


def _split(resource_id: str) -> tuple[str, str]:
    return group_of(resource_id), name_of(resource_id)


# --------------------------------------------------------------------------------------------
# Single VM
# --------------------------------------------------------------------------------------------


def get_vm_facts(clients: Clients, resource_group: str, name: str) -> VmFacts:
    """Facts for one VM: 3 rounds of requests (see the module docstring).

    Raises NotFoundError (exit 3) when the VM or its group does not exist, and the gateway's
    errors for authentication, authorisation and Azure failures. Unreadable NICs, NSGs, VNets or
    public IPs do not raise: they are recorded on the NIC (`unreadable`).
    """

    return complete_vm_facts(clients, get_vm_json(clients, resource_group, name))


def get_vm_json(clients: Clients, resource_group: str, name: str) -> Json:
    """The VM model with its instance view (`$expand=instanceView`, documented for GET): one request."""
    from azrdp.azure.arm import COMPUTE_API, subscription_path
    from azrdp.azure.clients import translate_errors

    path = subscription_path(
        clients.subscription_id,
        "resourceGroups",
        resource_group,
        "providers",
        "Microsoft.Compute",
        "virtualMachines",
        name,
    )
    with translate_errors(f"VM '{name}' in resource group '{resource_group}'"):
        vm_json: Json = clients.arm.get(path, COMPUTE_API, {"$expand": "instanceView"})
    return vm_json


def complete_vm_facts(
    clients: Clients, vm_json: Json, alongside: Callable[[Sequence[NicFacts]], None] | None = None
) -> VmFacts:
    """Rounds 2 and 3 for a VM model already read; `alongside(nics)` runs in parallel with round 3."""
    facts = vm_from_rest(vm_json, clients.subscription_id)
    nic_ids = vm_nic_ids(vm_json)
    lookup = Lookup()
    nic_results = _parallel([lambda rid=rid: _get_nic(clients, rid) for rid in nic_ids])  # type: ignore[misc]
    nics: list[NicFacts] = []
    failed_nics: list[tuple[str, str]] = []
    for rid, result in zip(nic_ids, nic_results, strict=True):
        if isinstance(result, NicFacts):
            nics.append(result)
        else:
            failed_nics.append((rid, result))
    if nics and not any(n.primary for n in nics):
        nics[0] = replace(nics[0], primary=True)

    if alongside is None:
        _fill(clients, lookup, nics, list_groups=True)
    else:
        _parallel([lambda: _fill(clients, lookup, nics, list_groups=True), lambda: alongside(nics)])
    resolved = [lookup.resolve(n) for n in nics]
    if failed_nics:
        # Keep the reason where checks look for it: on a placeholder NIC.
        resolved.extend(
            NicFacts(id=rid, name=name_of(rid), primary=not resolved, unreadable=((rid, why),))
            for rid, why in failed_nics
        )
    return replace(facts, nics=tuple(resolved))


def _get_nic(clients: Clients, nic_id: str) -> NicFacts | str:
    from azrdp.azure.arm import NETWORK_API, resource_path
    from azrdp.azure.clients import translate_errors

    try:
        with translate_errors(f"network interface '{name_of(nic_id)}'"):
            return nic_from_rest(clients.arm.get(resource_path(nic_id), NETWORK_API))
    except AzrdpError as err:
        return _reason(err)


def _fill(clients: Clients, lookup: Lookup, nics: Sequence[NicFacts], list_groups: bool) -> None:
    """Read what the NICs reference that the lookup lacks: VNets, public IPs and NSGs.

    With `list_groups`, the NSGs of each VNet's resource group are listed in the same round as the
    VNet itself, so the subnet's NSG (known only once the VNet is read) is usually already there.
    """
    from azrdp.azure.arm import NETWORK_API, group_path, resource_path
    from azrdp.azure.clients import translate_errors

    arm = clients.arm
    for _ in range(3):  # round 3, then at most the subnet NSGs found in it, then nothing new
        want: dict[str, set[str]] = {"nsg": set(), "vnet": set(), "pip": set()}
        by_lower: dict[str, str] = {}
        for nic in nics:
            for kind, ids in lookup.missing(nic).items():
                for rid in ids:
                    if rid.lower() not in lookup.failed:
                        want[kind].add(rid.lower())
                        by_lower[rid.lower()] = rid
        if not any(want.values()):
            return
        tasks: list[Callable[[], None]] = []
        listed_groups: set[str] = set()
        if list_groups:
            listed_groups = {group_of(by_lower[v]).lower() for v in want["vnet"]}

        def list_nsgs(group: str) -> None:
            try:
                with translate_errors(f"the NSGs of resource group '{group}'"):
                    path = group_path(
                        clients.subscription_id, group, "Microsoft.Network", "networkSecurityGroups"
                    )
                    for item in arm.items(path, NETWORK_API):
                        lookup.add_nsg(item)
            except AzrdpError:
                pass  # the NSGs are fetched one by one in the next round, with their own errors

        def get_one(kind: str, rid: str) -> None:
            nm = name_of(rid)
            what, add = {
                "nsg": (f"network security group '{nm}'", lookup.add_nsg),
                "vnet": (f"virtual network '{nm}'", lookup.add_vnet),
                "pip": (f"public IP '{nm}'", lookup.add_pip),
            }[kind]
            try:
                with translate_errors(what):
                    add(arm.get(resource_path(rid), NETWORK_API))
            except AzrdpError as err:
                lookup.failed[rid.lower()] = _reason(err)

        for group in sorted(listed_groups):
            tasks.append(lambda g=group: list_nsgs(g))  # type: ignore[misc]
        for kind, wanted_ids in want.items():
            for low in sorted(wanted_ids):
                if kind == "nsg" and group_of(by_lower[low]).lower() in listed_groups:
                    continue
                tasks.append(lambda k=kind, r=by_lower[low]: get_one(k, r))  # type: ignore[misc]
        _parallel(tasks)
        # An NSG expected from a listing but absent from it gets its own GET next round.
        list_groups = False


# --------------------------------------------------------------------------------------------
# Fleets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetEntry:
    """One listed VM: its facts, or why they could not be assembled."""

    id: str
    name: str
    resource_group: str
    facts: VmFacts | None = None
    error: AzrdpError | None = None


ProgressFn = Callable[[str, int], None]  # (what was listed, items so far)


def _drain(
    pages: Iterator[Json], sink: Callable[[Json], None], what: str, progress: ProgressFn | None
) -> int:
    count = 0
    for item in pages:
        sink(item)
        count += 1
        if progress and count % 500 == 0:
            progress(what, count)
    if progress:
        progress(what, count)
    return count


def list_vm_models(
    clients: Clients,
    resource_group: str | None,
    progress: ProgressFn | None = None,
    names: set[str] | None = None,
) -> list[Json]:
    """The VM models of a group (`list(GROUP)`) or of the subscription (`list_all()`), no status.

    With `names` (lower-case), only those VMs, and the listing stops once all of them are found.
    """
    from azrdp.azure.arm import COMPUTE_API, group_path
    from azrdp.azure.clients import translate_errors

    scope = f"resource group '{resource_group}'" if resource_group else "the subscription"
    listed: list[Json] = []
    path = group_path(clients.subscription_id, resource_group, "Microsoft.Compute", "virtualMachines")
    with translate_errors(f"the VMs of {scope}"):
        items = clients.arm.items(path, COMPUTE_API)
        if names is None:
            _drain(items, listed.append, "VMs", progress)
            return listed
        for item in items:
            if str(item.get("name", "")).lower() in names:
                listed.append(item)
                if len(listed) == len(names):
                    break  # every named VM is known: the remaining pages are not needed
    return listed


def vm_statuses(
    clients: Clients, models: Sequence[Json], resource_group: str | None, progress: ProgressFn | None = None
) -> dict[str, Json]:
    """The instance view of each listed VM of a group, by lower-cased VM id (absent: not reported).

    Few VMs: one instance-view GET each, in parallel. Otherwise the status-only listing of the
    subscription, read until every wanted VM is found.
    """
    from azrdp.azure.arm import COMPUTE_API, resource_path
    from azrdp.azure.clients import translate_errors

    wanted = {str(m.get("id", "")).lower(): m for m in models if m.get("id")}
    if not wanted:
        return {}
    if resource_group and len(wanted) <= INSTANCE_VIEW_GETS_MAX:

        def one(model: Json) -> tuple[str, Json | None]:
            rid = str(model["id"])
            try:
                with translate_errors(f"the instance view of VM '{name_of(rid)}'"):
                    view: Json = clients.arm.get(resource_path(rid) + "/instanceView", COMPUTE_API)
                return rid.lower(), view
            except AzrdpError:
                return rid.lower(), None

        tasks: list[Callable[[], tuple[str, Json | None]]] = [
            lambda m=m: one(m)  # type: ignore[misc]
            for m in wanted.values()
        ]
        return {rid: view for rid, view in _parallel(tasks) if view is not None}
    return all_vm_statuses(clients, progress, wanted=set(wanted))


def all_vm_statuses(
    clients: Clients, progress: ProgressFn | None = None, wanted: set[str] | None = None
) -> dict[str, Json]:
    """`list_all(statusOnly=true)`: each VM's instance view by lower-cased id; with `wanted`, only
    those, and the listing stops as soon as all of them are found."""
    from azrdp.azure.arm import COMPUTE_API, group_path
    from azrdp.azure.clients import translate_errors

    found: dict[str, Json] = {}
    path = group_path(clients.subscription_id, None, "Microsoft.Compute", "virtualMachines")
    with translate_errors("the VM status of the subscription"):
        for d in clients.arm.items(path, COMPUTE_API, {"statusOnly": "true"}):
            rid = str(d.get("id", "")).lower()
            if wanted is not None and rid not in wanted:
                continue
            view = _props(d).get("instanceView")
            found[rid] = view if isinstance(view, Mapping) else {}
            if progress and len(found) % 500 == 0:
                progress("VM statuses", len(found))
            if wanted is not None and len(found) == len(wanted):
                break  # every wanted VM is known: the remaining pages are not needed
    if progress:
        progress("VM statuses", len(found))
    return found


def with_instance_view(model: Json, instance_view: Json | None) -> Json:
    """A VM model with `properties.instanceView`, as a GET with `$expand=instanceView` returns it."""
    if instance_view is None:
        return model
    out = dict(model)
    props = dict(_props(model))
    props["instanceView"] = instance_view
    out["properties"] = props
    return out


def list_fleet_facts(
    clients: Clients,
    resource_group: str | None = None,
    progress: ProgressFn | None = None,
    names: set[str] | None = None,
    lookup: Lookup | None = None,
) -> list[FleetEntry]:
    """Every VM of the subscription (or one resource group) with its facts, from list calls;
    with `names` (lower-case, a group only), just those VMs of the group. `lookup` receives every
    NSG, VNet and public IP listed (a load balancer's frontend IP is among them, say).

    Raises for failures of the listings themselves (group not found, 403 on the listing); a VM
    whose own network resources cannot be read gets an entry with `error` instead.
    """
    from azrdp.azure.arm import NETWORK_API, group_path
    from azrdp.azure.clients import translate_errors

    lock = threading.Lock()
    vms: list[tuple[VmFacts, list[str]]] = []
    missing_status: set[str] = set()
    nics: dict[str, NicFacts] = {}
    nic_owner: dict[str, str] = {}  # NIC id -> VM id, from the NIC's back-reference
    lookup = lookup if lookup is not None else Lookup()
    scope = f"resource group '{resource_group}'" if resource_group else "the subscription"

    models: list[Json] = []

    def add_nic(d: Json) -> None:
        nic = nic_from_rest(d)
        owner = nic_vm_id(d)
        with lock:
            nics[nic.id.lower()] = nic
            if owner:
                nic_owner[nic.id.lower()] = owner.lower()

    def locked(fn: Callable[[Json], None]) -> Callable[[Json], None]:
        def run(d: Json) -> None:
            with lock:
                fn(d)

        return run

    statuses: dict[str, Json] = {}

    def vm_models() -> int:
        """The models; for a group, then the status of its VMs (it needs their ids)."""
        listed = list_vm_models(clients, resource_group, progress, names if resource_group else None)
        if resource_group:
            statuses.update(vm_statuses(clients, listed, resource_group, progress))
        models.extend(listed)
        return len(listed)

    def vm_status_all() -> int:
        """`--all`: the status listing runs beside the model listing."""
        statuses.update(all_vm_statuses(clients, progress))
        return len(statuses)

    def listing(what: str, kind: str, sink: Callable[[Json], None]) -> Callable[[], int]:
        path = group_path(clients.subscription_id, resource_group, "Microsoft.Network", kind)

        def run() -> int:
            with translate_errors(f"the {what} of {scope}"):
                return _drain(clients.arm.items(path, NETWORK_API), sink, what, progress)

        return run

    tasks = [vm_models] if resource_group else [vm_models, vm_status_all]
    tasks += [
        listing("network interfaces", "networkInterfaces", add_nic),
        listing("NSGs", "networkSecurityGroups", locked(lookup.add_nsg)),
        listing("virtual networks", "virtualNetworks", locked(lookup.add_vnet)),
        listing("public IPs", "publicIPAddresses", locked(lookup.add_pip)),
    ]
    _parallel(tasks)
    for model in models:  # the join: model and status by VM id
        status = statuses.get(str(model.get("id", "")).lower())
        facts = vm_from_rest(with_instance_view(model, status), clients.subscription_id)
        vms.append((facts, vm_nic_ids(model)))
        if status is None:
            missing_status.add(facts.id.lower())

    # A model without networkProfile (rare): fall back to the NICs' back-references.
    by_vm: dict[str, list[str]] = {}
    for nic_id, vm_id in nic_owner.items():
        by_vm.setdefault(vm_id, []).append(nic_id)

    wanted: list[tuple[VmFacts, list[str]]] = []
    missing_nics: set[str] = set()
    for facts, nic_ids in vms:
        ids = nic_ids or by_vm.get(facts.id.lower(), [])
        wanted.append((facts, ids))
        missing_nics.update(i for i in ids if i.lower() not in nics)
    if missing_nics:
        # NICs in other resource groups than the VM (only with -g).
        results = _parallel([lambda rid=rid: _get_nic(clients, rid) for rid in sorted(missing_nics)])  # type: ignore[misc]
        for rid, result in zip(sorted(missing_nics), results, strict=True):
            if isinstance(result, NicFacts):
                nics[rid.lower()] = result
            else:
                lookup.failed[rid.lower()] = result
    present = [nics[i.lower()] for _, ids in wanted for i in ids if i.lower() in nics]
    _fill(clients, lookup, present, list_groups=False)

    entries: list[FleetEntry] = []
    for facts, ids in wanted:
        if facts.id.lower() in missing_status:
            entries.append(
                FleetEntry(
                    facts.id,
                    facts.name,
                    facts.resource_group,
                    error=AzureError(
                        f"The run-time status of VM '{facts.name}' could not be read: it was listed, but "
                        "its instance view was not found (deleted or moved while listing?).",
                        fix="Rerun the check.",
                    ),
                )
            )
            continue
        if not ids:
            entries.append(FleetEntry(facts.id, facts.name, facts.resource_group, replace(facts, nics=())))
            continue
        resolved: list[NicFacts] = []
        for index, rid in enumerate(ids):
            nic = nics.get(rid.lower())
            if nic is None:
                why = lookup.failed.get(rid.lower(), "not found")
                resolved.append(
                    NicFacts(id=rid, name=name_of(rid), primary=index == 0, unreadable=((rid, why),))
                )
            else:
                resolved.append(lookup.resolve(replace(nic, primary=index == 0)))
        entries.append(
            FleetEntry(facts.id, facts.name, facts.resource_group, replace(facts, nics=tuple(resolved)))
        )
    return entries


# --------------------------------------------------------------------------------------------
# Effective rules (opt-in: a POST LRO per NIC, answered only while the VM runs)
# --------------------------------------------------------------------------------------------


def effective_nsgs_from_rest(d: Json) -> list[tuple[str, Nsg]]:
    """The effectiveNetworkSecurityGroups answer as (layer, Nsg) pairs with tags expanded."""
    out: list[tuple[str, Nsg]] = []
    for entry in _list(d.get("value")):
        if not isinstance(entry, Mapping):
            continue
        assoc = entry.get("association") if isinstance(entry.get("association"), Mapping) else {}
        layer = "subnet" if (assoc or {}).get("subnet") else "nic"
        ref = (
            entry.get("networkSecurityGroup")
            if isinstance(entry.get("networkSecurityGroup"), Mapping)
            else {}
        )
        nsg_id = str((ref or {}).get("id") or "")
        rules: list[NsgRule] = []
        for r in _list(entry.get("effectiveSecurityRules")):
            if not isinstance(r, Mapping):
                continue
            kind, _, short = str(r.get("name", "")).partition("/")
            flat = dict(r)
            for side in ("source", "destination"):
                expanded = _tuple_str(r.get(f"expanded{side.capitalize()}AddressPrefix"))
                if expanded:
                    flat[f"{side}AddressPrefixes"] = list(expanded)
            rule = rule_from_rest(
                {"name": short or kind, "properties": flat}, default=kind == "defaultSecurityRules"
            )
            rules.append(rule)
        out.append((layer, Nsg(nsg_id, name_of(nsg_id), tuple(rules))))
    return out


def get_effective_rules(clients: Clients, nic_id: str) -> list[tuple[str, Nsg]] | str:
    """Azure's effective rules for a NIC, or why they could not be read."""
    from azrdp.azure.clients import translate_errors

    rg, nic = _split(nic_id)
    try:
        with translate_errors(f"the effective security rules of NIC '{nic}'"):
            poller = clients.network.network_interfaces.begin_list_effective_network_security_groups(rg, nic)
            return effective_nsgs_from_rest(poller.result(timeout=120).as_dict())
    except AzrdpError as err:
        return err.message
