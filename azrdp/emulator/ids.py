"""ARM resource ids: parse, build, and the lower-cased keys the store indexes by."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceId:
    """`/subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{type}/{name}[/{child}/{name}]...`"""

    subscription: str
    resource_group: str
    namespace: str
    types: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def type(self) -> str:
        """Full type, e.g. `Microsoft.Network/virtualNetworks/subnets`."""
        return "/".join((self.namespace, *self.types))

    @property
    def name(self) -> str:
        return self.names[-1]

    @property
    def is_child(self) -> bool:
        return len(self.types) > 1

    @property
    def parent(self) -> ResourceId:
        return ResourceId(
            self.subscription, self.resource_group, self.namespace, self.types[:-1], self.names[:-1]
        )

    def __str__(self) -> str:
        tail = "/".join(f"{t}/{n}" for t, n in zip(self.types, self.names, strict=True))
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{self.namespace}/{tail}"
        )


def parse_id(resource_id: str) -> ResourceId | None:
    """The parts of a resource-group-scoped resource id, or None if it is not one."""
    parts = resource_id.strip("/").split("/")
    if len(parts) < 8 or len(parts) % 2:
        return None
    if parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups":
        return None
    if parts[4].lower() != "providers" or not all(parts):
        return None
    rest = parts[6:]
    return ResourceId(
        subscription=parts[1],
        resource_group=parts[3],
        namespace=parts[5],
        types=tuple(rest[0::2]),
        names=tuple(rest[1::2]),
    )


def key(resource_id: str) -> str:
    """Store key: ARM ids compare case-insensitively and without surrounding slashes."""
    return "/" + resource_id.strip("/").lower()


def type_key(resource_type: str) -> str:
    return resource_type.lower()
