"""`azrdp check` end to end: the CLI, the real SDK, the emulator. One test per finding and bad input."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator import Emulator
from azrdp.emulator.scenario import builtin_dir

runner = CliRunner()
SUB = "2b7c1d9e-3f4a-4b5c-8d6e-7f8091a2b3c4"
RG = "rg-rdp"
P = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers"
VM_ID = f"{P}/Microsoft.Compute/virtualMachines/vm-rdp01"


def scenario(name: str = "healthy") -> dict[str, Any]:
    return json.loads((builtin_dir() / f"{name}.json").read_text(encoding="utf-8"))


def resource(doc: dict[str, Any], rtype: str, name: str) -> dict[str, Any]:
    return next(r for r in doc["resources"] if r["type"].lower() == rtype.lower() and r["name"] == name)


def rule(name: str, priority: int, access: str, source: str, port: str = "3389") -> dict[str, Any]:
    return {
        "name": name,
        "properties": {
            "protocol": "Tcp",
            "sourcePortRange": "*",
            "destinationPortRange": port,
            "sourceAddressPrefix": source,
            "destinationAddressPrefix": "*",
            "access": access,
            "priority": priority,
            "direction": "Inbound",
        },
    }


Run = Callable[..., tuple[Any, Emulator]]


@pytest.fixture
def run(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> Iterator[Run]:
    def invoke(scn: Any, *args: str, emu_kw: dict[str, Any] | None = None) -> tuple[Any, Emulator]:
        emu = make_emulator(scn, **(emu_kw or {}))
        arm_env(emu)
        emu.clear_requests()
        result = runner.invoke(app, ["check", *args])
        return result, emu

    yield invoke


def doc_of(result: Any) -> dict[str, Any]:
    assert result.stdout, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def finding_ids(doc: dict[str, Any], index: int = 0) -> list[str]:
    return [f["id"] for f in doc["vms"][index]["findings"]]


def assert_one_line_error(result: Any, code: int, needle: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert len(lines) == 2 and lines[1].startswith("fix: "), result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------
# one VM: each finding


def test_healthy_vm_from_my_address_exits_0(run: Run) -> None:
    result, _ = run("healthy", "vm-rdp01", "-g", RG, "--source-ip", "203.0.113.7", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = doc_of(result)
    assert doc["schemaVersion"] == "2"
    vm = doc["vms"][0]
    assert vm["id"] == VM_ID and vm["status"] == "healthy" and vm["findings"] == [] and vm["error"] is None
    assert vm["powerState"] == "running" and vm["osType"] == "Windows"
    assert vm["agent"]["status"] == "Ready" and vm["agent"]["version"]
    net = vm["network"]
    assert net["verdict"] == "allowed" and net["source"] == "203.0.113.7" and net["port"] == 3389
    assert net["publicIp"] and net["privateIp"] == "10.20.1.4"
    assert [(d["layer"], d["rule"], d["access"]) for d in net["decidedBy"]] == [
        ("subnet", "allow-rdp-admin", "Allow"),
        ("nic", "allow-rdp-admin", "Allow"),
    ]
    summary = {"total": 1, "healthy": 1, "blocked": 0, "unknown": 0, "errors": 0, "exitCode": 0}
    assert doc["summary"] == summary


def test_without_source_ip_the_internet_is_restricted(run: Run) -> None:
    result, _ = run("healthy", "vm-rdp01", "-g", RG, "-o", "json")
    assert result.exit_code == 0
    net = doc_of(result)["vms"][0]["network"]
    assert net["verdict"] == "restricted" and net["allowedSources"] == ["203.0.113.0/24"]
    assert finding_ids(doc_of(result)) == ["rdp-source-restricted"]


def test_nsg_blocked_exits_4_with_the_deciding_rule(run: Run) -> None:
    result, _ = run("nsg-blocked", "vm-rdp01", "-g", RG, "--source-ip", "203.0.113.7", "-o", "json")
    assert result.exit_code == 4
    doc = doc_of(result)
    vm = doc["vms"][0]
    assert finding_ids(doc) == ["nsg-denies-rdp"] and vm["status"] == "blocked"
    assert vm["network"]["verdict"] == "denied"
    (decider,) = [d for d in vm["network"]["decidedBy"] if d["access"] == "Deny"]
    assert decider["layer"] == "nic" and decider["priority"] == 100
    assert doc["summary"]["blocked"] == 1


def test_subnet_blocked_is_decided_at_the_subnet(run: Run) -> None:
    result, _ = run("subnet-blocked", "vm-rdp01", "-g", RG, "--source-ip", "203.0.113.7", "-o", "json")
    assert result.exit_code == 4
    net = doc_of(result)["vms"][0]["network"]
    assert [(d["layer"], d["rule"]) for d in net["decidedBy"]] == [("subnet", "DenyAllInBound")]


@pytest.mark.parametrize(
    ("name", "expected", "code"),
    [
        ("deallocated", "vm-not-running", 4),
        ("stopped", "vm-not-running", 4),
        ("agent-not-ready", "agent-not-ready", 0),
        ("no-public-ip", "no-public-ip", 0),
    ],
)
def test_builtin_scenarios(run: Run, name: str, expected: str, code: int) -> None:
    result, _ = run(name, "vm-rdp01", "-g", RG, "--source-ip", "203.0.113.7", "-o", "json")
    assert result.exit_code == code, result.stderr
    assert expected in finding_ids(doc_of(result))


def test_linux_vm_is_a_finding_not_a_crash(run: Run) -> None:
    result, _ = run("linux", "vm-linux01", "-g", RG, "-o", "json")
    assert "Traceback" not in result.stderr
    ids = finding_ids(doc_of(result))
    assert "vm-not-windows" in ids
    assert doc_of(result)["vms"][0]["osType"] == "Linux"


def test_provisioning_failed(run: Run) -> None:
    doc = scenario()
    resource(doc, "Microsoft.Compute/virtualMachines", "vm-rdp01")["properties"]["provisioningState"] = (
        "Failed"
    )
    result, _ = run(doc, "vm-rdp01", "-g", RG, "--source-ip", "203.0.113.7", "-o", "json")
    assert result.exit_code == 4
    assert "vm-provisioning-failed" in finding_ids(doc_of(result))


def test_jit_rule_present(run: Run) -> None:
    doc = scenario()
    nsg = resource(doc, "Microsoft.Network/networkSecurityGroups", "vm-rdp01-nsg")
    nsg["properties"]["securityRules"].append(rule("SecurityCenter-JITRule_-123_ab", 100, "Deny", "*"))
    result, _ = run(doc, "vm-rdp01", "-g", RG, "--source-ip", "203.0.113.7", "-o", "json")
    assert result.exit_code == 4
    assert finding_ids(doc_of(result)) == ["nsg-denies-rdp", "jit-rule-present"]


def test_rdp_open_to_internet_is_a_warning(run: Run) -> None:
    doc = scenario()
    for name in ("vm-rdp01-nsg", "nsg-subnet-default"):
        nsg = resource(doc, "Microsoft.Network/networkSecurityGroups", name)
        nsg["properties"]["securityRules"].append(rule("rdp-from-anywhere", 200, "Allow", "Internet"))
    result, _ = run(doc, "vm-rdp01", "-g", RG, "-o", "json")
    assert result.exit_code == 0
    vm = doc_of(result)["vms"][0]
    assert vm["network"]["verdict"] == "allowed" and vm["network"]["allowedSources"] == ["Internet"]
    assert finding_ids(doc_of(result)) == ["rdp-open-to-internet"]


def test_no_nsg_on_nic_or_subnet(run: Run) -> None:
    doc = scenario()
    doc["resources"] = [r for r in doc["resources"] if r["type"] != "Microsoft.Network/networkSecurityGroups"]
    resource(doc, "Microsoft.Network/networkInterfaces", "vm-rdp01-nic")["properties"].pop(
        "networkSecurityGroup"
    )
    for subnet in resource(doc, "Microsoft.Network/virtualNetworks", "vnet-rdp")["properties"]["subnets"]:
        subnet["properties"].pop("networkSecurityGroup", None)
    pip = resource(doc, "Microsoft.Network/publicIPAddresses", "vm-rdp01-ip")
    sku = (pip.get("sku") or {}).get("name", "Basic")
    result, _ = run(doc, "vm-rdp01", "-g", RG, "-o", "json")
    vm = doc_of(result)["vms"][0]
    assert vm["network"]["nsgs"] == {"subnet": None, "nic": None} and vm["network"]["decidedBy"] == []
    ids = finding_ids(doc_of(result))
    assert "no-nsg" in ids
    if sku.lower() == "standard":
        assert result.exit_code == 4 and "nsg-denies-rdp" in ids
    else:
        assert result.exit_code == 0 and "rdp-open-to-internet" in ids


def test_no_public_ip_with_a_bastion_subnet(run: Run) -> None:
    doc = scenario("no-public-ip")
    vnet = resource(doc, "Microsoft.Network/virtualNetworks", "vnet-rdp")
    vnet["properties"]["subnets"].append(
        {
            "name": "AzureBastionSubnet",
            "id": vnet["id"] + "/subnets/AzureBastionSubnet",
            "properties": {"addressPrefix": "10.20.250.0/26"},
        }
    )
    result, _ = run(doc, "vm-rdp01", "-g", RG, "-o", "json")
    vm = doc_of(result)["vms"][0]
    finding = next(f for f in vm["findings"] if f["id"] == "no-public-ip")
    assert finding["severity"] == "info" and "Bastion" in finding["recommendation"]
    assert vm["network"]["publicIp"] is None


def test_effective_rules_agree_on_a_running_vm(run: Run) -> None:
    result, _ = run(
        "healthy", "vm-rdp01", "-g", RG, "--source-ip", "203.0.113.7", "--effective", "-o", "json"
    )
    assert result.exit_code == 0, result.stderr
    net = doc_of(result)["vms"][0]["network"]
    assert net["effective"]["verdict"] == "allowed" and net["effective"]["error"] is None
    assert "effective-rules-disagree" not in finding_ids(doc_of(result))


# ---------------------------------------------------------------------------------------------
# request budget for one VM


def rounds(records: list[Any]) -> int:
    """Sequential rounds: a request belongs to the round after the latest one that ended before it began."""
    spans = sorted((r.started, r.started + r.duration_ms / 1000.0) for r in records)
    depth: list[int] = []
    for i, (start, _) in enumerate(spans):
        before = [depth[j] for j in range(i) if spans[j][1] <= start]
        depth.append(1 + max(before, default=0))
    return max(depth, default=0)


def test_single_vm_uses_at_most_7_requests_in_3_rounds(run: Run) -> None:
    result, emu = run("healthy", "vm-rdp01", "-g", RG, "-o", "none", emu_kw={"latency_ms": 60})
    assert result.exit_code == 0 and result.stdout == ""
    arm = [r for r in emu.requests if "/subscriptions/" in r.path]
    assert len(arm) <= 7, [(r.method, r.path) for r in arm]
    assert rounds(arm) <= 3
    # Reads only: GETs, and the one POST that lists the VNet's admin rules (an action that reads).
    posts = [r.path for r in arm if r.method != "GET"]
    assert all(p.lower().endswith("/listnetworkmanagereffectivesecurityadminrules") for p in posts), posts
    assert len(posts) == 1
    assert any("/providers/Microsoft.ResourceHealth/" in r.path for r in arm)


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["vm-nope", "-g", RG], 3, "vm-nope"),
        (["vm-rdp01", "-g", "rg-nope"], 3, "rg-nope"),
        (["vm-rdp01", "-g", RG, "--subscription", "00000000-0000-0000-0000-00000000dead"], 3, "subscription"),
        (["vm rdp01", "-g", RG], 2, "not a valid VM name"),
        (["vm-rdp01", "-g", "rg/../x"], 2, "not a valid resource group"),
        (["--ids", "/subscriptions/xyz/resourceGroups"], 2, "not a virtual machine resource ID"),
        (["--ids", VM_ID.replace("virtualMachines", "disks")], 2, "not a virtual machine resource ID"),
        (["-n", "vm-rdp01", "--ids", VM_ID], 2, "--ids cannot be combined"),
        (["vm-rdp01", "-g", RG, "--port", "0"], 2, "Port 0 is out of range"),
        (["vm-rdp01", "-g", RG, "--port", "70000"], 2, "Port 70000 is out of range"),
        (["vm-rdp01", "-g", RG, "--source-ip", "my-laptop"], 2, "not an IP address"),
        (["vm-rdp01", "-g", RG, "--protocol", "icmp"], 2, "not supported"),
        (["vm-rdp01"], 2, "needs its resource group"),
        ([], 2, "`azrdp check` needs a VM, and none was given"),
    ],
)
def test_bad_input(run: Run, args: list[str], code: int, needle: str) -> None:
    result, _ = run("healthy", *args)
    assert_one_line_error(result, code, needle)


def test_no_credentials_is_an_authentication_error(
    make_emulator: Callable[..., Emulator],
    arm_env: Callable[[Emulator], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = make_emulator("healthy")
    arm_env(emu)
    # Managed identity is the only credential allowed, and its endpoint is gone.
    monkeypatch.delenv("IDENTITY_ENDPOINT")
    monkeypatch.delenv("IDENTITY_HEADER")
    monkeypatch.setenv("AZRDP_RETRY_TOTAL", "0")
    result = runner.invoke(app, ["check", "vm-rdp01", "-g", RG])
    assert_one_line_error(result, 1, "authenticate")
    assert "az login" in result.stderr


# ---------------------------------------------------------------------------------------------
# output formats


def test_table_tsv_query_and_none(run: Run) -> None:
    result, _ = run("nsg-blocked", "vm-rdp01", "-g", RG, "--source-ip", "203.0.113.7", "-o", "table")
    assert result.exit_code == 4
    header = result.stdout.splitlines()[0].split()
    assert header == ["name", "resourceGroup", "check", "status", "severity", "detail"]
    assert "nsg-denies-rdp" in result.stdout and "FAIL" in result.stdout
    result, _ = run("nsg-blocked", "vm-rdp01", "-g", RG, "--query", "vms[0].network.verdict", "-o", "tsv")
    assert result.stdout == "denied\n" and result.exit_code == 4
    result, _ = run("healthy", "vm-rdp01", "-g", RG, "-o", "none")
    assert result.stdout == "" and result.exit_code == 0


def test_human_view_is_plain_when_not_a_terminal(run: Run) -> None:
    # CliRunner's stdout is not a TTY: without -o the document is json (same content).
    result, _ = run("healthy", "vm-rdp01", "-g", RG)
    assert json.loads(result.stdout)["vms"][0]["name"] == "vm-rdp01"


def test_human_view_renders_panels_and_fleet_table() -> None:
    from rich.console import Console

    from azrdp.cli.check import human_view

    vm = {
        "name": "web01",
        "resourceGroup": "rg",
        "status": "blocked",
        "powerState": "running",
        "osType": "Windows",
        "provisioningState": "Succeeded",
        "agent": {"status": "Ready", "version": "2.7"},
        "network": {
            "port": 3389,
            "protocol": "Tcp",
            "source": "Internet",
            "publicIp": "20.1.2.3",
            "privateIp": "10.0.0.4",
            "nsgs": {"subnet": None, "nic": "nsg1"},
            "verdict": "denied",
            "allowedSources": [],
            "decidedBy": [{"layer": "nic", "nsg": "nsg1", "rule": "deny", "priority": 100, "access": "Deny"}],
        },
        "findings": [
            {
                "id": "nsg-denies-rdp",
                "severity": "blocker",
                "title": "T",
                "evidence": "E",
                "recommendation": "R",
            }
        ],
        "error": None,
    }
    summary = {"total": 1, "healthy": 0, "blocked": 1, "errors": 0}
    console = Console(record=True, width=120, no_color=True)
    human_view({"vms": [vm], "summary": summary}, console)
    text = console.export_text()
    assert "web01" in text and "DENIED" in text and "nsg-denies-rdp" in text and "fix: R" in text
    healthy = copy.deepcopy(vm) | {"name": "ok01", "status": "healthy", "findings": []}
    many = [healthy] * 4 + [vm]
    console = Console(record=True, width=120, no_color=True)
    human_view({"vms": many, "summary": {"total": 5, "healthy": 4, "blocked": 1, "errors": 0}}, console)
    lines = [line for line in console.export_text().splitlines() if "web01" in line or "ok01" in line]
    assert lines[0].split()[0] == "web01"  # blocked first
