"""The managed-identity endpoint: DefaultAzureCredential and ManagedIdentityCredential work unchanged."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable

import pytest
import requests
from fixtures_emulator import ARM_SCOPE, managed_identity_credential, sdk_clients

from azrdp.emulator import Emulator


def test_exports_name_everything_a_client_needs(emulator: Emulator) -> None:
    exports = emulator.exports()
    assert set(exports) == {
        "AZRDP_ARM_ENDPOINT",
        "AZRDP_CA_BUNDLE",
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "AZURE_SUBSCRIPTION_ID",
        "AZURE_TOKEN_CREDENTIALS",
        "AZRDP_POLLING_INTERVAL",
    }
    assert float(exports["AZRDP_POLLING_INTERVAL"]) < 1
    assert exports["AZRDP_ARM_ENDPOINT"].startswith("https://127.0.0.1:")
    assert not exports["AZRDP_ARM_ENDPOINT"].endswith("/")
    assert exports["IDENTITY_ENDPOINT"].startswith("http://127.0.0.1:")
    assert os.path.isfile(exports["AZRDP_CA_BUNDLE"])
    assert exports["AZURE_TOKEN_CREDENTIALS"] == "managedidentitycredential"


def test_default_azure_credential_gets_a_token(
    emulator: Emulator, arm_env: Callable[[Emulator], object]
) -> None:
    from azure.identity import DefaultAzureCredential

    arm_env(emulator)
    token = DefaultAzureCredential().get_token(ARM_SCOPE)
    claims = json.loads(base64.urlsafe_b64decode(token.token.split(".")[1] + "=="))
    assert claims["aud"] == "https://management.azure.com"
    assert token.expires_on > claims["iat"]
    assert emulator.tokens_issued == 1


def test_sdk_with_default_azure_credential_lists_vms(
    emulator: Emulator, arm_env: Callable[[Emulator], object]
) -> None:
    from azure.identity import DefaultAzureCredential

    arm_env(emulator)
    compute, _ = sdk_clients(emulator, credential=DefaultAzureCredential())
    assert [vm.name for vm in compute.virtual_machines.list("rg-rdp")] == ["vm-rdp01"]


def test_managed_identity_credential_through_the_fixture(
    emulator: Emulator, arm_env: Callable[[Emulator], object]
) -> None:
    arm_env(emulator)
    compute, _ = sdk_clients(emulator, managed_identity=True)
    assert compute.virtual_machines.get("rg-rdp", "vm-rdp01").name == "vm-rdp01"


def test_managed_identity_fixture_refuses_an_unprepared_environment(emulator: Emulator) -> None:
    with pytest.raises(RuntimeError, match="arm_env"):
        managed_identity_credential(emulator)


def test_wrong_identity_header_gets_no_token(
    emulator: Emulator, arm_env: Callable[[Emulator], object], monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ManagedIdentityCredential

    arm_env(emulator)
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-secret")
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential().get_token(ARM_SCOPE)
    assert emulator.tokens_issued == 0


def test_identity_endpoint_protocol(emulator: Emulator) -> None:
    response = requests.get(
        emulator.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
        headers={"X-IDENTITY-HEADER": emulator.identity_header, "Metadata": "true"},
        timeout=10,
    )
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert int(body["expires_on"]) > 0 and body["token_type"] == "Bearer"
    missing = requests.get(emulator.identity_endpoint, params={"resource": "x"}, timeout=10)
    assert missing.status_code == 401
