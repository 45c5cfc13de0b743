"""The test environment itself: no credential built in a test can reach the metadata address."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ClientAuthenticationError
from conftest import REFUSED_ADDRESSES


def test_default_credential_never_leaves_loopback() -> None:
    """The whole default chain, managed identity included (it retries for about 5 s)."""
    from azure.identity import DefaultAzureCredential

    before = len(REFUSED_ADDRESSES)
    credential = DefaultAzureCredential()
    with pytest.raises(ClientAuthenticationError):
        credential.get_token("https://management.azure.com/.default")
    assert REFUSED_ADDRESSES[before:] == []
