"""Microsoft.Network routes: NSGs and security rules, NICs (+ effective NSGs), VNets, subnets, public IPs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from azrdp.emulator.builders import stable_guid
from azrdp.emulator.effective import effective_groups
from azrdp.emulator.lro import Operation
from azrdp.emulator.store import child_array
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

API_VERSIONS = frozenset(
    {
        "2026-03-01",
        "2026-01-01",
        "2025-07-01",
        "2025-05-01",
        "2025-03-01",
        "2025-01-01",
        "2024-10-01",
        "2024-07-01",
        "2024-05-01",
        "2024-03-01",
    }
)
NET = PROVIDERS + r"/microsoft\.network"
# URL segment (lower-cased) -> ARM type
TOP_TYPES = {
    "networksecuritygroups": "Microsoft.Network/networkSecurityGroups",
    "networkinterfaces": "Microsoft.Network/networkInterfaces",
    "virtualnetworks": "Microsoft.Network/virtualNetworks",
    "publicipaddresses": "Microsoft.Network/publicIPAddresses",
}
# (parent segment, child segment) -> child type name as in ids
CHILD_SEGMENTS = {
    ("virtualnetworks", "subnets"): "subnets",
    ("networksecuritygroups", "securityrules"): "securityRules",
    ("networksecuritygroups", "defaultsecurityrules"): "defaultSecurityRules",
    ("networkinterfaces", "ipconfigurations"): "ipConfigurations",
}
_TOP = r"(?P<kind>networksecuritygroups|networkinterfaces|virtualnetworks|publicipaddresses)"
_CHILD = r"(?P<child>subnets|securityrules|defaultsecurityrules|ipconfigurations)"
PROTOCOLS = ("Tcp", "Udp", "Icmp", "Esp", "Ah", "*")


def _resource_id(m: re.Match[str], kind: str, name: str) -> str:
    return f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}/providers/{TOP_TYPES[kind]}/{name}"


def _parent(emu: Emulator, m: re.Match[str]) -> Resource:
    emu.require_group(m["sub"], m["rg"])
    kind = m["kind"].lower()
    found = emu.store.get(_resource_id(m, kind, m["name"]))
    if found is None:
        raise not_found(TOP_TYPES[kind], m["name"], m["rg"])
    return found


def _child_kind(m: re.Match[str]) -> str:
    pair = (m["kind"].lower(), m["child"].lower())
    if pair not in CHILD_SEGMENTS:
        raise ArmError(
            400, "InvalidResourceType", f"The resource type '{m['kind']}/{m['child']}' could not be found."
        )
    return CHILD_SEGMENTS[pair]


def get_top(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    return Response(200, _parent(emu, m))


def list_group(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    emu.require_group(m["sub"], m["rg"])
    return page(emu, req, emu.store.list(TOP_TYPES[m["kind"].lower()], m["sub"], m["rg"]), _same)


def list_all(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    return page(emu, req, emu.store.list(TOP_TYPES[m["kind"].lower()], m["sub"]), _same)


def _same(resource: Resource) -> Resource:
    return resource


def get_child(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    parent = _parent(emu, m)
    child_type = _child_kind(m)
    child_id = f"{parent['id']}/{child_type}/{m['childname']}"
    found = emu.store.get(child_id)
    if found is None:
        raise child_not_found(child_id)
    return Response(200, found)


def list_children(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    parent = _parent(emu, m)
    child_type = _child_kind(m)
    items = child_array(parent, f"{parent['type']}/{child_type}") or []
    return page(emu, req, list(items), _same)


# ---------------------------------------------------------------------------------------------
# security rule writes


def _network_op_headers(emu: Emulator, op: Operation) -> dict[str, str]:
    base = (
        f"{emu.endpoint}/subscriptions/{op.subscription}/providers/Microsoft.Network/locations/{op.location}"
    )
    return {
        "Azure-AsyncOperation": f"{base}/operations/{op.id}?api-version={op.api_version}",
        "Location": f"{base}/operationResults/{op.id}?api-version={op.api_version}",
    }


def _validate_rule(nsg: Resource, name: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request: 'properties' is required.")
    props = dict(body["properties"])
    props.pop("provisioningState", None)
    protocol = props.get("protocol")
    if protocol not in PROTOCOLS:
        raise ArmError(
            400,
            "SecurityRuleInvalidProtocol",
            f"Security rule {name} has invalid Protocol {protocol!r}. "
            f"Allowed values: {', '.join(PROTOCOLS)}.",
        )
    priority = props.get("priority")
    if not isinstance(priority, int) or isinstance(priority, bool) or not 100 <= priority <= 4096:
        raise ArmError(
            400,
            "SecurityRuleInvalidPriority",
            f"Security rule has invalid Priority. Value provided: {priority}. Allowed range 100-4096.",
        )
    if props.get("access") not in ("Allow", "Deny"):
        raise ArmError(400, "SecurityRuleInvalidAccess", f"Security rule {name} has invalid Access value.")
    if props.get("direction") not in ("Inbound", "Outbound"):
        raise ArmError(
            400, "SecurityRuleInvalidDirection", f"Security rule {name} has invalid Direction value."
        )
    for singular, plural in (
        ("sourcePortRange", "sourcePortRanges"),
        ("destinationPortRange", "destinationPortRanges"),
        ("sourceAddressPrefix", "sourceAddressPrefixes"),
        ("destinationAddressPrefix", "destinationAddressPrefixes"),
    ):
        has_singular = props.get(singular) not in (None, "")
        has_plural = bool(props.get(plural))
        if has_singular and has_plural:
            raise ArmError(
                400,
                "SecurityRuleParameterContainsUnsupportedValue",
                f"Security rule {name} cannot specify both {singular} and {plural}.",
            )
        groups = (
            f"{singular[: -len('AddressPrefix')]}ApplicationSecurityGroups" if "Address" in singular else ""
        )
        if not has_singular and not has_plural and not (groups and props.get(groups)):
            raise ArmError(
                400,
                "SecurityRuleInvalidParameter",
                f"Security rule {name} is missing {singular} or {plural}.",
            )
    for other in (nsg.get("properties") or {}).get("securityRules") or ():
        other_props = other.get("properties") or {}
        if (
            str(other.get("name", "")).lower() != name.lower()
            and other_props.get("priority") == priority
            and other_props.get("direction") == props["direction"]
        ):
            raise ArmError(
                400,
                "SecurityRuleConflict",
                f"Security rule {name} conflicts with rule {other.get('name')}. "
                "Rules cannot have the same Priority and Direction.",
            )
    return props


def put_rule(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    nsg = _parent(emu, m)
    if _child_kind(m) != "securityRules":
        raise ArmError(405, "MethodNotAllowed", "The requested resource does not support http method 'PUT'.")
    name = m["childname"]
    props = _validate_rule(nsg, name, req.json_body())
    rule_id = f"{nsg['id']}/securityRules/{name}"
    existing = emu.store.get(rule_id)
    props["provisioningState"] = "Updating"
    rule: Resource = {
        "name": existing["name"] if existing else name,
        "id": existing["id"] if existing else rule_id,
        "type": "Microsoft.Network/networkSecurityGroups/securityRules",
        "etag": f'W/"{stable_guid(rule_id, emu.ops_counter())}"',
        "properties": props,
    }
    emu.store.put(rule)

    def complete() -> None:
        props["provisioningState"] = "Succeeded"

    op = emu.ops.create(
        provider="Microsoft.Network",
        subscription=m["sub"],
        location=str(nsg.get("location", "")),
        api_version=req.query["api-version"],
        seconds=emu.lro_seconds,
        on_complete=complete,
        kind="securityRule",
    )
    headers = _network_op_headers(emu, op)
    return Response(200 if existing else 201, rule, {"Azure-AsyncOperation": headers["Azure-AsyncOperation"]})


def delete_rule(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    nsg = _parent(emu, m)
    if _child_kind(m) != "securityRules":
        raise ArmError(
            405, "MethodNotAllowed", "The requested resource does not support http method 'DELETE'."
        )
    if not emu.store.delete(f"{nsg['id']}/securityRules/{m['childname']}"):
        return Response(204)
    op = emu.ops.create(
        provider="Microsoft.Network",
        subscription=m["sub"],
        location=str(nsg.get("location", "")),
        api_version=req.query["api-version"],
        seconds=emu.lro_seconds,
        kind="securityRuleDelete",
    )
    return Response(202, None, _network_op_headers(emu, op))


# ---------------------------------------------------------------------------------------------
# effective NSGs


def effective_nsgs(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    nic = _parent(emu, m)
    if m["kind"].lower() != "networkinterfaces":
        raise ArmError(
            400, "InvalidResourceType", "Effective security groups are listed for network interfaces."
        )
    vm_ref = ((nic.get("properties") or {}).get("virtualMachine") or {}).get("id")
    vm = emu.store.get(vm_ref) if isinstance(vm_ref, str) else None
    if vm is None or power_state(vm) != "running":
        raise ArmError(
            400,
            "NicNotAttachedToRunningVm",
            f"Network interface {nic['id']} is not attached to a running virtual machine. "
            "Effective security rules are only available while the VM is running.",
        )

    def complete() -> dict[str, Any]:
        return {"value": effective_groups(emu.store, nic)}

    op = emu.ops.create(
        provider="Microsoft.Network",
        subscription=m["sub"],
        location=str(nic.get("location", "")),
        api_version=req.query["api-version"],
        seconds=emu.lro_seconds,
        on_complete=complete,
        kind="effectiveNsg",
    )
    return Response(202, None, {"Location": _network_op_headers(emu, op)["Location"]})


# ---------------------------------------------------------------------------------------------
# operation polls


def _op(emu: Emulator, m: re.Match[str]) -> Operation:
    op = emu.ops.get(m["op"])
    if op is None or op.provider != "Microsoft.Network":
        raise ArmError(404, "OperationNotFound", f"The operation '{m['op']}' was not found.")
    return op


def operation_status(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    op = _op(emu, m)
    body: dict[str, Any] = {"status": op.status}
    if op.error:
        body["error"] = op.error
    return Response(200, body)


def operation_result(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    op = _op(emu, m)
    if not op.done:
        return Response(202, None, {"Location": _network_op_headers(emu, op)["Location"]})
    if op.status == "Failed":
        return Response(400, {"error": op.error})
    if op.result is None:
        return Response(204)
    return Response(200, op.result)


def routes() -> list[Route]:
    v = API_VERSIONS
    top = NET + "/" + _TOP
    one = top + r"/(?P<name>[^/]+)"
    child = one + "/" + _CHILD
    loc_ops = SUB + r"/providers/microsoft\.network/locations/(?P<loc>[^/]+)"
    return [
        route("GET", one, get_top, v),
        route("GET", top, list_group, v),
        route("GET", SUB + r"/providers/microsoft\.network/" + _TOP, list_all, v),
        route("GET", child + r"/(?P<childname>[^/]+)", get_child, v),
        route("PUT", child + r"/(?P<childname>[^/]+)", put_rule, v),
        route("DELETE", child + r"/(?P<childname>[^/]+)", delete_rule, v),
        route("GET", child, list_children, v),
        route("POST", one + r"/effectivenetworksecuritygroups", effective_nsgs, v),
        route("GET", loc_ops + r"/operations/(?P<op>[^/]+)", operation_status, v),
        route("GET", loc_ops + r"/operationresults/(?P<op>[^/]+)", operation_result, v),
    ]
