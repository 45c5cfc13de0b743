"""The target flags every VM command takes (VM, -n, -g, --ids, --all, --tag), checked once.

azrdp.targets validates names and IDs; this module adds what depends on the command line: a
default group from the environment never conflicts with --ids, and every error names the command
the user typed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from azrdp.errors import UsageError

if TYPE_CHECKING:
    from azrdp.targets import Targets

GROUP_ENV_VARS = ("AZRDP_DEFAULTS_GROUP", "AZURE_DEFAULTS_GROUP")
IDS_EXAMPLE = "--ids \"$(az vm list --query '[].id' -o tsv)\""


def group_from_env(group: str) -> bool:
    """Whether -g holds a default group from the environment rather than a typed flag."""
    defaults = {os.environ.get(name, "").strip().lower() for name in GROUP_ENV_VARS}
    return group.strip().lower() in defaults - {""}


def is_resource_id(value: str | None) -> bool:
    return bool(value and value.strip().lower().startswith("/subscriptions/"))


def resolve_targets(
    command: str,
    vm: str | None,
    name: str | None,
    resource_group: str | None,
    ids: list[str] | None,
    *,
    all_vms: bool = False,
    tag: str | None = None,
    one_vm: bool = False,
) -> Targets:
    """Targets for `azrdp <command>`; `one_vm` commands (undo, history) take exactly one VM."""
    from azrdp.targets import parse_targets, refuse_empty, split_ids

    id_values = split_ids(ids)
    if ids is not None and not id_values:
        raise UsageError("--ids was given without any ID.", fix=f"Pass VM resource IDs, e.g. {IDS_EXAMPLE}.")
    refuse_empty(vm, name, resource_group, ids)
    by_id = bool(id_values) or is_resource_id(vm)
    if by_id and resource_group:
        if group_from_env(resource_group):
            resource_group = None  # a default group from the environment does not conflict with IDs
        else:
            raise UsageError(
                "--ids cannot be combined with -g/--resource-group.",
                "An ID already names the group.",
                fix="Pass either --ids ID... or VM -g GROUP.",
            )
    vm_name = (vm or name or "").strip()
    usage = f"`azrdp {command} VM -g GROUP`" + ("" if one_vm else ", `-g GROUP` for every VM in it")
    if vm_name and not by_id and not resource_group:
        raise UsageError(
            f"VM '{vm_name}' needs its resource group.",
            fix=f"Add -g GROUP (or set AZRDP_DEFAULTS_GROUP), e.g. `azrdp {command} {vm_name} -g my-rg`.",
        )
    if not vm_name and not by_id and not resource_group and not all_vms:
        extra = "" if one_vm or command in ("repair",) else " or `--all`"
        raise UsageError(
            f"`azrdp {command}` needs a VM, and none was given.",
            fix=f"Name it: {usage}, `--ids ID`{extra}.",
        )
    if one_vm and not vm_name and not by_id:
        raise UsageError(
            f"`azrdp {command}` works on one VM, not on every VM of a resource group.",
            fix=f"Name the VM: `azrdp {command} VM -g {resource_group}`.",
        )
    targets = parse_targets(vm, name, resource_group, id_values, all_vms, tag)
    if one_vm and len(targets.vms) != 1:
        raise UsageError(
            f"`azrdp {command}` works on one VM; {len(targets.vms)} were given.",
            fix=f"Run it once per VM: `azrdp {command} VM -g GROUP`.",
        )
    return targets
