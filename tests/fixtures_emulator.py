"""Emulator fixtures, loaded by tests/conftest.py through `pytest_plugins`.

* `make_emulator(scenario="healthy", **kw)` -> a started Emulator, stopped at teardown.
* `emulator` -> a started healthy-scenario emulator.
* `arm_env(emu)` -> puts `emu.exports()` into os.environ (monkeypatched) so azrdp's gateway and
  DefaultAzureCredential find the emulator.
* `sdk_clients(emu)` -> real (ComputeManagementClient, NetworkManagementClient) pointed at it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from azrdp.emulator import Emulator

if TYPE_CHECKING:
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient

ARM_SCOPE = "https://management.azure.com/.default"


class StaticTokenCredential:
    """A credential that always returns the same bearer token; the emulator accepts any token."""

    def __init__(self, token: str = "emulator-static-token") -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token, int(time.time()) + 3600)


def managed_identity_credential(emu: Emulator) -> Any:
    """A ManagedIdentityCredential for the emulator's identity endpoint.

    MSAL reads IDENTITY_ENDPOINT / IDENTITY_HEADER at every token request (not at construction) and
    falls back to IMDS without them, so the environment must already point at the emulator: call
    `arm_env(emu)` first.
    """
    import os

    from azure.identity import ManagedIdentityCredential

    if os.environ.get("IDENTITY_ENDPOINT") != emu.identity_endpoint:
        raise RuntimeError(
            "managed identity needs the emulator's exports in os.environ: call arm_env(emu) first"
        )
    return ManagedIdentityCredential()


def sdk_clients(
    emu: Emulator, credential: Any = None, *, managed_identity: bool = False, **kwargs: Any
) -> tuple[ComputeManagementClient, NetworkManagementClient]:
    """Real SDK clients aimed at the emulator (static token unless `managed_identity` or `credential`)."""
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient

    if credential is None:
        credential = managed_identity_credential(emu) if managed_identity else StaticTokenCredential()
    options: dict[str, Any] = {
        "base_url": emu.endpoint,
        "credential_scopes": [ARM_SCOPE],
        "connection_verify": emu.ca_path,
        "polling_interval": 0.01,
        **kwargs,
    }
    compute = ComputeManagementClient(credential, emu.subscription_id, **options)
    network = NetworkManagementClient(credential, emu.subscription_id, **options)
    return compute, network


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def factory(scenario: Any = "healthy", **kwargs: Any) -> Emulator:
        emu = Emulator(scenario, **kwargs).start()
        started.append(emu)
        return emu

    yield factory
    for emu in reversed(started):
        emu.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator("healthy")


@pytest.fixture
def arm_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[Emulator], dict[str, str]]:
    def apply(emu: Emulator) -> dict[str, str]:
        exports = emu.exports()
        for name, value in exports.items():
            monkeypatch.setenv(name, value)
        for name in (
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_SECRET",
            "MSI_ENDPOINT",
            "IMDS_ENDPOINT",
        ):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv("AZURE_FEDERATED_TOKEN_FILE", raising=False)
        return exports

    return apply


@pytest.fixture
def live_emulator(
    make_emulator: Callable[..., Emulator],
    arm_env: Callable[[Emulator], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Emulator]:
    """`live_emulator(scenario, **kw)`: a started emulator that azrdp's own gateway talks to.

    Run Commands take 20 ms and azrdp polls every 10 ms, so guest tests stay fast.
    """

    def start(scenario: Any = "guest-healthy", **kwargs: Any) -> Emulator:
        kwargs.setdefault("runcommand_seconds", 0.02)
        emu = make_emulator(scenario, **kwargs)
        arm_env(emu)
        monkeypatch.setenv("AZRDP_POLLING_INTERVAL", "0.01")
        return emu

    return start


def run_commands(emu: Emulator) -> list[Any]:
    """The action Run Command POSTs in the emulator's request log."""
    return [r for r in emu.requests if r.method == "POST" and r.path.lower().endswith("/runcommand")]
