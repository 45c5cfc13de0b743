"""The test environment itself: no credential built in a test can reach the metadata address."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError


def test_default_credential_never_leaves_loopback(refused_addresses: list[Any]) -> None:
    """The whole default chain, managed identity included (it retries for about 5 s)."""
    from azure.identity import DefaultAzureCredential

    before = len(refused_addresses)
    credential = DefaultAzureCredential()
    with pytest.raises(ClientAuthenticationError):
        credential.get_token("https://management.azure.com/.default")
    assert refused_addresses[before:] == []
