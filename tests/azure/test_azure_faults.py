"""Faults users meet, injected by the emulator and handled by azrdp: 403 per RBAC action, tokens
ARM refuses, 409 conflicts on NSG and VM writes, a start that runs long, an agent that is late."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fixtures_emulator import run_commands
from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator import Emulator

RG, VM = "rg-rdp", "vm-rdp01"
MY_IP = "203.0.113.10"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def faults(*items: dict[str, Any]) -> str:
    return json.dumps(list(items))


def writes(emu: Emulator, method: str, tail: str) -> list[int]:
    return [r.status for r in emu.requests if r.method == method and tail in r.path.lower()]


# --- 403 ---------------------------------------------------------------------------------------


def test_403_on_a_read_names_the_action_and_the_reader_role(live_emulator: Callable[..., Emulator]) -> None:
    live_emulator(
        "healthy", faults=faults({"kind": "forbidden", "action": "Microsoft.Compute/virtualMachines/read"})
    )
    result = invoke("check", VM, "-g", RG)
    assert result.exit_code == 1 and result.stdout == ""
    error, fix = result.stderr.strip().splitlines()
    assert error.startswith("error: Access to VM 'vm-rdp01' in resource group 'rg-rdp' was denied:")
    assert "lacks the RBAC action 'Microsoft.Compute/virtualMachines/read'" in error
    assert f"/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{VM}" in error
    assert "(AuthorizationFailed)" in error
    assert fix.startswith(
        "fix: Ask for Reader (built-in) or 'azrdp diagnostician' (custom role, docs/rbac.md)"
    )


def test_a_role_without_run_command_stops_diagnose_with_the_role_to_ask_for(
    live_emulator: Callable[..., Emulator],
) -> None:
    emu = live_emulator(
        "guest-healthy",
        faults=faults({"kind": "forbidden", "action": "Microsoft.Compute/virtualMachines/runCommand/action"}),
    )
    result = invoke("diagnose", VM, "-g", RG, "-o", "json")
    text = result.stdout + result.stderr
    assert "lacks the RBAC action 'Microsoft.Compute/virtualMachines/runCommand/action'" in text
    assert "Virtual Machine Contributor (built-in)" in text
    assert result.exit_code == 1
    assert writes(emu, "POST", "/runcommand") == [403]  # refused once, never retried


# --- 401 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "code", "fix"),
    [
        ("wrong-audience", "InvalidAuthenticationTokenAudience", "Use a token for Azure Resource Manager"),
        ("expired-token", "ExpiredAuthenticationToken", "check this machine's clock"),
        ("unauthorized", "InvalidAuthenticationToken", "Sign in again"),
    ],
)
def test_tokens_arm_refuses_are_one_error_line(
    live_emulator: Callable[..., Emulator], kind: str, code: str, fix: str
) -> None:
    live_emulator("healthy", faults=faults({"kind": kind}))
    result = invoke("check", VM, "-g", RG)
    assert result.exit_code == 1 and result.stdout == ""
    error, fix_line = result.stderr.strip().splitlines()
    assert error.startswith(
        "error: Azure Resource Manager refused the access token while reading VM 'vm-rdp01'"
    )
    assert f"({code}: " in error
    assert fix in fix_line and "Traceback" not in result.stderr


def test_the_emulator_checks_the_audience_of_real_tokens(
    live_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token from the managed-identity endpoint for another resource is refused by ARM itself."""
    from azrdp.azure.auth import resolve_context
    from azrdp.azure.clients import Clients
    from azrdp.azure.inventory import get_vm_facts
    from azrdp.errors import AuthenticationError

    live_emulator("healthy")
    context = resolve_context()
    clients = Clients(context)
    assert get_vm_facts(clients, RG, VM).power_state == "running"

    from azure.identity import ManagedIdentityCredential

    class VaultToken:
        """Asks the real identity endpoint, but for Key Vault's audience."""

        def get_token(self, *scopes: str, **kw: Any) -> Any:
            return ManagedIdentityCredential().get_token("https://vault.azure.net/.default")

    context._credential[:] = [VaultToken()]  # type: ignore[list-item]
    with pytest.raises(AuthenticationError) as refused:
        get_vm_facts(Clients(context), RG, VM)
    assert "InvalidAuthenticationTokenAudience" in refused.value.message
    assert "https://vault.azure.net" in refused.value.message


# --- 409 ---------------------------------------------------------------------------------------


def test_nsg_write_conflicts_are_retried_then_succeed(live_emulator: Callable[..., Emulator]) -> None:
    emu = live_emulator("subnet-blocked", faults=faults({"kind": "another-operation", "times": 2}))
    result = invoke("repair", VM, "-g", RG, "--source-ip", MY_IP, "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert writes(emu, "PUT", "/securityrules/") == [409, 409, 201]


def test_nsg_write_conflicts_beyond_the_bound_say_what_conflicted(
    live_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = live_emulator("subnet-blocked", faults=faults({"kind": "another-operation"}))
    monkeypatch.setenv("AZRDP_CONFLICT_TIMEOUT", "0.05")
    result = invoke("repair", VM, "-g", RG, "--source-ip", MY_IP, "--yes", "-o", "json")
    vm = json.loads(result.stdout)["vms"][0]
    (step,) = [r for r in vm["repairs"] if r["id"] == "nsg-allow-rdp"]
    assert step["applied"] is False
    text = json.dumps(vm)
    assert "another operation on it was still in progress after" in text
    assert (
        "AnotherOperationInProgress: Another operation on this or dependent resource is in progress" in text
    )
    assert len(writes(emu, "PUT", "/securityrules/")) >= 2  # retried, within the bound
    assert result.exit_code != 0


def test_a_start_conflicting_with_a_concurrent_request_is_retried(
    live_emulator: Callable[..., Emulator],
) -> None:
    emu = live_emulator(
        "deallocated", faults=faults({"kind": "concurrent-request", "times": 1, "pathContains": "/start"})
    )
    result = invoke("repair", VM, "-g", RG, "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert writes(emu, "POST", "/start") == [409, 202]


# --- long waits --------------------------------------------------------------------------------


def test_a_start_that_runs_too_long_is_bounded_and_named(
    live_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = live_emulator("deallocated", faults=faults({"kind": "slow-start", "seconds": 60}))
    monkeypatch.setenv("AZRDP_START_TIMEOUT", "1")
    result = invoke("repair", VM, "-g", RG, "--yes", "-o", "json")
    vm = json.loads(result.stdout)["vms"][0]
    text = json.dumps(vm)
    assert "The start of VM 'vm-rdp01' did not finish within 1 s" in text
    assert "azrdp stopped waiting for it" in text
    assert not run_commands(emu)
    assert result.exit_code != 0


def test_an_agent_that_turns_ready_late_is_waited_for(live_emulator: Callable[..., Emulator]) -> None:
    emu = live_emulator("deallocated", faults=faults({"kind": "late-agent", "seconds": 0.5}))
    result = invoke("repair", VM, "-g", RG, "--yes", "-o", "json")
    assert result.exit_code == 0, result.stderr
    views = [r for r in emu.requests if r.path.lower().endswith("/instanceview")]
    assert len(views) >= 2  # Not Ready first, then Ready
    assert len(run_commands(emu)) == 1


def test_an_agent_that_stays_not_ready_is_reported_not_awaited_forever(
    live_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = live_emulator("deallocated", faults=faults({"kind": "late-agent", "seconds": 600}))
    monkeypatch.setenv("AZRDP_AGENT_TIMEOUT", "0.3")
    result = invoke("repair", VM, "-g", RG, "--yes", "-o", "json")
    vm = json.loads(result.stdout)["vms"][0]
    text = json.dumps(vm)
    assert "its guest agent did not report Ready within 0 s (it reports Not Ready)" in text
    assert not run_commands(emu)
    assert vm["repairs"][0]["id"] == "vm-start" and vm["repairs"][0]["applied"] is True
