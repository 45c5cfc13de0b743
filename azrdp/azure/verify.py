"""Network Watcher IP flow verify: Azure's own verdict for one packet (opt-in, `--verify`).

`POST .../networkWatchers/{nw}/ipFlowVerify` (NetworkWatchers_VerifyIPFlow, an LRO) with
`{targetResourceId, direction, protocol, localPort, remotePort, localIPAddress, remoteIPAddress,
targetNicResourceId}` -> `{access: Allow|Deny, ruleName}`. Network Watcher is regional and can only
check resources in its own region (learn.microsoft.com/azure/network-watcher/ip-flow-verify-overview);
Azure names the automatic one `NetworkWatcher_<region>` in `NetworkWatcherRG`, but any watcher of the
region works, so the subscription's watchers are listed once per run and picked by location.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from azrdp.errors import AzrdpError
from azrdp.facts import group_of, name_of

if TYPE_CHECKING:
    from azrdp.azure.clients import Clients

# The client port of the packet asked about: any port of the dynamic range (RFC 6335) does.
CLIENT_PORT = 50000


@dataclass(frozen=True)
class FlowAnswer:
    access: str | None  # "Allow" | "Deny" | None when not asked or failed
    rule: str = ""
    watcher: str = ""
    error: str | None = None


class WatcherFinder:
    """The Network Watcher of each region, from one listing per run (thread-safe)."""

    def __init__(self, clients: Clients, named: str | None = None) -> None:
        self.clients = clients
        self.named = named
        self._lock = threading.Lock()
        self._by_region: dict[str, str] | str | None = None

    def for_region(self, location: str) -> str:
        """The watcher's resource id; raises AzrdpError when there is none."""
        if self.named:
            return self.named
        from azrdp.azure.arm import NETWORK_API, group_path
        from azrdp.azure.clients import translate_errors

        with self._lock:
            if self._by_region is None:
                try:
                    with translate_errors("the Network Watchers of the subscription"):
                        found: dict[str, str] = {}
                        path = group_path(
                            self.clients.subscription_id, None, "Microsoft.Network", "networkWatchers"
                        )
                        for d in self.clients.arm.items(path, NETWORK_API):
                            region = str(d.get("location", "")).replace(" ", "").lower()
                            found.setdefault(region, str(d.get("id", "")))
                        self._by_region = found
                except AzrdpError as err:
                    self._by_region = err.message
            known = self._by_region
        if isinstance(known, str):
            raise AzrdpError(known)
        region = location.replace(" ", "").lower()
        if region not in known:
            raise AzrdpError(
                f"No Network Watcher in region '{location}'.",
                fix=f"`az network watcher configure -g NetworkWatcherRG -l {location} --enabled true`, "
                "or pass --network-watcher with one in that region.",
            )
        return known[region]


def verify_flow(
    clients: Clients,
    finder: WatcherFinder,
    *,
    vm_id: str,
    location: str,
    nic_id: str,
    local_ip: str,
    remote_ip: str,
    port: int,
    protocol: str,
) -> FlowAnswer:
    """Ask IP flow verify about one inbound packet; a failure is kept in `error`."""
    from azrdp.azure.clients import translate_errors

    try:
        watcher = finder.for_region(location)
        with translate_errors(f"IP flow verify on Network Watcher '{name_of(watcher)}'"):
            poller = clients.network.network_watchers.begin_verify_ip_flow(
                group_of(watcher),
                name_of(watcher),
                {
                    "targetResourceId": vm_id,
                    "direction": "Inbound",
                    "protocol": protocol.upper(),
                    "localPort": str(port),
                    "remotePort": str(CLIENT_PORT),
                    "localIPAddress": local_ip,
                    "remoteIPAddress": remote_ip,
                    "targetNicResourceId": nic_id,
                },
            )
            result = poller.result(timeout=120).as_dict()
    except AzrdpError as err:
        return FlowAnswer(None, error=err.message)
    return FlowAnswer(
        str(result.get("access") or "") or None, str(result.get("ruleName") or ""), name_of(watcher)
    )
