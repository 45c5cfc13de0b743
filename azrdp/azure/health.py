"""Resource Health: the VM's current availability status, one VM at a time or as one listing.

REST, read raw through `azrdp.azure.arm` (api-version 2025-05-01, what azure-mgmt-resourcehealth 1.0
sends):
`GET {vm id}/providers/Microsoft.ResourceHealth/availabilityStatuses/current`
(AvailabilityStatuses_GetByResource) and
`GET /subscriptions/{sub}[/resourceGroups/{rg}]/providers/Microsoft.ResourceHealth/availabilityStatuses`
(AvailabilityStatuses_ListBySubscriptionId / ListByResourceGroup), whose items are keyed by
`{resource id}/providers/Microsoft.ResourceHealth/availabilityStatuses/current`. The property
`occuredTime` is spelt so on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from azrdp.errors import AzrdpError
from azrdp.facts import PlatformHealth, name_of

if TYPE_CHECKING:
    from azrdp.azure.clients import Clients

Json = Mapping[str, Any]
SUFFIX = "/providers/microsoft.resourcehealth/availabilitystatuses/"


def health_from_rest(d: Json) -> PlatformHealth:
    p = d.get("properties") if isinstance(d.get("properties"), Mapping) else {}
    p = p or {}

    def text(name: str) -> str:
        value = p.get(name)
        return str(value) if value is not None else ""

    return PlatformHealth(
        state=text("availabilityState") or "Unknown",
        title=text("title"),
        summary=text("summary"),
        reason_type=text("reasonType"),
        context=text("context"),
        category=text("category"),
        detailed_status=text("detailedStatus"),
        occurred=text("occuredTime") or text("occurredTime") or None,
        reported=text("reportedTime") or None,
        resolution_eta=text("resolutionETA") or None,
    )


def resource_of(status_id: str) -> str:
    """The resource id an availability status belongs to ('' when the id has no such suffix)."""
    at = status_id.lower().find(SUFFIX)
    return status_id[:at] if at > 0 else ""


def get_health(clients: Clients, vm_id: str) -> PlatformHealth:
    """One VM's current status; a failure is kept in `error`, never raised."""
    from azrdp.azure.arm import RESOURCE_HEALTH_API, resource_path
    from azrdp.azure.clients import translate_errors

    path = resource_path(vm_id) + "/providers/Microsoft.ResourceHealth/availabilityStatuses/current"
    try:
        with translate_errors(f"the Resource Health of VM '{name_of(vm_id)}'"):
            return health_from_rest(clients.arm.get(path, RESOURCE_HEALTH_API))
    except AzrdpError as err:
        return PlatformHealth(state="Unknown", error=err.message)


def list_health(clients: Clients, resource_group: str | None) -> dict[str, PlatformHealth] | str:
    """Every status of a resource group or the subscription, by resource id (lower), or why not."""
    from azrdp.azure.arm import RESOURCE_HEALTH_API, group_path
    from azrdp.azure.clients import translate_errors

    scope = f"resource group '{resource_group}'" if resource_group else "the subscription"
    out: dict[str, PlatformHealth] = {}
    path = group_path(
        clients.subscription_id, resource_group, "Microsoft.ResourceHealth", "availabilityStatuses"
    )
    try:
        with translate_errors(f"the Resource Health statuses of {scope}"):
            for d in clients.arm.items(path, RESOURCE_HEALTH_API):
                rid = resource_of(str(d.get("id", "")))
                if rid:
                    out[rid.lower()] = health_from_rest(d)
    except AzrdpError as err:
        return err.message
    return out
