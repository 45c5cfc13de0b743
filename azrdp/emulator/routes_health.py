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
    h = "Microsoft.ResourceHealth"
    read, kind = f"{h}/availabilityStatuses/read", "availabilityStatuses"
    vm = RG + r"/providers/microsoft\.compute/virtualmachines/(?P<vm>[^/]+)"
    return [
        route("GET", vm + HEALTH + r"/current", get_current, h, action=read, resource_type=kind),
        route("GET", SUB + HEALTH, list_subscription, h, action=read, resource_type=kind, collection=True),
        route("GET", RG + HEALTH, list_group, h, action=read, resource_type=kind, collection=True),
    ]
