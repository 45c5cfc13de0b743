"""Microsoft.Network routes for the rest of the way in: load balancers (inbound NAT rules), route
tables, effective routes, Network Watcher (IP flow verify) and Virtual Network Manager effective
security admin rules.

Shapes and status codes follow the official examples (Azure/azure-rest-api-specs, Microsoft.Network):
LoadBalancerGetInboundNatRulePortMapping.json, InboundNatRuleGet.json, RouteTableGet.json,
NetworkInterfaceEffectiveRouteTableList.json (202 + Location, then 200), NetworkWatcherIpFlowVerify.json
(202 + Location, then 200 {access, ruleName}) and NetworkManagerEffectiveSecurityAdminRulesList.json
(200 {value, skipToken}, a POST whose body carries the skipToken).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from azrdp.emulator import routes_network
from azrdp.emulator.flowverify import valid_ip, verify
from azrdp.emulator.netpaths import effective_admin_rules, effective_routes
from azrdp.emulator.vmstate import power_state
from azrdp.emulator.wire import (
    PROVIDERS,
    SUB,
    ArmError,
    Request,
    Response,
    Route,
    child_not_found,
    not_found,
    page,
    route,
)

if TYPE_CHECKING:
    from azrdp.emulator.server import Emulator

Resource = dict[str, Any]

NET = PROVIDERS + r"/microsoft\.network"
TYPES = {
    "loadbalancers": "Microsoft.Network/loadBalancers",
    "routetables": "Microsoft.Network/routeTables",
    "networkwatchers": "Microsoft.Network/networkWatchers",
}
CHILDREN = {
    ("loadbalancers", "frontendipconfigurations"): "frontendIPConfigurations",
    ("loadbalancers", "backendaddresspools"): "backendAddressPools",
    ("loadbalancers", "inboundnatrules"): "inboundNatRules",
    ("loadbalancers", "loadbalancingrules"): "loadBalancingRules",
    ("loadbalancers", "probes"): "probes",
    ("routetables", "routes"): "routes",
}
_TOP = r"(?P<kind>loadbalancers|routetables|networkwatchers)"
_CHILD = (
    r"(?P<child>frontendipconfigurations|backendaddresspools|inboundnatrules|loadbalancingrules"
    r"|probes|routes)"
)
# A client port for the packet; IP flow verify takes ports as strings of a single number.
_PORT = re.compile(r"^[0-9]{1,5}$")


def _api_versions() -> frozenset[str]:
    # The network provider's published versions, whatever table routes_network keeps.
    return routes_network.API_VERSIONS


def _group_id(m: re.Match[str]) -> str:
    return f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}"


def _resource_id(m: re.Match[str], kind: str, name: str) -> str:
    return f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}/providers/{TYPES[kind]}/{name}"


def _top(emu: Emulator, m: re.Match[str]) -> Resource:
    emu.require_group(m["sub"], m["rg"])
    kind = m["kind"].lower()
    found = emu.store.get(_resource_id(m, kind, m["name"]))
    if found is None:
        raise not_found(TYPES[kind], m["name"], m["rg"])
    return found


def get_top(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    return Response(200, _top(emu, m))


def list_group(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    emu.require_group(m["sub"], m["rg"])
    return page(emu, req, emu.store.list(TYPES[m["kind"].lower()], m["sub"], m["rg"]), lambda r: r)


def list_all(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    return page(emu, req, emu.store.list(TYPES[m["kind"].lower()], m["sub"]), lambda r: r)


def _child_type(m: re.Match[str]) -> str:
    pair = (m["kind"].lower(), m["child"].lower())
    if pair not in CHILDREN:
        raise ArmError(
            400, "InvalidResourceType", f"The resource type '{m['kind']}/{m['child']}' could not be found."
        )
    return CHILDREN[pair]


def get_child(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    parent = _top(emu, m)
    child_id = f"{parent['id']}/{_child_type(m)}/{m['childname']}"
    found = emu.store.get(child_id)
    if found is None:
        raise child_not_found(child_id)
    return Response(200, found)


def list_children(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    parent = _top(emu, m)
    items = (parent.get("properties") or {}).get(_child_type(m)) or []
    return page(emu, req, list(items), lambda r: r)


# ---------------------------------------------------------------------------------------------
# POST actions


def _network_lro(
    emu: Emulator, req: Request, m: re.Match[str], location: str, result: Any, kind: str
) -> Response:
    def complete() -> Any:
        return result() if callable(result) else result

    op = emu.ops.create(
        provider="Microsoft.Network",
        subscription=m["sub"],
        location=location,
        api_version=req.query["api-version"],
        seconds=emu.lro_seconds,
        on_complete=complete,
        kind=kind,
    )
    base = (
        f"{emu.endpoint}/subscriptions/{op.subscription}/providers/Microsoft.Network/locations/{op.location}"
    )
    return Response(202, None, {"Location": f"{base}/operationResults/{op.id}?api-version={op.api_version}"})


def _running_vm_of(emu: Emulator, nic: Resource, what: str) -> Resource:
    vm_ref = ((nic.get("properties") or {}).get("virtualMachine") or {}).get("id")
    vm = emu.store.get(vm_ref) if isinstance(vm_ref, str) else None
    if vm is None or power_state(vm) != "running":
        # Real Azure answers effective routes only for a NIC of a running VM, as for effective
        # NSGs; the error code is not documented, and azrdp never asks for a stopped VM.
        raise ArmError(
            400,
            "NicNotAttachedToRunningVm",
            f"Network interface {nic['id']} is not attached to a running virtual machine. "
            f"{what} are only available while the VM is running.",
        )
    return vm


def effective_route_table(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    emu.require_group(m["sub"], m["rg"])
    nic_id = f"{_group_id(m)}/providers/Microsoft.Network/networkInterfaces/{m['name']}"
    nic = emu.store.get(nic_id)
    if nic is None:
        raise not_found("Microsoft.Network/networkInterfaces", m["name"], m["rg"])
    _running_vm_of(emu, nic, "Effective routes")
    store = emu.store

    def result() -> dict[str, Any]:
        with store.lock:
            return {"value": effective_routes(store, nic)}

    return _network_lro(emu, req, m, str(nic.get("location", "")), result, "effectiveRoutes")


def list_admin_rules(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    emu.require_group(m["sub"], m["rg"])
    vnet_id = f"{_group_id(m)}/providers/Microsoft.Network/virtualNetworks/{m['name']}"
    vnet = emu.store.get(vnet_id)
    if vnet is None:
        raise not_found("Microsoft.Network/virtualNetworks", m["name"], m["rg"])
    body = req.json_body()
    if body is not None and not isinstance(body, dict):
        raise ArmError(
            400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
        )
    token = str((body or {}).get("skipToken") or "0")
    top = req.query.get("$top")
    try:
        start = int(token)
        size = int(top) if top else emu.page_size
        if start < 0 or size < 1:
            raise ValueError(token)
    except ValueError:
        raise ArmError(400, "InvalidSkipToken", "The skipToken or $top value is not valid.") from None
    rules = effective_admin_rules(emu.store, vnet)
    chunk = rules[start : start + size]
    out: dict[str, Any] = {"value": chunk}
    if start + size < len(rules):
        out["skipToken"] = str(start + size)
    return Response(200, out)


def ip_flow_verify(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    emu.require_group(m["sub"], m["rg"])
    watcher_id = _resource_id(m, "networkwatchers", m["name"])
    watcher = emu.store.get(watcher_id)
    if watcher is None:
        raise not_found(TYPES["networkwatchers"], m["name"], m["rg"])
    body = req.json_body()
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request.")
    for field in (
        "targetResourceId",
        "direction",
        "protocol",
        "localPort",
        "remotePort",
        "localIPAddress",
        "remoteIPAddress",
    ):
        if not isinstance(body.get(field), str) or not body[field]:
            raise ArmError(
                400,
                "InvalidRequestFormat",
                f"Required property '{field}' is missing or invalid.",
                target=field,
            )
    if body["direction"] not in ("Inbound", "Outbound"):
        raise ArmError(
            400, "InvalidRequestFormat", "direction must be Inbound or Outbound.", target="direction"
        )
    if body["protocol"] not in ("TCP", "UDP"):
        raise ArmError(400, "InvalidRequestFormat", "protocol must be TCP or UDP.", target="protocol")
    for field in ("localPort", "remotePort"):
        if not _PORT.match(body[field]) or not 0 <= int(body[field]) <= 65535:
            raise ArmError(
                400, "InvalidRequestFormat", f"{field} must be a single port number.", target=field
            )
    for field in ("localIPAddress", "remoteIPAddress"):
        if not valid_ip(body[field]):
            raise ArmError(400, "InvalidRequestFormat", f"{field} is not an IP address.", target=field)
    vm = emu.store.get(body["targetResourceId"])
    if vm is None or str(vm.get("type", "")).lower() != "microsoft.compute/virtualmachines":
        raise ArmError(404, "NotFound", f"Resource {body['targetResourceId']} not found.")
    if str(vm.get("location", "")).lower() != str(watcher.get("location", "")).lower():
        # learn.microsoft.com/azure/network-watcher/ip-flow-verify-overview: a regional service that
        # can only be run against resources in its region.
        raise ArmError(
            400,
            "InvalidRequestFormat",
            f"The target resource is in region '{vm.get('location')}', the Network Watcher in "
            f"'{watcher.get('location')}'. IP flow verify needs the watcher of the VM's region.",
        )
    if power_state(vm) != "running":
        raise ArmError(400, "InvalidRequestFormat", "IP flow verify needs the virtual machine to be running.")
    nic = _nic_with_address(emu, vm, body)
    store = emu.store

    def result() -> dict[str, str]:
        with store.lock:
            return verify(store, nic, body)

    return _network_lro(emu, req, m, str(watcher.get("location", "")), result, "ipFlowVerify")


def _nic_with_address(emu: Emulator, vm: Resource, body: dict[str, Any]) -> Resource:
    wanted = body.get("targetNicResourceId")
    for ref in ((vm.get("properties") or {}).get("networkProfile") or {}).get("networkInterfaces") or ():
        nic = emu.store.get(str(ref.get("id", "")))
        if nic is None or (isinstance(wanted, str) and wanted and nic["id"].lower() != wanted.lower()):
            continue
        for ipconfig in (nic.get("properties") or {}).get("ipConfigurations") or ():
            if (ipconfig.get("properties") or {}).get("privateIPAddress") == body["localIPAddress"]:
                return nic
    raise ArmError(
        400,
        "InvalidRequestFormat",
        f"No network interface of the virtual machine has the local IP address {body['localIPAddress']}.",
        target="localIPAddress",
    )


def routes() -> list[Route]:
    v = _api_versions()
    top = NET + "/" + _TOP
    one = top + r"/(?P<name>[^/]+)"
    child = one + "/" + _CHILD
    return [
        route("GET", one, get_top, v),
        route("GET", top, list_group, v),
        route("GET", SUB + r"/providers/microsoft\.network/" + _TOP, list_all, v),
        route("GET", child + r"/(?P<childname>[^/]+)", get_child, v),
        route("GET", child, list_children, v),
        route(
            "POST", NET + r"/networkinterfaces/(?P<name>[^/]+)/effectiveroutetable", effective_route_table, v
        ),
        route(
            "POST",
            NET + r"/virtualnetworks/(?P<name>[^/]+)/listnetworkmanagereffectivesecurityadminrules",
            list_admin_rules,
            v,
        ),
        route("POST", NET + r"/networkwatchers/(?P<name>[^/]+)/ipflowverify", ip_flow_verify, v),
    ]
