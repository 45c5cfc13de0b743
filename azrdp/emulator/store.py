"""The emulator's resource store: ARM-shaped dicts indexed by lower-cased id and by type.

Child resources (subnets, security rules, IP configurations, VM extensions) live inside their
parent, exactly where ARM returns them; `get` resolves a child id through its parent. Every
access happens under `lock` (an RLock): SDK pollers and client threads hit the server concurrently,
and the guest simulator mutates VM dicts in place.
"""

from __future__ import annotations

import threading
from typing import Any

from azrdp.emulator.ids import ResourceId, key, parse_id, type_key

Resource = dict[str, Any]

# child type (lower-cased, full) -> where the parent keeps its children
CHILD_ARRAYS: dict[str, tuple[str, ...]] = {
    "microsoft.network/virtualnetworks/subnets": ("properties", "subnets"),
    "microsoft.network/networksecuritygroups/securityrules": ("properties", "securityRules"),
    "microsoft.network/networksecuritygroups/defaultsecurityrules": ("properties", "defaultSecurityRules"),
    "microsoft.network/networkinterfaces/ipconfigurations": ("properties", "ipConfigurations"),
    "microsoft.compute/virtualmachines/extensions": ("resources",),
    "microsoft.network/loadbalancers/frontendipconfigurations": ("properties", "frontendIPConfigurations"),
    "microsoft.network/loadbalancers/backendaddresspools": ("properties", "backendAddressPools"),
    "microsoft.network/loadbalancers/inboundnatrules": ("properties", "inboundNatRules"),
    "microsoft.network/loadbalancers/loadbalancingrules": ("properties", "loadBalancingRules"),
    "microsoft.network/loadbalancers/probes": ("properties", "probes"),
    "microsoft.network/routetables/routes": ("properties", "routes"),
    # Virtual Network Manager children are separate ARM resources, not embedded in their parent's
    # body: the emulator keeps them under an internal key no route ever serves.
    "microsoft.network/networkmanagers/networkgroups": ("_children", "networkGroups"),
    "microsoft.network/networkmanagers/networkgroups/staticmembers": ("_children", "staticMembers"),
    "microsoft.network/networkmanagers/securityadminconfigurations": (
        "_children",
        "securityAdminConfigurations",
    ),
    "microsoft.network/networkmanagers/securityadminconfigurations/rulecollections": (
        "_children",
        "ruleCollections",
    ),
    "microsoft.network/networkmanagers/securityadminconfigurations/rulecollections/rules": (
        "_children",
        "rules",
    ),
}


def child_array(parent: Resource, child_type: str, create: bool = False) -> list[Resource] | None:
    """The list inside `parent` holding children of `child_type` (full type), or None."""
    path = CHILD_ARRAYS.get(type_key(child_type))
    if path is None:
        return None
    node: Any = parent
    for step in path[:-1]:
        if not isinstance(node.get(step), dict):
            if not create:
                return None
            node[step] = {}
        node = node[step]
    items = node.get(path[-1])
    if isinstance(items, list):
        return items
    if not create:
        return None
    fresh: list[Resource] = []
    node[path[-1]] = fresh
    return fresh


class ResourceStore:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._by_id: dict[str, Resource] = {}
        # (type, sub, group) and (type, sub) -> {id key: resource}, in insertion order
        self._by_group: dict[tuple[str, str, str], dict[str, Resource]] = {}
        self._by_subscription: dict[tuple[str, str], dict[str, Resource]] = {}
        self._groups: dict[tuple[str, str], dict[str, str]] = {}

    # resource groups -------------------------------------------------------------------------

    def add_resource_group(self, subscription: str, name: str, location: str) -> None:
        with self.lock:
            self._groups.setdefault(
                (subscription.lower(), name.lower()), {"name": name, "location": location}
            )

    def resource_group(self, subscription: str, name: str) -> dict[str, str] | None:
        with self.lock:
            return self._groups.get((subscription.lower(), name.lower()))

    def subscriptions(self) -> set[str]:
        with self.lock:
            return {sub for sub, _ in self._groups}

    # resources -------------------------------------------------------------------------------

    def get(self, resource_id: str) -> Resource | None:
        with self.lock:
            found = self._by_id.get(key(resource_id))
            if found is not None:
                return found
            parsed = parse_id(resource_id)
            if parsed is None or not parsed.is_child:
                return None
            parent = self.get(str(parsed.parent))
            if parent is None:
                return None
            children = child_array(parent, parsed.type)
            wanted = parsed.name.lower()
            for child in children or ():
                if str(child.get("name", "")).lower() == wanted:
                    return child
            return None

    def put(self, resource: Resource, parsed: ResourceId | None = None) -> None:
        """Insert or replace a top-level resource, or a child inside its (existing) parent."""
        resource_id = resource["id"]
        parsed = parsed or parse_id(resource_id)
        if parsed is None:
            raise ValueError(f"not a resource-group-scoped ARM id: {resource_id}")
        with self.lock:
            if parsed.is_child:
                parent = self.get(str(parsed.parent))
                if parent is None:
                    raise KeyError(f"parent of {resource_id} is not in the store")
                children = child_array(parent, parsed.type, create=True)
                assert children is not None
                wanted = parsed.name.lower()
                for index, child in enumerate(children):
                    if str(child.get("name", "")).lower() == wanted:
                        children[index] = resource
                        return
                children.append(resource)
                return
            k = key(resource_id)
            self._by_id[k] = resource
            tkey = type_key(parsed.type)
            sub = parsed.subscription.lower()
            self._by_group.setdefault((tkey, sub, parsed.resource_group.lower()), {})[k] = resource
            self._by_subscription.setdefault((tkey, sub), {})[k] = resource
            self._groups.setdefault(
                (sub, parsed.resource_group.lower()),
                {"name": parsed.resource_group, "location": str(resource.get("location", ""))},
            )

    def delete(self, resource_id: str) -> bool:
        parsed = parse_id(resource_id)
        if parsed is None:
            return False
        with self.lock:
            if parsed.is_child:
                parent = self.get(str(parsed.parent))
                children = child_array(parent, parsed.type) if parent is not None else None
                if not children:
                    return False
                wanted = parsed.name.lower()
                for index, child in enumerate(children):
                    if str(child.get("name", "")).lower() == wanted:
                        del children[index]
                        return True
                return False
            k = key(resource_id)
            if self._by_id.pop(k, None) is None:
                return False
            tkey = type_key(parsed.type)
            sub = parsed.subscription.lower()
            self._by_group.get((tkey, sub, parsed.resource_group.lower()), {}).pop(k, None)
            self._by_subscription.get((tkey, sub), {}).pop(k, None)
            return True

    def list(
        self, resource_type: str, subscription: str | None = None, resource_group: str | None = None
    ) -> list[Resource]:
        """Top-level resources of a type, in insertion order, optionally scoped."""
        tkey = type_key(resource_type)
        with self.lock:
            if subscription is None:
                out: list[Resource] = []
                for (t, _), items in self._by_subscription.items():
                    if t == tkey:
                        out.extend(items.values())
                return out
            if resource_group is None:
                return list(self._by_subscription.get((tkey, subscription.lower()), {}).values())
            return list(self._by_group.get((tkey, subscription.lower(), resource_group.lower()), {}).values())

    def __len__(self) -> int:
        with self.lock:
            return len(self._by_id)
