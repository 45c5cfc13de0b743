"""The Run Command runner against the emulator: agent refusal, 409 waits, time-outs, Ctrl-C, StdErr."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from azrdp.azure.runcommand import AgentNotReadyError, run_powershell
from azrdp.emulator import Emulator
from azrdp.errors import ConflictError, ExitCode, GuestError, Interrupted
from azrdp.guest import envelope as c
from azrdp.guest import scripts

RG, VM = "rg-rdp", "vm-rdp01"


@pytest.fixture
def clients(
    make_emulator: Callable[..., Emulator],
    arm_env: Callable[[Emulator], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., tuple[Emulator, Any]]:
    def go(scenario: str = "guest-healthy", **kwargs: Any) -> tuple[Emulator, Any]:
        from azrdp.azure.auth import resolve_context
        from azrdp.azure.clients import Clients

        kwargs.setdefault("runcommand_seconds", 0.05)
        emu = make_emulator(scenario, **kwargs)
        arm_env(emu)
        monkeypatch.setenv("AZRDP_POLLING_INTERVAL", "0.02")
        return emu, Clients(resolve_context())

    return go


def set_latency(emu: Emulator, seconds: float) -> None:
    with emu.store.lock:
        vm = emu.vm(RG, VM)
        assert vm is not None
        vm["guest"] = {**vm.get("guest", {}), "latencySeconds": seconds}


def run(cl: Any, **kwargs: Any) -> Any:
    return run_powershell(cl, RG, VM, scripts.script_lines("collect"), scripts.collect_parameters(), **kwargs)


def test_runs_the_script_and_returns_both_streams(clients: Callable[..., tuple[Emulator, Any]]) -> None:
    emu, cl = clients()
    phases: list[str] = []
    result = run(cl, agent_status="Ready", progress=lambda phase, elapsed: phases.append(phase))
    report = c.parse_output(result.stdout, result.stderr)
    assert report.facts is not None and report.facts.number("rdptcp", "PortNumber") == 3389
    assert result.stderr == ""
    assert result.conflict_wait_s < 1
    posts = [r for r in emu.requests if r.method == "POST"]
    assert len(posts) == 1


def test_refuses_early_when_the_agent_is_not_ready(clients: Callable[..., tuple[Emulator, Any]]) -> None:
    emu, cl = clients()
    with pytest.raises(AgentNotReadyError) as info:
        run(cl, agent_status="Not Ready")
    assert info.value.code == "agent-not-ready"
    assert "not Ready" in info.value.message
    assert not [r for r in emu.requests if r.method == "POST"]


def test_unknown_script_returns_stderr(clients: Callable[..., tuple[Emulator, Any]]) -> None:
    _, cl = clients()
    result = run_powershell(cl, RG, VM, ["hostname"], [])
    assert result.stdout == ""
    assert "runs only azrdp's own scripts" in result.stderr
    with pytest.raises(c.ContractError) as info:
        c.parse_output(result.stdout, result.stderr)
    assert info.value.message.startswith("The in-guest script failed:")


def test_waits_for_a_run_in_progress_then_runs(clients: Callable[..., tuple[Emulator, Any]]) -> None:
    emu, cl = clients()
    set_latency(emu, 0.6)
    first = threading.Thread(target=run, args=(cl,))
    first.start()
    try:
        # Wait until the first run is accepted, so the second one meets a 409.
        for _ in range(200):
            if any(r.method == "POST" and r.status == 202 for r in emu.requests):
                break
            threading.Event().wait(0.01)
        set_latency(emu, 0.05)
        waits: list[float] = []
        result = run(
            cl, wait_timeout=10, progress=lambda phase, t: waits.append(t) if phase == "waiting" else None
        )
    finally:
        first.join()
    assert c.parse_output(result.stdout).facts is not None
    assert waits, "the runner reported the 409 wait"
    statuses = [r.status for r in emu.requests if r.method == "POST"]
    assert 409 in statuses
    assert statuses.count(202) == 2


def test_gives_up_after_wait_timeout_and_explains(clients: Callable[..., tuple[Emulator, Any]]) -> None:
    emu, cl = clients()
    set_latency(emu, 3)
    first = threading.Thread(target=run, args=(cl,))
    first.start()
    try:
        for _ in range(200):
            if any(r.method == "POST" and r.status == 202 for r in emu.requests):
                break
            threading.Event().wait(0.01)
        with pytest.raises(ConflictError) as info:
            run(cl, wait_timeout=0.3)
    finally:
        first.join()
    err = info.value
    assert "Another Run Command is still in progress on VM 'vm-rdp01'" in err.message
    assert "RemoveRunCommandWindowsExtension" in err.fix
    assert f"-g {RG} -n {VM}" in err.fix
    assert err.exit_code is ExitCode.ERROR


def test_times_out_without_hanging(clients: Callable[..., tuple[Emulator, Any]]) -> None:
    emu, cl = clients()
    set_latency(emu, 3)
    with pytest.raises(GuestError) as info:
        run(cl, timeout=0.2)
    assert "did not finish within 0 s" in info.value.message or "did not finish within" in info.value.message
    assert "cannot be cancelled" in info.value.message


def test_ctrl_c_becomes_interrupted(clients: Callable[..., tuple[Emulator, Any]]) -> None:
    emu, cl = clients()
    set_latency(emu, 3)

    def press_ctrl_c(phase: str, elapsed: float) -> None:
        if phase == "running":
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as info:
        run(cl, progress=press_ctrl_c)
    assert info.value.exit_code is ExitCode.INTERRUPTED
    assert "Run Command cannot be cancelled" in info.value.message


def test_agent_that_stops_answering_is_reported(clients: Callable[..., tuple[Emulator, Any]]) -> None:
    emu, cl = clients()
    emu.set_vm_agent(RG, VM, "notReady")
    # The control plane said Ready a moment ago; the run itself then fails with the agent's error.
    with pytest.raises(AgentNotReadyError) as info:
        run(cl, agent_status="Ready")
    assert "guest agent did not answer" in info.value.message
