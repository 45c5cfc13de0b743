"""Microsoft.Authorization permissions: what the caller may do at a resource group or a resource.

`GET .../resourcegroups/{rg}/providers/Microsoft.Authorization/permissions` and
`GET .../resourcegroups/{rg}/providers/{ns}/{type}/{name}/providers/Microsoft.Authorization/permissions`
(operations Permissions_ListForResourceGroup / Permissions_ListForResource of
specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/
authorization-RoleDefinitionsCalls.json): `{"value": [{"actions", "notActions", "dataActions",
"notDataActions"}]}`, one entry per role the caller holds there.

The emulator's caller holds one role, `*` minus what the `forbidden` faults take away for good
(no `probability`, `at`, `times` or `after`; a transient refusal is no role). A fault narrowed to a
VM (`vm`) removes the action at the group too, since a role assigned at the group would grant it
on that VM; at another resource of the group the action is granted (as by a role assigned there).
A fault narrowed by method or path cannot be a role, so it is not listed (it is still enforced).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from azrdp.emulator.faults import Fault
from azrdp.emulator.wire import RG, Request, Response, not_found, route

if TYPE_CHECKING:
    from azrdp.emulator.server import Emulator
    from azrdp.emulator.wire import Route

ACTION = "Microsoft.Authorization/permissions/read"


def _for_good(fault: Fault) -> bool:
    return (
        fault.kind == "forbidden"
        and fault.probability is None
        and fault.at is None
        and fault.times is None
        and not fault.after
        and not (fault.method or fault.path_contains or fault.query_contains)
    )


def _not_actions(emu: Emulator, resource_path: str | None) -> list[str]:
    out = []
    for fault in emu.faults.faults:
        if not _for_good(fault):
            continue
        elsewhere = resource_path is not None and fault.vm is not None
        if elsewhere and f"/virtualmachines/{fault.vm}/".lower() not in f"{resource_path}/".lower():
            continue  # a VM-narrowed refusal, and this is another resource: granted here
        out.append(fault.action or "*")
    return sorted(set(out))


def _answer(emu: Emulator, resource_path: str | None) -> Response:
    entry = {
        "actions": ["*"],
        "notActions": _not_actions(emu, resource_path),
        "dataActions": [],
        "notDataActions": [],
    }
    return Response(200, {"value": [entry]})


def group_permissions(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    emu.require_group(m["sub"], m["rg"])
    return _answer(emu, None)


def resource_permissions(emu: Emulator, req: Request, m: re.Match[str]) -> Response:
    emu.require_group(m["sub"], m["rg"])
    resource_path = req.path[: req.path.lower().rindex("/providers/microsoft.authorization/")]
    if emu.store.get(resource_path) is None:
        parts = m["rest"].split("/")
        raise not_found(f"{m['ns']}/{'/'.join(parts[0::2])}", parts[-1], m["rg"])
    return _answer(emu, resource_path)


def routes() -> list[Route]:
    a = "Microsoft.Authorization"
    return [
        route(
            "GET",
            RG + r"/providers/microsoft\.authorization/permissions",
            group_permissions,
            a,
            action=ACTION,
            resource_type="permissions",
        ),
        route(
            "GET",
            RG + r"/providers/(?P<ns>[^/]+)/(?P<rest>.+)/providers/microsoft\.authorization/permissions",
            resource_permissions,
            a,
            action=ACTION,
            resource_type="permissions",
        ),
    ]
