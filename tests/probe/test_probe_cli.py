"""`azrdp probe` on the command line: targets, options, output formats and exit codes."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from rdp_fakes import CertSet, confirm, failure, rdp_handler, running, server_context
from rich.console import Console
from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.cli.probe import human_view, table_rows
from azrdp.probe import probe
from azrdp.probe.target import host_target, parse_host_port

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["probe", *args])


def _nla_server(certs: CertSet) -> Any:
    answer = lambda r: confirm(0x02) if r and r & 0x02 else failure(5)  # noqa: E731
    return running(rdp_handler(answer, tls=server_context(certs.valid)))


def test_healthy_endpoint_exits_0_with_the_json_document(certs: CertSet) -> None:
    with _nla_server(certs) as server:
        result = invoke(f"127.0.0.1:{server.port}", "--samples", "2", "-o", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schemaVersion"] == "2"
    assert doc["target"] == {"host": "127.0.0.1", "port": server.port, "address": "127.0.0.1"}
    assert doc["reachable"] is True and doc["verdict"] == "healthy"
    assert doc["tcp"]["samples"] == 2
    assert doc["negotiation"]["selectedProtocol"] == "HYBRID"
    assert doc["nla"] == {"required": True, "offered": True}
    assert doc["certificate"]["subject"] == "CN=azrdp-test-valid"
    assert result.stderr == ""


def test_port_option_and_query(certs: CertSet) -> None:
    with _nla_server(certs) as server:
        result = invoke("127.0.0.1", "--port", str(server.port), "--samples", "1", "--query", "nla.required")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) is True


def test_blocker_exits_4_and_table_output() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = invoke(f"127.0.0.1:{port}", "--samples", "2", "-o", "table")
    assert result.exit_code == 4
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "Target",
        "Verdict",
        "Reachable",
        "Protocol",
        "NlaRequired",
        "Tls",
        "CertNotAfter",
        "Blockers",
        "Warnings",
    ]
    assert lines[2].split()[:3] == [f"127.0.0.1:{port}", "blocked", "false"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Nothing to probe"),
        (["host:0"], "port '0'"),
        (["host:http"], "port 'http'"),
        (["bad host!"], "not a host name"),
        (["[::1"], "not valid"),
        (["127.0.0.1:3390", "--port", "3391"], "--port says 3391"),
        (["127.0.0.1", "--private"], "--private needs a VM"),
        (
            [
                "vm1",
                "--ids",
                "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/v",
            ],
            "Both",
        ),
        (["-g", "rg"], "VM name is missing"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "fix: " in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "flag"), [(["x", "--samples", "21"], "--samples"), (["x", "--timeout", "0"], "--timeout")]
)
def test_option_ranges(args: list[str], flag: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert flag in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.4", ("10.0.0.4", None)),
        ("10.0.0.4:3390", ("10.0.0.4", 3390)),
        ("myvm.westeurope.cloudapp.azure.com", ("myvm.westeurope.cloudapp.azure.com", None)),
        ("[2001:db8::4]:3389", ("2001:db8::4", 3389)),
        ("[::1]", ("::1", None)),
        ("2001:db8::4", ("2001:db8::4", None)),
        ("localhost", ("localhost", None)),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_host_port(text) == expected


def test_host_target_default_port() -> None:
    assert host_target("10.0.0.4", None, 3389).port == 3389
    assert host_target("10.0.0.4", 3391, 3389).port == 3391
    assert host_target("10.0.0.4:3391", 3391, 3389).port == 3391


def test_human_view_puts_the_verdict_first(certs: CertSet) -> None:
    with running(rdp_handler(lambda _: confirm(0x01), tls=server_context(certs.expired))) as server:
        doc, _ = probe("127.0.0.1", server.port, samples=1, timeout=2.0)
    console = Console(record=True, width=120, color_system=None)
    human_view(doc, console)
    text = console.export_text()
    first_lines = [line for line in text.splitlines() if line.strip()][:2]
    assert "BLOCKED" in first_lines[1] and "The RDP certificate has expired" in first_lines[1]
    assert "2020-01-01 to 2021-01-01 (EXPIRED)" in text
    assert "BLOCKER" in text and "cert-expired  The RDP certificate has expired" in text and "fix: " in text
    assert table_rows(doc)[0]["Verdict"] == "blocked"
