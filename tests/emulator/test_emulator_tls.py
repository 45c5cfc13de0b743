"""Loopback only, and a certificate chain that strict verification (Python 3.13's default) accepts."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import pytest
from fixtures_emulator import sdk_clients

from azrdp.emulator import Emulator, ScenarioError
from azrdp.emulator.tls import tls_material


def test_binds_loopback_only(emulator: Emulator) -> None:
    host = emulator.endpoint.removeprefix("https://").rsplit(":", 1)[0]
    identity_host = emulator.identity_endpoint.removeprefix("http://").split(":", 1)[0]
    assert (host, identity_host) == ("127.0.0.1", "127.0.0.1")


@pytest.mark.parametrize("server_name", ["127.0.0.1", "localhost"])
def test_strict_verification_accepts_the_chain(emulator: Emulator, server_name: str) -> None:
    context = ssl.create_default_context(cafile=emulator.ca_path)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    port = int(emulator.endpoint.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_unknown_ca_is_refused(emulator: Emulator) -> None:
    port = int(emulator.endpoint.rsplit(":", 1)[1])
    context = ssl.create_default_context()  # the system store does not know the throwaway CA
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_tls_material_is_generated_once_per_process(make_emulator: Callable[..., Emulator]) -> None:
    first = make_emulator("healthy")
    second = make_emulator("linux")
    assert first.ca_path == second.ca_path == str(tls_material().ca_path)
    assert first.endpoint != second.endpoint


def test_add_resources_to_a_running_emulator(emulator: Emulator) -> None:
    prefix = f"/subscriptions/{emulator.subscription_id}/resourceGroups/rg-new/providers"
    emulator.add_resources(
        [
            {
                "id": f"{prefix}/Microsoft.Compute/virtualMachines/vm-late",
                "location": "westeurope",
                "instanceView": {"powerState": "deallocated"},
            }
        ]
    )
    compute, _ = sdk_clients(emulator)
    view = compute.virtual_machines.instance_view("rg-new", "vm-late")
    assert [s.code for s in view.statuses][-1] == "PowerState/deallocated"
    with pytest.raises(ScenarioError, match=r"\$\.resources\[0\]\.id"):
        emulator.add_resources([{"id": "nope"}])
