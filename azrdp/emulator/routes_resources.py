"""Microsoft.Resources routes and ARM's cloud metadata: what the official Azure CLI needs besides
the Compute and Network providers (`az cloud register`, `az login --identity`, `az group show`,
`az group exists`, `az resource list`), and the subscription list azrdp itself uses to look a
subscription up by name."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from azrdp.emulator.authz import ARM_AUDIENCES, EMULATOR_TENANT
from azrdp.emulator.wire import RG, SUB, ArmError, Request, Response, Route, page, route

if TYPE_CHECKING:
    from azrdp.emulator.server import Emulator

DISPLAY_NAME = "azrdp emulator"
CLOUD_NAME = "azrdp-emulator"
GROUP_TYPE = "Microsoft.Resources/resourceGroups"
# $filter clauses of GET /subscriptions/{sub}/resources that the emulator evaluates.
_CLAUSE = re.compile(r"^\s*(?P<field>\w+)\s+eq\s+'(?P<value>[^']*)'\s*$", re.IGNORECASE)
_FIELDS = {"resourcegroup", "name", "location", "resourcetype", "tagname", "tagvalue"}
_EXPANDS = {"createdtime", "changedtime", "provisioningstate"}


def subscription_list(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    sub = emu.subscription_id
    return Response(
        200,
        {
            "value": [
                {
                    "id": f"/subscriptions/{sub}",
                    "subscriptionId": sub,
                    "tenantId": EMULATOR_TENANT,
                    "displayName": DISPLAY_NAME,
                    "state": "Enabled",
                    "subscriptionPolicies": {"spendingLimit": "Off", "quotaId": "PayAsYouGo_2014-09-01"},
                    "authorizationSource": "RoleBased",
                }
            ]
        },
    )


def metadata_endpoints(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    """ARM's cloud metadata, as `az cloud register --endpoint-resource-manager` reads it: the
    emulator is its own resource manager and login endpoint, so nothing points off loopback."""
    base = emu.endpoint
    return Response(
        200,
        {
            "name": CLOUD_NAME,
            "portal": base,
            "resourceManager": base + "/",
            "authentication": {
                "loginEndpoint": base,
                "audiences": [ARM_AUDIENCES[0], ARM_AUDIENCES[2]],
                "tenant": "common",
                "identityProvider": "AAD",
            },
            "gallery": base + "/",
            "graph": base + "/",
            "graphAudience": base + "/",
            "media": base + "/",
            "batch": base + "/",
            "sqlManagement": base + "/",
            "vmImageAliasDoc": base + "/vmImageAliasDoc.json",
            "activeDirectoryDataLake": base + "/",
            "microsoftGraphResourceId": base + "/",
            "suffixes": {
                "storage": "core.windows.net",
                "keyVaultDns": "vault.azure.net",
                "sqlServerHostname": "database.windows.net",
                "acrLoginServer": "azurecr.io",
            },
        },
    )


def _group_body(emu: Emulator, sub: str, group: dict[str, str]) -> dict[str, Any]:
    return {
        "id": f"/subscriptions/{sub}/resourceGroups/{group['name']}",
        "name": group["name"],
        "type": GROUP_TYPE,
        "location": group.get("location") or emu.scenario.location,
        "tags": {},
        "properties": {"provisioningState": "Succeeded"},
    }


def _group(emu: Emulator, m: re.Match[str]) -> dict[str, str]:
    found = emu.store.resource_group(m["sub"], m["rg"])
    if found is None:
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{m['rg']}' could not be found.")
    return found


def group_get(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    return Response(200, _group_body(emu, m["sub"], _group(emu, m)))


def group_head(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    """`az group exists`: 204 when the group exists, 404 with no body when not."""
    if emu.store.resource_group(m["sub"], m["rg"]) is None:
        return Response(404)
    return Response(204)


def group_list(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    groups = emu.store.resource_groups(m["sub"])
    return page(emu, req, groups, lambda g: _group_body(emu, m["sub"], g))


def _generic(resource: dict[str, Any], expand: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": resource["id"],
        "name": resource.get("name"),
        "type": resource.get("type"),
        "location": resource.get("location"),
        "tags": resource.get("tags") or {},
    }
    for optional in ("sku", "kind", "managedBy", "identity", "zones"):
        if optional in resource:
            out[optional] = resource[optional]
    if "provisioningstate" in expand:
        out["provisioningState"] = (resource.get("properties") or {}).get("provisioningState", "Succeeded")
    if "createdtime" in expand or "changedtime" in expand:
        created = (resource.get("properties") or {}).get("timeCreated", "2025-01-15T09:30:00.0000000Z")
        if "createdtime" in expand:
            out["createdTime"] = created
        if "changedtime" in expand:
            out["changedTime"] = created
    return out


def _resource_filter(raw: str | None) -> list[tuple[str, str]]:
    """`field eq 'value'` clauses joined by `and`; 400 InvalidFilterInQueryString for anything else."""
    if raw is None or not raw.strip():
        return []
    clauses = []
    for part in re.split(r"\s+and\s+", raw.strip(), flags=re.IGNORECASE):
        found = _CLAUSE.match(part)
        if found is None or found["field"].lower() not in _FIELDS:
            raise ArmError(
                400,
                "InvalidFilterInQueryString",
                f"The filter '{raw}' is invalid. Supported: resourceGroup, name, location, resourceType, "
                "tagName and tagValue with 'eq', joined by 'and'.",
            )
        clauses.append((found["field"].lower(), found["value"]))
    return clauses


def _matches(resource: dict[str, Any], clauses: list[tuple[str, str]]) -> bool:
    tags = {str(k).lower(): str(v).lower() for k, v in (resource.get("tags") or {}).items()}
    tag_name = next((v.lower() for f, v in clauses if f == "tagname"), None)
    parts = str(resource["id"]).split("/")
    actual = {
        "resourcegroup": parts[4].lower() if len(parts) > 4 else "",
        "name": str(resource.get("name", "")).lower(),
        "location": str(resource.get("location", "")).lower(),
        "resourcetype": str(resource.get("type", "")).lower(),
    }
    for field_name, value in clauses:
        wanted = value.lower()
        if field_name == "tagname":
            ok = wanted in tags
        elif field_name == "tagvalue":
            ok = tag_name is not None and tags.get(tag_name) == wanted
        else:
            ok = actual[field_name] == wanted
        if not ok:
            return False
    return True


def _expand(req: Request) -> set[str]:
    raw = req.query.get("$expand") or ""
    wanted = {part.strip().lower() for part in raw.split(",") if part.strip()}
    unknown = sorted(wanted - _EXPANDS)
    if unknown:
        raise ArmError(
            400,
            "InvalidParameter",
            f"The value '{unknown[0]}' of parameter '$expand' is not allowed. Allowed values are "
            "'createdTime', 'changedTime', 'provisioningState'.",
            target="$expand",
        )
    return wanted


def resources_in_group(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    _group(emu, m)
    clauses, expand = _resource_filter(req.query.get("$filter")), _expand(req)
    items = [r for r in emu.store.top_level(m["sub"], m["rg"]) if _matches(r, clauses)]
    return page(emu, req, items, lambda r: _generic(r, expand))


def resources_in_subscription(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    clauses, expand = _resource_filter(req.query.get("$filter")), _expand(req)
    items = [r for r in emu.store.top_level(m["sub"]) if _matches(r, clauses)]
    return page(emu, req, items, lambda r: _generic(r, expand))


def routes() -> list[Route]:
    r = "Microsoft.Resources"
    groups = f"{r}/subscriptions/resourceGroups"
    return [
        route(
            "GET",
            r"/subscriptions",
            subscription_list,
            "Microsoft.Resources/subscriptions",
            action=f"{r}/subscriptions/read",
            resource_type="subscriptions",
        ),
        route(
            "GET",
            r"/metadata/endpoints",
            metadata_endpoints,
            "metadata",
            action="",
            resource_type="metadata",
            anonymous=True,
        ),
        route(
            "GET",
            SUB + r"/resourcegroups",
            group_list,
            r,
            action=f"{groups}/read",
            collection=True,
            resource_type="resourceGroups",
        ),
        route("GET", RG, group_get, r, action=f"{groups}/read", resource_type="resourceGroups"),
        route("HEAD", RG, group_head, r, action=f"{groups}/read", resource_type="resourceGroups"),
        route(
            "GET",
            RG + r"/resources",
            resources_in_group,
            r,
            action=f"{groups}/resources/read",
            resource_type="resources",
            collection=True,
        ),
        route(
            "GET",
            SUB + r"/resources",
            resources_in_subscription,
            r,
            action=f"{r}/subscriptions/resources/read",
            resource_type="resources",
            collection=True,
        ),
    ]
