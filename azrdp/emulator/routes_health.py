"""Microsoft.ResourceHealth routes: the current availability status of VMs.

Shapes follow the official examples (Azure/azure-rest-api-specs, Microsoft.ResourceHealth,
AvailabilityStatus_GetByResource.json and AvailabilityStatuses_ListBySubscriptionId.json, 2024-02-01
and 2025-05-01): `{"id": "<resource id>/providers/Microsoft.ResourceHealth/availabilityStatuses/current",
"name": "current", "type": "Microsoft.ResourceHealth/AvailabilityStatuses", "location",
"properties": {"availabilityState", "title", "summary", "reasonType", "context", "category",
"detailedStatus", "occuredTime" (sic), "reportedTime", ...}}`.

A VM's status is its `platform.health` (see azrdp.emulator.platform) or, without one, follows its
power state: Available while it runs, Unavailable and user-initiated while stopped or deallocated.
The lists hold VMs only (real Azure lists every resource that reports health).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from azrdp.emulator.platform import availability_status
from azrdp.emulator.wire import RG, SUB, ArmError, Request, Response, Route, not_found, page, route

if TYPE_CHECKING:
    from azrdp.emulator.server import Emulator

# The provider's published api-versions (Azure/azure-rest-api-specs, specification/resourcehealth).
API_VERSIONS = frozenset(
    {
        "2015-01-01",
        "2017-07-01",
        "2018-07-01",
        "2018-08-01",
        "2020-05-01",
        "2020-05-01-preview",
        "2022-05-01",
        "2022-05-01-preview",
        "2022-10-01",
        "2024-02-01",
        "2025-05-01",
        "2026-07-01",
        "2026-08-01-preview",
    }
)
VM_TYPE = "Microsoft.Compute/virtualMachines"
HEALTH = r"/providers/microsoft\.resourcehealth/availabilitystatuses"


def _check_expand(req: Request) -> None:
    expand = req.query.get("$expand")
    if expand is not None and expand.lower() not in ("recommendedactions", ""):
        raise ArmError(400, "InvalidParameter", f"The value '{expand}' of '$expand' is not supported.")


def get_current(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    _check_expand(req)
    emu.require_group(m["sub"], m["rg"])
    vm_id = f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}/providers/{VM_TYPE}/{m['vm']}"
    vm = emu.store.get(vm_id)
    if vm is None:
        raise not_found(VM_TYPE, m["vm"], m["rg"])
    return Response(200, availability_status(vm, expand=bool(req.query.get("$expand"))))


def _listing(emu: Emulator, req: Request, items: list[dict[str, Any]]) -> Response:
    _check_expand(req)
    expand = bool(req.query.get("$expand"))
    return page(emu, req, items, lambda vm: availability_status(vm, expand=expand))


def list_subscription(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    return _listing(emu, req, emu.store.list(VM_TYPE, m["sub"]))


def list_group(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    emu.require_group(m["sub"], m["rg"])
    return _listing(emu, req, emu.store.list(VM_TYPE, m["sub"], m["rg"]))


def routes() -> list[Route]:
    v = API_VERSIONS
    vm = RG + r"/providers/microsoft\.compute/virtualmachines/(?P<vm>[^/]+)"
    return [
        route("GET", vm + HEALTH + r"/current", get_current, v),
        route("GET", SUB + HEALTH, list_subscription, v),
        route("GET", RG + HEALTH, list_group, v),
    ]
