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


def accepted(emu: Emulator) -> None:
    """Wait (up to 2 s) until a Run Command is accepted, so the next one meets its 409."""
    for _ in range(200):
        if any(r.method == "POST" and r.status == 202 for r in emu.requests):
            return
        threading.Event().wait(0.01)


def test_waits_for_a_run_in_progress_then_runs(clients: Callable[..., tuple[Emulator, Any]]) -> None:
    emu, cl = clients()
    set_latency(emu, 0.6)
    first = threading.Thread(target=run, args=(cl,))
    first.start()
    try:
        # Wait until the first run is accepted, so the second one meets a 409.
        accepted(emu)
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
        accepted(emu)
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


# --- adaptive polling -------------------------------------------------------------------------------


def operation_polls(emu: Emulator, since: int = 0) -> int:
    return sum(1 for r in emu.requests[since:] if r.method == "GET" and "/operations/" in r.path)


def test_the_schedule_polls_first_after_the_interval_then_backs_off() -> None:
    from azrdp.azure.runcommand import GROWTH, MAX_GAP, PollSchedule

    schedule = PollSchedule(first=2.0)
    assert schedule.delay(0.0) == 2.0  # nothing seen yet: the first poll after the interval
    schedule.polls = 1
    assert schedule.delay(2.0) == 2.0  # never closer than the interval
    assert schedule.delay(10.0) == 10.0 * GROWTH  # then in step with the time elapsed
    assert schedule.delay(600.0) == MAX_GAP  # bounded
    assert schedule.delay(2.0, retry_after=7.0) == 7.0  # Retry-After always wins


def test_the_schedule_aims_at_the_runs_seen_so_far() -> None:
    from azrdp.azure.runcommand import TAIL, PollSchedule

    schedule = PollSchedule(first=2.0, expected=lambda: 21.0)
    assert schedule.delay(0.0) == 21.0  # one poll where runs like this one ended: POST + 1 GET
    schedule.polls = 1
    assert schedule.delay(21.0) == 21.0 * TAIL  # late: close behind
    assert schedule.delay(0.0, retry_after=30.0) == 30.0


def test_a_second_run_of_the_same_script_costs_close_to_its_floor(
    clients: Callable[..., tuple[Emulator, Any]],
) -> None:
    """Two requests is the floor (the POST, one GET once it is done); with one run seen, a run of
    0.3 s polled from 20 ms on needs at most one poll more."""
    emu, cl = clients(runcommand_seconds=0.3)
    first = run(cl)
    assert first.polls >= 3  # nothing known yet: short, growing gaps
    since = len(emu.requests)
    second = run(cl)
    assert second.polls == operation_polls(emu, since) <= 2
    assert c.parse_output(second.stdout).facts is not None


def test_the_deadline_bounds_the_run(clients: Callable[..., tuple[Emulator, Any]]) -> None:
    import time

    emu, cl = clients()
    set_latency(emu, 3)
    start = time.monotonic()
    with pytest.raises(GuestError) as info:
        run(cl, deadline=time.monotonic() + 0.3)
    assert "the command's deadline" in info.value.message
    assert time.monotonic() - start < 2.5


def test_the_deadline_bounds_the_wait_for_another_run(clients: Callable[..., tuple[Emulator, Any]]) -> None:
    import time

    emu, cl = clients()
    set_latency(emu, 3)
    first = threading.Thread(target=run, args=(cl,))
    first.start()
    try:
        accepted(emu)
        with pytest.raises(ConflictError):
            run(cl, wait_timeout=60, deadline=time.monotonic() + 0.3)
    finally:
        first.join()


def test_a_run_polls_its_location_and_reads_the_result_there(
    clients: Callable[..., tuple[Emulator, Any]],
) -> None:
    """ARM's Location answers 202 while the run goes on and the result once it ends: no status
    polls of Azure-AsyncOperation and no final GET besides."""
    emu, cl = clients()
    result = run(cl)
    polls = [r for r in emu.requests if r.method == "GET" and "/operations/" in r.path]
    assert polls and all("monitor=true" in r.query for r in polls)
    assert [r.status for r in polls][-1] == 200
    assert result.polls == len(polls)
