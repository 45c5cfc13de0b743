"""`azrdp diagnose` end to end: the real SDK against the emulator and its simulated Windows guests."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from fixtures_emulator import run_commands
from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator import Emulator
from azrdp.emulator.guest_scenarios import GUEST_SCENARIOS, GuestScenario
from azrdp.emulator.scenario import builtin_dir

RG, VM = "rg-rdp", "vm-rdp01"


@pytest.fixture
def start(live_emulator: Callable[..., Emulator]) -> Callable[..., Emulator]:
    def go(scenario: Any = "guest-healthy", **kwargs: Any) -> Emulator:
        kwargs.setdefault("runcommand_seconds", 0.05)
        return live_emulator(scenario, **kwargs)

    return go


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def set_guest(emu: Emulator, guest: dict[str, Any]) -> None:
    with emu.store.lock:
        vm = emu.vm(RG, VM)
        assert vm is not None
        vm["guest"] = guest


@pytest.mark.parametrize("entry", GUEST_SCENARIOS, ids=[e.name for e in GUEST_SCENARIOS])
def test_each_builtin_scenario_yields_exactly_its_findings(
    entry: GuestScenario, start: Callable[..., Emulator]
) -> None:
    emu = start(entry.scenario_name)
    result = invoke("diagnose", VM, "-g", RG, "-o", "json")
    doc = json.loads(result.stdout)
    vm = doc["vms"][0]
    guest_ids = tuple(f["id"] for f in vm["findings"] if f["source"] == "guest")
    assert guest_ids == entry.expected
    assert all(f["source"] in ("controlPlane", "guest") for f in vm["findings"])
    assert vm["guest"]["status"] == "ran"
    assert vm["guest"]["error"] is None
    assert doc["command"] == "diagnose"
    blockers = [f for f in vm["findings"] if f["severity"] == "blocker"]
    assert result.exit_code == (4 if blockers else 0), result.stderr
    assert len(run_commands(emu)) == 1


def test_builtin_scenario_files_match_the_table() -> None:
    from azrdp.emulator.guest_scenarios import scenario_document

    for entry in GUEST_SCENARIOS:
        path = builtin_dir() / f"{entry.scenario_name}.json"
        on_disk = json.loads(path.read_text(encoding="utf-8"))
        assert on_disk == scenario_document(entry), (
            f"regenerate {path.name}: python -m azrdp.emulator.guest_scenarios"
        )


def test_healthy_document_has_the_guest_block(start: Callable[..., Emulator]) -> None:
    start()
    result = invoke("diagnose", VM, "-g", RG, "-o", "json", "--source-ip", "203.0.113.7")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    guest = doc["vms"][0]["guest"]
    assert guest["os"] == {"version": "10.0.20348", "build": 20348}
    assert guest["listenerPort"] == 3389
    assert guest["sectionErrors"] == []
    assert guest["contractVersion"] == 2
    # The raw facts, camelCase: registry values with their types, as the collector read them.
    assert ["rdptcp", "PortNumber", "DWord", 3389] in [
        [e["key"], e["name"], e["kind"], e["data"]] for e in guest["facts"]["reg"]
    ]
    assert "rawTail" not in guest
    assert doc["summary"]["guest"] == {"ran": 1, "skipped": 0, "error": 0}
    assert result.stderr == ""


def test_ids_target(start: Callable[..., Emulator]) -> None:
    emu = start("guest-rdp-disabled")
    vm_id = (
        f"/subscriptions/{emu.subscription_id}/resourceGroups/{RG}"
        f"/providers/Microsoft.Compute/virtualMachines/{VM}"
    )
    result = invoke("diagnose", "--ids", vm_id, "-o", "json")
    assert result.exit_code == 4
    ids = [f["id"] for f in json.loads(result.stdout)["vms"][0]["findings"] if f["source"] == "guest"]
    assert ids == ["rdp-disabled"]


def test_check_guest_is_diagnose(start: Callable[..., Emulator]) -> None:
    emu = start("guest-tls12-server-disabled")
    by_check = invoke("check", VM, "-g", RG, "--guest", "-o", "json")
    by_diagnose = invoke("diagnose", VM, "-g", RG, "-o", "json")
    assert by_check.exit_code == by_diagnose.exit_code == 4

    def stable(text: str) -> Any:
        doc = json.loads(text)
        for vm in doc["vms"]:
            vm["guest"].pop("elapsedSeconds", None)
            vm["guest"].pop("time", None)
            vm["guest"]["facts"].pop("os", None)
        return doc

    assert stable(by_check.stdout) == stable(by_diagnose.stdout)
    assert len(run_commands(emu)) == 2


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("no-marker", "The in-guest script printed no AZRDP2: line."),
        ("truncated", "The in-guest script's output was truncated:"),
        ("damaged", "The in-guest script's output is damaged:"),
        ("cut", "The in-guest script's output was truncated."),
        ("stderr-only", "The in-guest script failed: Get-CimInstance : Access denied"),
        ("unknown-schema", "The in-guest script answered with contract version 3"),
        ("legacy", "The in-guest script answered with contract version 1"),
        ("unsupported", "The in-guest script refused to run: Windows PowerShell 4.0 is too old"),
    ],
)
def test_bad_script_output_is_a_clear_error(fault: str, message: str, start: Callable[..., Emulator]) -> None:
    emu = start()
    set_guest(emu, {"fault": fault})
    result = invoke("diagnose", VM, "-g", RG, "-o", "json")
    assert result.exit_code == 1
    assert "Traceback" not in result.stdout + result.stderr
    vm = json.loads(result.stdout)["vms"][0]
    assert vm["status"] == "error"
    assert vm["guest"]["status"] == "error"
    assert vm["guest"]["error"]["message"].startswith(message)
    assert vm["guest"]["error"]["fix"]
    assert "rawTail" not in vm["guest"]
    # Control-plane findings are still reported.
    assert any(f["source"] == "controlPlane" for f in vm["findings"])
    assert not any(f["source"] == "guest" for f in vm["findings"])


def test_debug_keeps_the_raw_tail(start: Callable[..., Emulator]) -> None:
    emu = start()
    set_guest(emu, {"fault": "damaged"})
    result = invoke("diagnose", VM, "-g", RG, "-o", "json", "--debug")
    assert result.exit_code == 1
    guest = json.loads(result.stdout)["vms"][0]["guest"]
    # The end of the damaged line, as Run Command returned it.
    assert len(guest["rawTail"]) == 600 and re.fullmatch(r"[A-Za-z0-9+/=\s]+", guest["rawTail"])
    assert "end of the raw Run Command output" in result.stderr


def test_stderr_beside_valid_output_is_surfaced(start: Callable[..., Emulator]) -> None:
    from azrdp.emulator.windows import runcommand

    emu = start("guest-rdp-disabled")

    def noisy(vm: dict[str, Any], body: dict[str, Any]) -> Any:
        out = runcommand.handle_run_command(vm, body)
        out.stderr = "WARNING: Get-WinEvent: the Security log is not accessible."
        return out

    emu.guest_handler = noisy
    result = invoke("diagnose", VM, "-g", RG, "-o", "json")
    assert result.exit_code == 4
    assert "warning: vm-rdp01: the in-guest script wrote to StdErr: WARNING: Get-WinEvent" in result.stderr
    assert json.loads(result.stdout)["vms"][0]["guest"]["stderr"].startswith("WARNING")


def test_section_errors_are_reported_not_hidden(start: Callable[..., Emulator]) -> None:
    emu = start("guest-firewall-rule-disabled")
    set_guest(
        emu,
        {
            "firewall": {"rules": {"RemoteDesktop-UserMode-In-TCP": {"enabled": False}}},
            "failingSections": ["fw"],
        },
    )
    result = invoke("diagnose", VM, "-g", RG, "-o", "json")
    guest = json.loads(result.stdout)["vms"][0]["guest"]
    assert guest["sectionErrors"] == [
        {"section": "fw", "message": "Simulated failure reading fw: Access is denied."}
    ]
    assert guest["facts"]["firewall"] is None
    # Could not read is not healthy: no firewall finding, and the error is there to see.
    assert result.exit_code == 0


def test_agent_not_ready_skips_the_run(start: Callable[..., Emulator]) -> None:
    emu = start("agent-not-ready")
    vm = json.loads(invoke("diagnose", "-g", RG, "-o", "json").stdout)["vms"][0]
    assert vm["guest"]["status"] == "skipped"
    assert "agent-not-ready" in vm["guest"]["reason"]
    assert any(f["id"] == "agent-not-ready" for f in vm["findings"])
    assert run_commands(emu) == []


def test_stopped_vm_is_skipped(start: Callable[..., Emulator]) -> None:
    emu = start("stopped")
    result = invoke("diagnose", "-g", RG, "-o", "json")
    vm = json.loads(result.stdout)["vms"][0]
    assert vm["guest"]["status"] == "skipped"
    assert result.exit_code == 4
    assert run_commands(emu) == []


def test_fleet_runs_one_command_per_vm(start: Callable[..., Emulator]) -> None:
    emu = start("fleet:12:2")
    result = invoke("diagnose", "--all", "-o", "json", "--concurrency", "4")
    doc = json.loads(result.stdout)
    ran = [vm for vm in doc["vms"] if vm["guest"]["status"] == "ran"]
    assert ran, "the generated fleet has running Windows VMs with a Ready agent"
    posted = [r.path.lower() for r in run_commands(emu)]
    assert len(posted) == len(ran) == len(set(posted))
    assert doc["summary"]["guest"]["ran"] == len(ran)
    assert doc["summary"]["total"] == len(doc["vms"])


def test_human_view_mentions_the_guest(
    start: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    start("guest-rdp-cert-expired")
    result = invoke("diagnose", VM, "-g", RG, "-o", "table")
    assert result.exit_code == 4
    assert "rdp-cert-expired" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--wait-timeout", "-1"], "--wait-timeout: -1 is too short: pass 0 or more seconds."),
        (["--concurrency", "0"], "--concurrency must be at least 1."),
        (["--port", "0"], "port"),
    ],
)
def test_bad_flags_are_usage_errors(args: list[str], message: str, start: Callable[..., Emulator]) -> None:
    start()
    result = invoke("diagnose", VM, "-g", RG, *args)
    assert result.exit_code == 2
    assert message.lower() in result.stderr.lower()
    assert result.stdout == ""


def test_missing_vm_is_exit_3(start: Callable[..., Emulator]) -> None:
    start()
    result = invoke("diagnose", "nope", "-g", RG)
    assert result.exit_code == 3
    assert result.stderr.startswith("error: ")
