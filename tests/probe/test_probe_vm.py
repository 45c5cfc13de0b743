"""`azrdp probe VM -g RG` / `--ids`: the address comes from the control plane (the emulator)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import pytest
from rdp_fakes import CertSet, FakeServer, confirm, failure, rdp_handler, running, server_context
from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator import Emulator
from azrdp.errors import NotFoundError, UsageError
from azrdp.probe.target import resolve_vm

runner = CliRunner()
SUB = "2b7c1d9e-3f4a-4b5c-8d6e-7f8091a2b3c4"
VM_ID = f"/subscriptions/{SUB}/resourceGroups/rg-rdp/providers/Microsoft.Compute/virtualMachines/vm-rdp01"


def _healthy() -> dict[str, Any]:
    text = resources.files("azrdp.emulator").joinpath("scenarios/healthy.json").read_text()
    return dict(json.loads(text))


def _with_public_ip(address: str | None) -> dict[str, Any]:
    scenario = copy.deepcopy(_healthy())
    for resource in scenario["resources"]:
        if resource["type"].lower() == "microsoft.network/publicipaddresses":
            if address is None:
                resource["properties"].pop("ipAddress", None)
                resource["properties"]["publicIPAllocationMethod"] = "Dynamic"
            else:
                resource["properties"]["ipAddress"] = address
    return scenario


@pytest.fixture
def nla_server(certs: CertSet) -> Iterator[FakeServer]:
    answer = lambda r: confirm(0x02) if r and r & 0x02 else failure(5)  # noqa: E731
    with running(rdp_handler(answer, tls=server_context(certs.named_vm))) as server:
        yield server


def _resolve(**kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "name": "vm-rdp01",
        "resource_group": "rg-rdp",
        "ids": None,
        "subscription": None,
        "cloud": None,
        "private": False,
        "port": 3389,
    }
    options.update(kwargs)
    return resolve_vm(**options)


def test_public_ip_of_the_healthy_vm(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], Any]
) -> None:
    arm_env(make_emulator("healthy"))
    target = _resolve()
    assert (target.host, target.port) == ("198.51.100.10", 3389)
    assert target.vm["name"] == "vm-rdp01" and target.vm["resourceGroup"] == "rg-rdp"
    assert target.vm["ipKind"] == "public" and target.vm["powerState"] == "running"
    assert target.expected_names == ("vm-rdp01",)


def test_private_ip_and_ids(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], Any]
) -> None:
    arm_env(make_emulator("healthy"))
    target = _resolve(name=None, resource_group=None, ids=[VM_ID], private=True, port=3390)
    assert (target.host, target.port) == ("10.20.1.4", 3390)
    assert target.vm["ipKind"] == "private" and target.vm["id"].lower() == VM_ID.lower()


def test_vm_without_public_ip(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], Any]
) -> None:
    arm_env(make_emulator("no-public-ip"))
    with pytest.raises(NotFoundError, match="has no public IP"):
        _resolve(**_vm_of("no-public-ip"))


def test_dynamic_ip_without_address(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], Any]
) -> None:
    arm_env(make_emulator(_with_public_ip(None)))
    with pytest.raises(NotFoundError, match="has no address"):
        _resolve()


def test_one_vm_only() -> None:
    with pytest.raises(UsageError, match="one VM"):
        _resolve(name=None, resource_group=None, ids=[VM_ID, VM_ID])


def _vm_of(scenario: str) -> dict[str, str]:
    text = resources.files("azrdp.emulator").joinpath(f"scenarios/{scenario}.json").read_text()
    vm = next(r for r in json.loads(text)["resources"] if r["type"] == "Microsoft.Compute/virtualMachines")
    return {"name": vm["name"], "resource_group": vm["id"].split("/")[4]}


def test_cli_probes_the_vm_public_ip(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], Any], nla_server: FakeServer
) -> None:
    arm_env(make_emulator(_with_public_ip("127.0.0.1")))
    result = runner.invoke(
        app,
        ["probe", "vm-rdp01", "-g", "rg-rdp", "--port", str(nla_server.port), "--samples", "2", "-o", "json"],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["target"] == {"host": "127.0.0.1", "port": nla_server.port, "address": "127.0.0.1"}
    assert doc["vm"]["name"] == "vm-rdp01" and doc["vm"]["ipAddress"] == "127.0.0.1"
    assert doc["verdict"] == "degraded"  # warnings only: exit 0
    # The certificate says CN=vm and the VM's computerName is vm-rdp01: a different machine.
    assert doc["vm"]["computerName"] == "vm-rdp01"
    assert "cert-name-mismatch" in [f["id"] for f in doc["findings"]]
    mismatch = next(f for f in doc["findings"] if f["id"] == "cert-name-mismatch")
    assert mismatch["recommendation"].endswith("azrdp diagnose vm-rdp01 -g rg-rdp")


def test_cli_ids_with_a_closed_port_exits_4(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], Any]
) -> None:
    import socket

    arm_env(make_emulator(_with_public_ip("127.0.0.1")))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = runner.invoke(
            app, ["probe", "--ids", VM_ID, "--port", str(port), "--samples", "1", "-o", "json"]
        )
    assert result.exit_code == 4, result.output
    doc = json.loads(result.stdout)
    assert [f["id"] for f in doc["findings"]] == ["tcp-refused"]
    assert doc["findings"][0]["details"]["confirmWith"] == "azrdp diagnose vm-rdp01 -g rg-rdp"


def test_cli_unknown_vm_exits_3(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], Any]
) -> None:
    arm_env(make_emulator("healthy"))
    result = runner.invoke(app, ["probe", "nope", "-g", "rg-rdp"])
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("error: ") and "fix: " in result.stderr
    assert "Traceback" not in result.stderr


def test_default_group_from_the_environment_does_not_capture_a_host(
    monkeypatch: pytest.MonkeyPatch, nla_server: FakeServer
) -> None:
    monkeypatch.setenv("AZURE_DEFAULTS_GROUP", "rg-rdp")
    result = runner.invoke(app, ["probe", f"127.0.0.1:{nla_server.port}", "--samples", "1", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["vm"] is None
