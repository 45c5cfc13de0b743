"""Client factory: the raw-JSON reader and the SDK clients for one subscription.

One factory for production and tests: the ARM endpoint, CA bundle, polling interval, retry policy
and user agent all come from the AzureContext and the environment (`auth.client_kwargs`), so the
real SDK clients talk to the emulator without a line of test-only code.

Dependencies point one way: clients -> auth -> errormap. `translate_errors`, `client_kwargs` and
`list_subscriptions` are re-exported here for callers that import them from this module.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from azrdp.azure.auth import AzureContext, client_kwargs, list_subscriptions
from azrdp.azure.errormap import translate_errors

if TYPE_CHECKING:
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.resourcehealth import ResourceHealthMgmtClient

    from azrdp.azure.arm import ArmReader

__all__ = ["Clients", "client_kwargs", "list_subscriptions", "translate_errors"]


class Clients:
    """Lazily built SDK clients for one subscription. Thread-safe to share across workers."""

    def __init__(self, ctx: AzureContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._compute: ComputeManagementClient | None = None
        self._network: NetworkManagementClient | None = None
        self._health: ResourceHealthMgmtClient | None = None
        self._arm: ArmReader | None = None

    @property
    def subscription_id(self) -> str:
        return self.ctx.subscription_id

    @property
    def arm(self) -> ArmReader:
        """Raw JSON through the SDK's pipeline: every read (see azrdp.azure.arm)."""
        with self._lock:
            if self._arm is None:
                from azrdp.azure.arm import ArmReader

                self._arm = ArmReader(self.ctx)
            return self._arm

    @property
    def compute(self) -> ComputeManagementClient:
        with self._lock:
            if self._compute is None:
                from azure.mgmt.compute import ComputeManagementClient

                self._compute = ComputeManagementClient(
                    self.ctx.credential, self.ctx.subscription_id, **client_kwargs(self.ctx)
                )
            return self._compute

    @property
    def network(self) -> NetworkManagementClient:
        with self._lock:
            if self._network is None:
                from azure.mgmt.network import NetworkManagementClient

                self._network = NetworkManagementClient(
                    self.ctx.credential, self.ctx.subscription_id, **client_kwargs(self.ctx)
                )
            return self._network

    @property
    def resource_health(self) -> ResourceHealthMgmtClient:
        with self._lock:
            if self._health is None:
                from azure.mgmt.resourcehealth import ResourceHealthMgmtClient

                self._health = ResourceHealthMgmtClient(
                    self.ctx.credential, self.ctx.subscription_id, **client_kwargs(self.ctx)
                )
            return self._health

    def for_subscription(self, subscription_id: str) -> Clients:
        if subscription_id.lower() == self.subscription_id.lower():
            return self
        return Clients(self.ctx.for_subscription(subscription_id))

    def close(self) -> None:
        for client in (self._compute, self._network, self._health):
            if client is not None:
                client.close()
        if self._arm is not None:
            self._arm.close()
