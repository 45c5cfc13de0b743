"""Target parsing, az style, and validation of the values a flow is built from.

A target is one or more VMs (positional name or ID, -n/-g, --ids), every VM of a resource group
(-g alone), or every VM of the subscription (--all), optionally filtered by --tag key=value.
Everything a user typed is validated here, before any request: names against Azure's naming rules,
IDs with azure.mgmt.core.tools, ports, addresses and the protocol. Errors are UsageError (exit 2).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from azrdp.errors import UsageError

# VM resource names: letters, digits, '_', '.', '-'; no leading '.'/'-'; no trailing '.'/'-'.
_VM_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$")
# Resource group names: 1-90 of Unicode letters/digits, '_', '-', '.', '(', ')'; no trailing '.'.
_GROUP_NAME = re.compile(r"^[-\w.()]{1,90}$")
_TAG_KEY_FORBIDDEN = set("<>%&\\?/")


@dataclass(frozen=True)
class VmRef:
    resource_group: str
    name: str
    subscription_id: str | None = None  # None: the resolved default subscription

    def id(self, subscription_id: str | None = None) -> str:
        sub = self.subscription_id or subscription_id or ""
        return (
            f"/subscriptions/{sub}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.name}"
        )

    def key(self) -> tuple[str, str, str]:
        return ((self.subscription_id or "").lower(), self.resource_group.lower(), self.name.lower())


@dataclass(frozen=True)
class TagFilter:
    key: str
    value: str | None  # None: the tag only has to exist

    def matches(self, tags: Iterable[tuple[str, str]]) -> bool:
        # Tag names are case-insensitive in Azure, values are not.
        key = self.key.lower()
        return any(k.lower() == key and (self.value is None or v == self.value) for k, v in tags)

    def __str__(self) -> str:
        return self.key if self.value is None else f"{self.key}={self.value}"


@dataclass(frozen=True)
class Targets:
    vms: tuple[VmRef, ...] = ()
    resource_group: str | None = None  # every VM of this group (when vms is empty)
    all: bool = False  # every VM of the subscription
    tag: TagFilter | None = None
    ids: tuple[str, ...] = ()  # the raw IDs, for subscription resolution

    @property
    def is_fleet(self) -> bool:
        return self.all or bool(self.resource_group and not self.vms) or len(self.vms) > 1

    def describe(self) -> str:
        if self.all:
            scope = "every VM in the subscription"
        elif self.resource_group and not self.vms:
            scope = f"every VM in resource group '{self.resource_group}'"
        elif len(self.vms) == 1:
            scope = f"VM '{self.vms[0].name}' in resource group '{self.vms[0].resource_group}'"
        else:
            scope = f"{len(self.vms)} VMs"
        return scope + (f" tagged {self.tag}" if self.tag else "")


def validate_vm_name(name: str) -> str:
    text = name.strip()
    if not _VM_NAME.match(text):
        raise UsageError(
            f"{text!r} is not a valid VM name.",
            "VM names are 1-64 letters, digits, '_', '.' or '-', and cannot start or end with '.' or '-'.",
            fix="Check the name with `az vm list -o table`.",
        )
    return text


def validate_group_name(name: str) -> str:
    text = name.strip()
    if not _GROUP_NAME.match(text) or text.endswith("."):
        raise UsageError(
            f"{text!r} is not a valid resource group name.",
            "Resource group names are 1-90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.'.",
            fix="Check the name with `az group list -o table`.",
        )
    return text


def split_ids(values: Sequence[str] | None) -> list[str]:
    """--ids is repeatable and each value is also split on whitespace (for `$(az vm list ... -o tsv)`)."""
    return [part for value in values or () for part in value.split()]


def parse_vm_id(resource_id: str) -> VmRef:
    """A VM's ARM ID as a VmRef; anything else (another type, a child resource, junk) is exit 2."""
    from azure.mgmt.core.tools import is_valid_resource_id, parse_resource_id

    from azrdp.azure.auth import is_guid

    text = resource_id.strip().rstrip("/")
    bad = UsageError(
        f"{text!r} is not a virtual machine resource ID.",
        "Expected /subscriptions/<guid>/resourceGroups/<group>"
        "/providers/Microsoft.Compute/virtualMachines/<name>.",
        fix="Copy IDs from `az vm list --query '[].id' -o tsv`.",
    )
    if not is_valid_resource_id(text):
        raise bad
    parts = parse_resource_id(text)
    if (
        str(parts.get("namespace", "")).lower() != "microsoft.compute"
        or str(parts.get("type", "")).lower() != "virtualmachines"
        or "child_name_1" in parts
        or not parts.get("name")
        or not parts.get("resource_group")
        or not is_guid(str(parts.get("subscription", "")))
    ):
        raise bad
    return VmRef(
        validate_group_name(str(parts["resource_group"])),
        validate_vm_name(str(parts["name"])),
        str(parts["subscription"]).lower(),
    )


def parse_tag(value: str | None) -> TagFilter | None:
    if value is None:
        return None
    key, sep, tag_value = value.partition("=")
    key = key.strip()
    if not key or len(key) > 512 or _TAG_KEY_FORBIDDEN & set(key):
        raise UsageError(
            f"--tag {value!r} is not a valid tag filter.",
            "Tag names are 1-512 characters without < > % & \\ ? /.",
            fix="Use --tag key=value, or --tag key to match any value.",
        )
    return TagFilter(key, tag_value if sep else None)


def refuse_empty(
    vm: str | None, name: str | None, resource_group: str | None, ids: Sequence[str] | None
) -> None:
    """An empty name (an unset shell variable) must never widen the target to a whole group."""
    for label, value in (("The VM name", vm), ("-n/--name", name), ("-g/--resource-group", resource_group)):
        if value is not None and not value.strip():
            raise UsageError(
                f"{label} is empty.",
                "An empty value (often an unset shell variable) would otherwise widen the target, "
                "e.g. to every VM of the group.",
                fix="Pass the name; for every VM of a group pass -g GROUP without a VM name.",
            )
    if any(not value.strip() for value in ids or ()):
        raise UsageError(
            "An --ids value is empty.",
            "An empty value (often an unset shell variable or an empty `az vm list`) is not a VM.",
            fix="Pass VM resource IDs, e.g. --ids \"$(az vm list --query '[].id' -o tsv)\", and check "
            "that the list is not empty.",
        )


def parse_targets(
    vm: str | None = None,
    name: str | None = None,
    resource_group: str | None = None,
    ids: Sequence[str] | None = None,
    all_vms: bool = False,
    tag: str | None = None,
) -> Targets:
    refuse_empty(vm, name, resource_group, ids)
    id_list = split_ids(ids)
    positional = vm.strip() if vm else None
    if positional and positional.lower().startswith("/subscriptions/"):
        id_list.insert(0, positional)
        positional = None
        if name:
            raise UsageError(
                "A VM resource ID cannot be combined with -n/--name.",
                fix="Pass either the ID or -n NAME -g GROUP.",
            )
    tag_filter = parse_tag(tag)

    if id_list:
        if name or positional:
            raise UsageError(
                "--ids cannot be combined with -n/--name or a VM name.",
                "An ID already names the VM, its group and subscription.",
                fix="Pass either --ids ID... or VM -g GROUP.",
            )
        if all_vms:
            raise UsageError("--ids cannot be combined with --all.", fix="Pass either --ids or --all.")
        refs: list[VmRef] = []
        seen: set[tuple[str, str, str]] = set()
        for raw in id_list:
            ref = parse_vm_id(raw)
            if ref.key() not in seen:
                seen.add(ref.key())
                refs.append(ref)
        return Targets(vms=tuple(refs), tag=tag_filter, ids=tuple(id_list))

    if positional and name and positional.lower() != name.strip().lower():
        raise UsageError(
            f"Two VM names given: {positional!r} and -n {name!r}.",
            fix="Pass the VM name once, either as the argument or with -n.",
        )
    vm_name = positional or (name.strip() if name else None)
    group = validate_group_name(resource_group) if resource_group else None

    if all_vms:
        if vm_name or group:
            raise UsageError(
                "--all cannot be combined with a VM name or -g.",
                fix="Use --all for the whole subscription, or -g GROUP for one resource group.",
            )
        return Targets(all=True, tag=tag_filter)
    if vm_name:
        vm_name = validate_vm_name(vm_name)
        if not group:
            raise UsageError(
                f"VM {vm_name!r} needs its resource group.",
                fix=f"Add -g GROUP (or set AZURE_DEFAULTS_GROUP), e.g. `azrdp check {vm_name} -g my-rg`.",
            )
        if tag_filter:
            raise UsageError(
                "--tag filters a fleet; it cannot be combined with one VM name.",
                fix="Use -g GROUP --tag key=value, or --all --tag key=value.",
            )
        return Targets(vms=(VmRef(group, vm_name),))
    if group:
        return Targets(resource_group=group, tag=tag_filter)
    raise UsageError(
        "No VM given.",
        fix="Name one (`VM -g GROUP`, `--ids ID`), a resource group (`-g GROUP`) or `--all`.",
    )


def validate_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise UsageError(
            f"Port {port} is out of range.", "TCP and UDP ports are 1-65535.", fix="Use e.g. --port 3389."
        )
    return port


def validate_source(value: str | None) -> str | None:
    """The engineer's public address (or a prefix of them), normalised; None keeps "the Internet"."""
    if value is None:
        return None
    text = value.strip()
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            return str(net.network_address) if net.num_addresses == 1 else str(net)
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(
            f"--source-ip {value!r} is not an IP address.",
            "The source is the address your RDP client connects from, as Azure sees it.",
            fix="Pass your public address, e.g. --source-ip 203.0.113.7.",
        ) from None


def validate_protocol(value: str) -> str:
    text = value.strip().lower()
    if text not in ("tcp", "udp"):
        raise UsageError(
            f"--protocol {value!r} is not supported.",
            "RDP runs over TCP, and over UDP for its optional transport.",
            fix="Use --protocol tcp or --protocol udp.",
        )
    return text.capitalize()


def validate_network_watcher(value: str | None, verify: bool) -> str | None:
    """A Network Watcher resource ID for --verify (None: the one in each VM's region)."""
    if value is None:
        return None
    if not verify:
        raise UsageError(
            "--network-watcher only applies with --verify.",
            fix="Add --verify, or drop --network-watcher.",
        )
    text = value.strip()
    parts = text.strip("/").split("/")
    ok = (
        len(parts) == 8
        and parts[0].lower() == "subscriptions"
        and parts[2].lower() == "resourcegroups"
        and parts[4].lower() == "providers"
        and parts[5].lower() == "microsoft.network"
        and parts[6].lower() == "networkwatchers"
        and all(parts)
    )
    if not ok:
        raise UsageError(
            f"--network-watcher {value!r} is not a Network Watcher resource ID.",
            fix="Pass /subscriptions/ID/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/"
            "networkWatchers/NetworkWatcher_REGION (`az network watcher list -o table`).",
        )
    return "/" + "/".join(parts)
