"""Which role grants an RBAC action, and which checks and repairs need it (pure).

Used to turn a 403 `AuthorizationFailed` into an error that names the missing action, the smallest
built-in role that grants it and azrdp's own custom role (docs/rbac.md). The built-in roles'
action lists are from learn.microsoft.com/azure/role-based-access-control/built-in-roles (Reader:
`*/read`; Virtual Machine Contributor: `Microsoft.Compute/virtualMachines/*` and
`Microsoft.Network/networkInterfaces/*` among others; Network Contributor: `Microsoft.Network/*`).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

# Smallest first: the first role whose patterns match is the one suggested.
BUILT_IN_ROLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Reader", ("*/read",)),
    (
        "Virtual Machine Contributor",
        (
            "Microsoft.Compute/virtualMachines/*",
            "Microsoft.Network/networkInterfaces/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ),
    ),
    ("Network Contributor", ("Microsoft.Network/*",)),
)
CHECKS_ROLE = "azrdp diagnostician"
REPAIRS_ROLE = "azrdp operator"

_ACTION = re.compile(r"perform action '(?P<action>[^']+)'")
_SCOPE = re.compile(r"over scope '(?P<scope>[^']+)'")


@dataclass(frozen=True)
class Denied:
    """What a 403 says: the action refused and the scope it was refused on ('' when not said)."""

    action: str
    scope: str


def parse_denial(message: str) -> Denied:
    action = _ACTION.search(message)
    scope = _SCOPE.search(message)
    return Denied(action["action"] if action else "", scope["scope"] if scope else "")


def built_in_role(action: str) -> str | None:
    """The smallest built-in role that grants `action`, or None when none of the usual ones does."""
    for role, patterns in BUILT_IN_ROLES:
        if any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns):
            return role
    return None


def needed_by(action: str) -> tuple[list[str], list[str]]:
    """(check ids, repair ids) that declare `action`, from the registries."""
    from azrdp.catalog import build_catalog

    catalog = build_catalog()
    wanted = action.lower()
    checks = [c.id for c in catalog.checks if wanted in (a.lower() for a in c.rbac)]
    repairs = [r.id for r in catalog.repairs if wanted in (a.lower() for a in r.rbac)]
    return checks, repairs


def grant_hint(action: str, scope: str = "") -> str:
    """One sentence: which role to ask for so that `action` is allowed (on `scope`)."""
    role = built_in_role(action)
    checks, repairs = needed_by(action)
    custom = CHECKS_ROLE if checks else REPAIRS_ROLE if repairs else ""
    where = f" on {scope}" if scope else ""
    options = [f"{role} (built-in)"] if role else []
    if custom:
        options.append(f"'{custom}' (custom role, docs/rbac.md)")
    if not options:
        return f"Ask for a role that grants '{action}'{where} (see `azrdp checks list`)."
    verb = "either grants" if len(options) > 1 else "it grants"
    return f"Ask for {' or '.join(options)}{where}; {verb} '{action}'."
