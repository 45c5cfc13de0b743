"""Microsoft.Network routes: NSGs and security rules, NICs (+ effective NSGs), VNets, subnets, public IPs."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from azrdp.emulator.builders import stable_guid
from azrdp.emulator.effective import effective_groups
from azrdp.emulator.ids import key
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

NET = PROVIDERS + r"/microsoft\.network"
# URL segment (lower-cased) -> ARM type
TOP_TYPES = {
    "networksecuritygroups": "Microsoft.Network/networkSecurityGroups",
    "networkinterfaces": "Microsoft.Network/networkInterfaces",
    "virtualnetworks": "Microsoft.Network/virtualNetworks",
    "publicipaddresses": "Microsoft.Network/publicIPAddresses",
    "applicationsecuritygroups": "Microsoft.Network/applicationSecurityGroups",
}
# (parent segment, child segment) -> child type name as in ids
CHILD_SEGMENTS = {
    ("virtualnetworks", "subnets"): "subnets",
    ("networksecuritygroups", "securityrules"): "securityRules",
    ("networksecuritygroups", "defaultsecurityrules"): "defaultSecurityRules",
    ("networkinterfaces", "ipconfigurations"): "ipConfigurations",
}
_TOP = (
    r"(?P<kind>networksecuritygroups|networkinterfaces|virtualnetworks|publicipaddresses"
    r"|applicationsecuritygroups)"
)
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


_TAG = re.compile(r"^[A-Za-z][A-Za-z0-9.\-]*$")
_SIDES = ("source", "destination")


def _cap(side: str) -> str:
    return side[:1].upper() + side[1:]


def _port_error(value: Any) -> ArmError:
    return ArmError(
        400,
        "SecurityRuleInvalidPortRange",
        f"Security rule has invalid Port range. Value provided: {value}. Value should be an integer OR "
        "integer range with '-' delimiter. Valid range 0-65535.",
    )


def _check_port(value: Any) -> None:
    text = str(value).strip()
    if text == "*":
        return
    low, dash, high = text.partition("-")
    try:
        first, last = int(low), int(high) if dash else int(low)
    except ValueError:
        raise _port_error(value) from None
    if (
        not (0 <= first <= last <= 65535)
        or not low.strip().isdigit()
        or (dash and not high.strip().isdigit())
    ):
        raise _port_error(value)


def _bad_prefix(rule_id: str, value: Any) -> ArmError:
    return ArmError(
        400,
        "SecurityRuleInvalidAddressPrefix",
        f"Security rule {rule_id} has invalid Address prefix. Value provided: {value}",
    )


def _check_address(rule_id: str, value: Any, *, plural_field: str | None) -> None:
    """`*`, a service tag or an IPv4/IPv6 address or CIDR; the plural lists take addresses only."""
    text = str(value).strip() if isinstance(value, str) else ""
    if not text:
        raise _bad_prefix(rule_id, value)
    if text == "*" or _TAG.match(text):
        if plural_field is not None:
            raise ArmError(
                400,
                "SecurityRuleParameterContainsUnsupportedValue",
                f"Security rule parameter {plural_field} for rule with Id {rule_id} cannot specify "
                "existing VIRTUALNETWORK, INTERNET, AZURELOADBALANCER, '*' or system tags. "
                f"Unsupported value used: {text}.",
            )
        return
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise _bad_prefix(rule_id, text) from None


def _non_empty(value: Any) -> bool:
    if isinstance(value, list):
        return len(value) > 0
    return value not in (None, "")


def _validate_rule(emu: Emulator, nsg: Resource, name: str, body: Any) -> dict[str, Any]:
    """Refuse what the network RP refuses, with its codes and messages.

    Sources: the address fields of one side are mutually exclusive and one is required (Azure
    azure-mgmt-network 1.6.0 changelog; message from Azure/azure-cli#8615); tags are refused in the
    plural lists and bad prefixes named (Azure/azure-rest-api-specs network examples,
    hashicorp/terraform-provider-azurerm#5617, Azure/azure-sdk-for-java#33291).
    """
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request: 'properties' is required.")
    props = dict(body["properties"])
    props.pop("provisioningState", None)
    rule_id = f"{nsg['id']}/securityRules/{name}"
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
    for side in _SIDES:
        cap = _cap(side)
        ports = [f"{side}PortRanges", f"{side}PortRange"]
        given = [f for f in ports if _non_empty(props.get(f))]
        if len(given) != 1:
            raise ArmError(
                400,
                "SecurityRuleInvalidParameter",
                f"Security rule with Id {rule_id} must specify a non empty value for exactly one of: "
                f"{cap}PortRanges, {cap}PortRange.",
            )
        values = props[given[0]] if isinstance(props[given[0]], list) else [props[given[0]]]
        for value in values:
            _check_port(value)
        fields = [f"{side}AddressPrefixes", f"{side}AddressPrefix", f"{side}ApplicationSecurityGroups"]
        given = [f for f in fields if _non_empty(props.get(f))]
        if len(given) != 1:
            raise ArmError(
                400,
                "SecurityRuleInvalidParameter",
                f"Security rule with Id {rule_id} must specify a non empty value for exactly one of: "
                f"{cap}AddressPrefixes, {cap}AddressPrefix, {cap}ApplicationSecurityGroups.",
            )
        chosen = given[0]
        if chosen.endswith("AddressPrefix"):
            _check_address(rule_id, props[chosen], plural_field=None)
        elif chosen.endswith("AddressPrefixes"):
            if not isinstance(props[chosen], list):
                raise _bad_prefix(rule_id, props[chosen])
            for value in props[chosen]:
                _check_address(rule_id, value, plural_field=f"{cap}AddressPrefixes")
        else:
            groups = props[chosen] if isinstance(props[chosen], list) else [props[chosen]]
            for group in groups:
                asg_id = group.get("id") if isinstance(group, dict) else None
                if not isinstance(asg_id, str) or emu.store.get(asg_id) is None:
                    raise ArmError(
                        400,
                        "InvalidResourceReference",
                        f"Resource {asg_id} referenced by resource {rule_id} was not found. Please make "
                        "sure that the referenced resource exists, and that both resources are in the same "
                        "region.",
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


def _begin_nsg_write(emu: Emulator, req: Request, m: re.Match[str], nsg: Resource) -> Operation:
    """One write on an NSG: refused while another runs; the NSG and every rule get one new ETag and
    the NSG shows `Updating` until the write completes (NRP ignores If-Match on these PUTs:
    Azure/azure-rest-api-specs#6789)."""
    nsg_key = key(nsg["id"])
    running = emu.ops.in_progress(nsg_key, "nsgWrite")
    if running is not None:
        raise ArmError(
            409,
            "AnotherOperationInProgress",
            "Another operation on this or dependent resource is in progress. To retrieve status of the "
            f"operation use uri: {_network_op_headers(emu, running)['Azure-AsyncOperation']}.",
        )
    props = nsg.setdefault("properties", {})
    etag = f'W/"{stable_guid(nsg["id"], emu.ops_counter())}"'
    nsg["etag"] = etag
    for array in ("securityRules", "defaultSecurityRules"):
        for rule in props.get(array) or ():
            rule["etag"] = etag
    props["provisioningState"] = "Updating"

    def complete() -> None:
        props["provisioningState"] = "Succeeded"
        for rule in props.get("securityRules") or ():
            (rule.setdefault("properties", {}))["provisioningState"] = "Succeeded"

    return emu.ops.create(
        provider="Microsoft.Network",
        subscription=m["sub"],
        location=str(nsg.get("location", "")),
        api_version=req.query["api-version"],
        seconds=emu.lro_seconds,
        on_complete=complete,
        resource_key=nsg_key,
        kind="nsgWrite",
    )


def put_rule(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    nsg = _parent(emu, m)
    if _child_kind(m) != "securityRules":
        raise ArmError(405, "MethodNotAllowed", "The requested resource does not support http method 'PUT'.")
    name = m["childname"]
    props = _validate_rule(emu, nsg, name, req.json_body())
    rule_id = f"{nsg['id']}/securityRules/{name}"
    existing = emu.store.get(rule_id)
    op = _begin_nsg_write(emu, req, m, nsg)
    props["provisioningState"] = "Updating"
    rule: Resource = {
        "name": existing["name"] if existing else name,
        "id": existing["id"] if existing else rule_id,
        "type": "Microsoft.Network/networkSecurityGroups/securityRules",
        "etag": nsg["etag"],
        "properties": props,
    }
    emu.store.put(rule)
    headers = _network_op_headers(emu, op)
    return Response(200 if existing else 201, rule, {"Azure-AsyncOperation": headers["Azure-AsyncOperation"]})


def delete_rule(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    nsg = _parent(emu, m)
    if _child_kind(m) != "securityRules":
        raise ArmError(
            405, "MethodNotAllowed", "The requested resource does not support http method 'DELETE'."
        )
    rule_id = f"{nsg['id']}/securityRules/{m['childname']}"
    if emu.store.get(rule_id) is None:
        return Response(204)
    op = _begin_nsg_write(emu, req, m, nsg)
    emu.store.delete(rule_id)
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
    n = "Microsoft.Network"
    top = NET + "/" + _TOP
    one = top + r"/(?P<name>[^/]+)"
    child = one + "/" + _CHILD
    loc_ops = SUB + r"/providers/microsoft\.network/locations/(?P<loc>[^/]+)"
    read = n + "/{kind}/read"
    child_read = n + "/{kind}/{child}/read"
    return [
        route("GET", one, get_top, n, action=read),
        route("GET", top, list_group, n, action=read, collection=True),
        route(
            "GET", SUB + r"/providers/microsoft\.network/" + _TOP, list_all, n, action=read, collection=True
        ),
        route("GET", child + r"/(?P<childname>[^/]+)", get_child, n, action=child_read),
        route("PUT", child + r"/(?P<childname>[^/]+)", put_rule, n, action=n + "/{kind}/{child}/write"),
        route(
            "DELETE", child + r"/(?P<childname>[^/]+)", delete_rule, n, action=n + "/{kind}/{child}/delete"
        ),
        route("GET", child, list_children, n, action=child_read, collection=True),
        route(
            "POST",
            one + r"/effectivenetworksecuritygroups",
            effective_nsgs,
            n,
            action=f"{n}/networkInterfaces/effectiveNetworkSecurityGroups/action",
        ),
        route(
            "GET",
            loc_ops + r"/operations/(?P<op>[^/]+)",
            operation_status,
            n,
            action=f"{n}/locations/operations/read",
            resource_type="locations/operations",
        ),
        route(
            "GET",
            loc_ops + r"/operationresults/(?P<op>[^/]+)",
            operation_result,
            n,
            action=f"{n}/locations/operationResults/read",
            resource_type="locations/operationResults",
        ),
    ]
