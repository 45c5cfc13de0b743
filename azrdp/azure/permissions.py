"""What the signed-in identity may do, asked before the first change ("RBAC where it can be known").

ARM lists the caller's permissions at a resource group or a resource (Permissions_ListForResourceGroup
and Permissions_ListForResource, api-version 2022-04-01, in the REST specs'
specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/
authorization-RoleDefinitionsCalls.json): one entry per role held there, each with `actions` and
`notActions`. An action is granted when one entry's `actions` match it and that entry's
`notActions` do not (learn.microsoft.com/azure/role-based-access-control/role-definitions: a
NotActions exclusion is no deny; another role may grant the action).

What this list cannot show: deny assignments and conditions. So it only ever *refuses* when an
action is provably missing; when the list cannot be read (no permission to read it, an error), or
when it grants the action, the write is attempted and a 403 is still handled where it happens.
The group's list is read once per group; a resource's own list only when the group's lacks an
action (a role may be assigned on the resource alone).
"""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azrdp.azure.clients import Clients

API_VERSION = "2022-04-01"
_log = logging.getLogger(__name__)

Permissions = list[tuple[tuple[str, ...], tuple[str, ...]]]  # (actions, notActions) per role


def allows(permissions: Permissions, action: str) -> bool:
    """RBAC's rule: some role's actions match and that role's notActions do not (case-insensitive)."""
    wanted = action.lower()
    for actions, not_actions in permissions:
        if any(fnmatch.fnmatchcase(wanted, a.lower()) for a in actions) and not any(
            fnmatch.fnmatchcase(wanted, n.lower()) for n in not_actions
        ):
            return True
    return False


def _entries(body: Mapping[str, Any]) -> Permissions:
    out: Permissions = []
    for item in body.get("value") or ():
        if isinstance(item, Mapping):
            actions = tuple(str(a) for a in item.get("actions") or () if isinstance(a, str))
            not_actions = tuple(str(a) for a in item.get("notActions") or () if isinstance(a, str))
            out.append((actions, not_actions))
    return out


def group_of_scope(scope: str) -> str:
    """The resource group scope of a resource id (`/subscriptions/s/resourceGroups/g`)."""
    parts = scope.split("/")
    return "/".join(parts[:5]) if len(parts) >= 5 else scope


class PermissionReader:
    """Permissions per scope, read once and shared by every VM of a run (None: not knowable)."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self._lock = threading.Lock()
        self._scope_locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, Permissions | None] = {}

    def at(self, scope: str) -> Permissions | None:
        key = scope.lower().rstrip("/")
        with self._lock:
            scope_lock = self._scope_locks.setdefault(key, threading.Lock())
        with scope_lock:  # the VMs of one group wait for one read of it, not one each
            if key not in self._cache:
                self._cache[key] = self._read(scope.rstrip("/"))
            return self._cache[key]

    def _read(self, scope: str) -> Permissions | None:
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        subscription = scope.split("/")[2] if scope.lower().startswith("/subscriptions/") else ""
        client = (self.clients.for_subscription(subscription) if subscription else self.clients).compute
        url: str | None = f"{scope}/providers/Microsoft.Authorization/permissions?api-version={API_VERSION}"
        out: Permissions = []
        try:
            while url:
                response = client.send_request(HttpRequest("GET", url))
                if response.status_code != 200:
                    _log.debug("permissions at %s: HTTP %s; not knowable", scope, response.status_code)
                    return None
                body = response.json()
                out.extend(_entries(body))
                url = body.get("nextLink") if isinstance(body, Mapping) else None
        except (AzureError, ValueError) as exc:
            _log.debug("permissions at %s could not be read: %s", scope, exc)
            return None
        return out

    def missing(self, needs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """The (scope, action) pairs provably not granted: not at the scope's group, nor at the scope."""
        out = []
        for scope, action in needs:
            group = self.at(group_of_scope(scope))
            if group is not None and allows(group, action):
                continue
            own = self.at(scope)
            if own is not None and not allows(own, action):
                out.append((scope, action))
        return out


def refusal(missing: Sequence[tuple[str, str]], vm_name: str) -> Any:
    """The error for a VM whose repair needs actions this identity provably lacks."""
    from azrdp.errors import ForbiddenError
    from azrdp.rbac import grant_hint

    scope, action = missing[0]
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    return ForbiddenError(
        f"Nothing was changed on VM '{vm_name}': this identity lacks the RBAC action '{action}' on "
        f"{scope}{more}, which the planned repair needs.",
        "Azure lists the identity's permissions there without it, so azrdp refuses before the first "
        "change instead of failing half-way.",
        grant_hint(action, scope),
    )
