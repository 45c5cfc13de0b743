"""Request/response types shared by the route modules, ARM error bodies and paging."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from azrdp.emulator.server import Emulator

JSON = "application/json; charset=utf-8"


@dataclass
class Request:
    method: str
    path: str  # percent-decoded, original case
    query: dict[str, str]
    body: bytes
    headers: dict[str, str]  # lower-cased names
    number: int = 0  # the ARM request's 1-based number since the emulator started (faults' `at`)

    def json_body(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArmError(
                400,
                "InvalidRequestContent",
                f"The request content was invalid and could not be deserialized: {exc}.",
            ) from None


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-serialisable, pre-encoded bytes, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)


class ArmError(Exception):
    """An ARM-shaped error response: {"error": {"code", "message", "target"?, "details"?}}."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details
        self.target = target

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def response(self) -> Response:
        return Response(self.status, self.body(), dict(self.headers))


Handler = Callable[["Emulator", Request, "re.Match[str]"], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    api_line: str  # key of apiversions.PUBLISHED
    resource_type: str  # for ARM's messages; "" = the type named in the action
    action: str  # the RBAC action ARM checks, e.g. "Microsoft.Compute/virtualMachines/read"
    anonymous: bool = False  # served without a bearer token (ARM's cloud metadata)
    collection: bool = False  # a list: authorization is checked on the group or subscription

    def action_for(self, match: re.Match[str]) -> str:
        """The RBAC action, with `{kind}`, `{child}` and `{action}` filled from the path."""
        if "{" not in self.action:
            return self.action
        names = {k: canonical(v) for k, v in match.groupdict().items() if v is not None}
        return self.action.format_map(_Missing(names))

    def scope_for(self, path: str) -> str:
        """The scope ARM names in a 403: the resource, or the group/subscription of a list."""
        trimmed = path.rstrip("/")
        lowered = trimmed.lower()
        if self.collection:
            cut = lowered.find("/providers/")
            return trimmed[:cut] if cut > 0 else trimmed
        if self.method == "POST":
            return trimmed.rsplit("/", 1)[0]
        return trimmed


class _Missing(dict[str, str]):
    def __missing__(self, name: str) -> str:
        return "{" + name + "}"


# URL segments (lower-cased) -> the casing ARM uses in types and RBAC actions
_CANONICAL = {
    name.lower(): name
    for name in (
        "virtualMachines",
        "networkSecurityGroups",
        "networkInterfaces",
        "virtualNetworks",
        "publicIPAddresses",
        "applicationSecurityGroups",
        "subnets",
        "securityRules",
        "defaultSecurityRules",
        "ipConfigurations",
        "loadBalancers",
        "routeTables",
        "networkWatchers",
        "frontendIPConfigurations",
        "backendAddressPools",
        "inboundNatRules",
        "loadBalancingRules",
        "probes",
        "routes",
        "start",
        "powerOff",
        "deallocate",
        "restart",
        "redeploy",
        "reapply",
    )
}


def canonical(segment: str) -> str:
    return _CANONICAL.get(segment.lower(), segment)


SUB = r"/subscriptions/(?P<sub>[^/]+)"
RG = SUB + r"/resourcegroups/(?P<rg>[^/]+)"
PROVIDERS = RG + r"/providers"


def route(
    method: str,
    pattern: str,
    handler: Handler,
    api_line: str,
    *,
    action: str,
    resource_type: str = "",
    anonymous: bool = False,
    collection: bool = False,
) -> Route:
    """A route served under the published api-versions of `api_line` (see apiversions.py)."""
    return Route(
        method,
        re.compile(pattern + r"/?$", re.IGNORECASE),
        handler,
        api_line,
        resource_type,
        action,
        anonymous,
        collection,
    )


def not_found(resource_type: str, name: str, resource_group: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def child_not_found(resource_id: str) -> ArmError:
    return ArmError(404, "NotFound", f"Resource {resource_id} not found.")


def page(emu: Emulator, req: Request, items: list[Any], render: Callable[[Any], Any]) -> Response:
    """One page of a list, with an absolute `nextLink` (api-version included) when more remain."""
    try:
        start = int(req.query.get("$skiptoken", "0"))
    except ValueError:
        raise ArmError(400, "InvalidSkipToken", "The $skiptoken value is not valid.") from None
    size = emu.page_size
    chunk = items[start : start + size]
    body: dict[str, Any] = {"value": [render(item) for item in chunk]}
    if start + size < len(items):
        query = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        query["$skiptoken"] = str(start + size)
        body["nextLink"] = f"{emu.endpoint}{quote(req.path)}?{urlencode(query)}"
    return Response(200, body)
