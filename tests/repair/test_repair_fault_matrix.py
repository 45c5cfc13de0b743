"""The fault matrix: each point of a repair crossed with each fault, on a VM that needs all three
kinds of change (a start, an NSG rule, an in-guest repair).

Points: right after the NSG write is sent, right after the VM start is sent, while the executor's
Run Command runs, and once it finished but before its result is read. Faults: Ctrl-C (a real
SIGINT to `azrdp repair` in its own process), 409 (the write refused as ARM refuses it), 503 on the
status polls (or on the final read), a connection reset, and the executor's output garbled or cut.
Each fault begins at its point: a watcher thread follows the emulator's request log and, when the
point's request is logged, installs the fault (or sends the signal).

For every cell: the document (or, after a stop, the interruption message) lists every change the
emulator shows was made; `history` tells the same story; and `undo` puts the emulator back exactly:
the digest of every NSG, every VM's power state and the guest's Windows state equals the one taken
before the repair.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from typer.testing import CliRunner

from azrdp.cli.app import app
from azrdp.emulator import Emulator, Fault
from azrdp.emulator.faults import FaultPlan
from azrdp.emulator.vmstate import power_state
from azrdp.emulator.windows import runcommand
from azrdp.guest import envelope

RG, VM = "rg-rdp", "vm-rdp01"
MY_IP = "203.0.113.10"
TS = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server"
COMPUTE_OPS = "/providers/Microsoft.Compute/locations/"
NETWORK_OPS = "/providers/Microsoft.Network/locations/"


def now() -> Any:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).replace(microsecond=0)


def digest(emu: Emulator) -> str:
    """Every NSG's rules, every VM's power state, and the guest's Windows state."""
    with emu.store.lock:
        nsgs = {
            nsg["id"].lower(): sorted(
                (
                    r["name"],
                    json.dumps({k: v for k, v in r["properties"].items() if k != "provisioningState"}),
                )
                for r in nsg["properties"].get("securityRules", [])
            )
            for nsg in emu.store.list("Microsoft.Network/networkSecurityGroups")
        }
        vms = {
            vm["id"].lower(): power_state(vm) for vm in emu.store.list("Microsoft.Compute/virtualMachines")
        }
        vm = emu.vm(RG, VM)
        assert vm is not None
        guest = runcommand.digest(runcommand.machine_of(vm, now())[0], set_aside=False)
    text = json.dumps({"nsgs": nsgs, "vms": vms, "guest": guest}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def reality(emu: Emulator, guest_before: str) -> set[str]:
    """The kinds of change the emulator shows were made on the VM."""
    kinds = set()
    with emu.store.lock:
        for nsg in emu.store.list("Microsoft.Network/networkSecurityGroups"):
            if any(
                r["name"].startswith("azrdp-allow-rdp-") for r in nsg["properties"].get("securityRules", [])
            ):
                kinds.add("nsg-rule")
        vm = emu.vm(RG, VM)
        assert vm is not None
        if power_state(vm) in ("running", "starting"):
            kinds.add("vm-start")
        if runcommand.digest(runcommand.machine_of(vm, now())[0], set_aside=False) != guest_before:
            kinds.add("guest-run")
    return kinds


def guest_digest(emu: Emulator) -> str:
    with emu.store.lock:
        vm = emu.vm(RG, VM)
        assert vm is not None
        return runcommand.digest(runcommand.machine_of(vm, now())[0], set_aside=False)


@dataclass(frozen=True)
class Cell:
    point: str  # nsg | start | run | result
    fault: str  # ctrl-c | 409 | 503 | reset | garbled | truncated
    # Faults present from the start (they must hit the point's own request).
    upfront: tuple[Fault, ...] = ()
    # Faults installed when the point is reached (they hit what follows it).
    later: tuple[Fault, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.point}-{self.fault}"


CUT = envelope.MARKER + "H4sIAAAAAAAA/6tWKkktLlGyUlAqSS0u0VFQKkktLlGyUlAqSS0u"  # a marker line cut short

CELLS = [
    # after the NSG write
    Cell("nsg", "ctrl-c"),
    Cell("nsg", "409", upfront=(Fault("another-operation", method="PUT", path_contains="/securityRules/"),)),
    Cell("nsg", "503", later=(Fault("503", method="GET", path_contains=NETWORK_OPS),)),
    Cell("nsg", "reset", upfront=(Fault("reset", method="PUT", path_contains="/securityRules/"),)),
    # after the VM start
    Cell("start", "ctrl-c"),
    Cell("start", "409", upfront=(Fault("concurrent-request", path_contains="/start"),)),
    Cell("start", "503", later=(Fault("503", method="GET", path_contains=COMPUTE_OPS),)),
    Cell("start", "reset", upfront=(Fault("reset", path_contains="/start"),)),
    # while the executor's Run Command runs
    Cell("run", "ctrl-c"),
    Cell("run", "409", upfront=(Fault("runcommand-in-progress", after=1),)),
    Cell("run", "503", later=(Fault("503", method="GET", path_contains=COMPUTE_OPS),)),
    Cell("run", "reset", later=(Fault("reset", method="GET", path_contains=COMPUTE_OPS),)),
    # the run ended in the guest; its result not read yet
    Cell("result", "ctrl-c", env={"AZRDP_POLLING_INTERVAL": "3"}),
    Cell(
        "result",
        "503",
        later=(Fault("503", method="GET", path_contains=COMPUTE_OPS, query_contains="monitor=true"),),
    ),
    Cell(
        "result",
        "reset",
        later=(Fault("reset", method="GET", path_contains=COMPUTE_OPS, query_contains="monitor=true"),),
    ),
    Cell("result", "garbled", upfront=(Fault("guest-output", after=1, stdout="AZRDP2:%%garbage%%\n"),)),
    Cell("result", "truncated", upfront=(Fault("guest-output", after=1, stdout=CUT),)),
]


def reached(emu: Emulator, point: str) -> bool:
    requests = emu.requests
    if point == "nsg":
        return any(
            r.method == "PUT" and "/securityrules/azrdp-allow-rdp-" in r.path.lower() for r in requests
        )
    if point == "start":
        return any(r.method == "POST" and r.path.lower().endswith("/start") for r in requests)
    runs = [r for r in requests if r.method == "POST" and r.path.lower().endswith("/runcommand")]
    # The executor's Run Command is the second (the collector runs once the VM is started); for
    # "result" it must have been accepted.
    return len(runs) >= 2 and (point == "run" or runs[1].status == 202)


class Watcher(threading.Thread):
    """Follows the request log; at the point, installs the later faults or sends SIGINT."""

    def __init__(self, emu: Emulator, cell: Cell, process: subprocess.Popen[str] | None = None) -> None:
        super().__init__(daemon=True)
        self.emu, self.cell, self.process = emu, cell, process
        self.fired = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            if reached(self.emu, self.cell.point):
                if self.process is not None:
                    if self.cell.point == "result":
                        time.sleep(0.6)  # the run ends in the guest (runcommand_seconds); not read yet
                    self.process.send_signal(signal.SIGINT)
                elif self.cell.later:
                    self.emu.faults = FaultPlan(list(self.cell.later))
                self.fired.set()
                return
            time.sleep(0.01)


@pytest.fixture
def broken_vm(live_emulator: Callable[..., Emulator]) -> Callable[[Cell], Emulator]:
    def start(cell: Cell) -> Emulator:
        seconds = 2.0 if cell.point == "run" and cell.fault == "ctrl-c" else 0.3
        # A slow NSG write and start, so a Ctrl-C lands while they are in flight.
        lro = 1.5 if cell.fault == "ctrl-c" and cell.point in ("nsg", "start") else 0.05
        emu = live_emulator("subnet-blocked", runcommand_seconds=seconds, lro_seconds=lro)
        emu.set_vm_power(RG, VM, "deallocated")
        with emu.store.lock:
            vm = emu.vm(RG, VM)
            assert vm is not None
            vm["guest"] = {"registry": {TS: {"fDenyTSConnections": 1}}}
        return emu

    return start


@pytest.fixture
def fault_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Give up fast: one retry of a 5xx or reset, a second of conflicts, a short grace after Ctrl-C.
    monkeypatch.setenv("AZRDP_RETRY_TOTAL", "1")
    monkeypatch.setenv("AZRDP_CONFLICT_TIMEOUT", "1")
    monkeypatch.setenv("AZRDP_INTERRUPT_GRACE", "0.3")
    yield


def repair_in_process(emu: Emulator, cell: Cell) -> tuple[int, dict[str, Any], str]:
    emu.faults = FaultPlan(list(cell.upfront))
    watcher = Watcher(emu, cell)
    watcher.start()
    try:
        result = CliRunner().invoke(
            app, ["repair", VM, "-g", RG, "--yes", "--source-ip", MY_IP, "--wait-timeout", "1", "-o", "json"]
        )
    finally:
        watcher.done.set()
    assert watcher.fired.is_set(), f"{cell.id}: the point was never reached"
    assert result.stdout, result.stderr
    return result.exit_code, json.loads(result.stdout), result.stderr


def repair_in_a_process(emu: Emulator, cell: Cell) -> tuple[int, dict[str, Any], str]:
    env = {**os.environ, **emu.exports(), "AZRDP_POLLING_INTERVAL": "0.01", **cell.env}
    process = subprocess.Popen(
        [sys.executable, "-m", "azrdp", "repair", VM, "-g", RG, "--yes", "--source-ip", MY_IP, "-o", "json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watcher = Watcher(emu, cell, process)
    watcher.start()
    try:
        stdout, stderr = process.communicate(timeout=90)
    finally:
        watcher.done.set()
        if process.poll() is None:
            process.kill()
    assert watcher.fired.is_set(), f"{cell.id}: the point was never reached"
    assert "Traceback" not in stderr, stderr
    assert stdout, stderr
    return process.returncode, json.loads(stdout), stderr


def wait_idle(emu: Emulator) -> None:
    """Let every operation the repair left running end (a Run Command cannot be cancelled, an NSG
    write goes on in Azure)."""
    deadline = time.monotonic() + 15
    while emu.ops.busy() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not emu.ops.busy()


@pytest.mark.parametrize("cell", CELLS, ids=[c.id for c in CELLS])
def test_every_change_is_reported_history_tells_the_truth_and_undo_restores(
    cell: Cell, broken_vm: Callable[[Cell], Emulator], fault_env: None
) -> None:
    emu = broken_vm(cell)
    before = digest(emu)
    guest_before = guest_digest(emu)

    if cell.fault == "ctrl-c":
        code, doc, stderr = repair_in_a_process(emu, cell)
        assert code == 130, stderr
        assert doc["interrupted"] is True
    else:
        code, doc, stderr = repair_in_process(emu, cell)
        assert code != 0, doc
    emu.faults = FaultPlan([])
    wait_idle(emu)

    (vm,) = doc["vms"]
    listed = {c["kind"] for c in vm["changes"]}
    made = reality(emu, guest_before)
    # Every change the emulator shows is in the document, with this run's id.
    assert made <= listed, (cell.id, made, vm["changes"])
    assert all(c["runId"] == vm["runId"] for c in vm["changes"])
    # Nothing is called done that did not happen.
    done = {c["kind"] for c in vm["changes"] if c["status"] == "done"}
    assert done - {"guest-run"} <= made, (cell.id, done, made)
    if cell.fault == "ctrl-c":
        # The interruption message lists each change too, and never says nothing changed.
        changed = [line for line in stderr.splitlines() if line.startswith("changed: ")]
        assert len(changed) == len(vm["changes"]), stderr
        assert ("Nothing was changed" in stderr) == (not vm["changes"]), stderr
    if vm["changes"] and (
        vm["status"] in ("interrupted", "error") or any(c["status"] == "unconfirmed" for c in vm["changes"])
    ):
        assert f"azrdp undo {VM} -g {RG} --run-id {vm['runId']}" in vm["settle"]

    # history: the same changes, with the same outcomes.
    history = CliRunner().invoke(app, ["history", VM, "-g", RG, "-o", "json"])
    assert history.exit_code == 0, history.stderr
    (run,) = json.loads(history.stdout)["vms"][0]["runs"]
    assert run["runId"] == vm["runId"]
    assert {c["entryId"]: c["outcome"] for c in run["changes"]} == {
        c["entryId"]: c["status"] for c in vm["changes"]
    }
    assert sorted(run["unconfirmed"]) == sorted(
        c["kind"] for c in vm["changes"] if c["status"] == "unconfirmed"
    )

    # undo puts everything back, and says so.
    undo = CliRunner().invoke(app, ["undo", VM, "-g", RG, "--run-id", vm["runId"], "--yes", "-o", "json"])
    assert undo.exit_code == 0, (cell.id, undo.stdout, undo.stderr)
    assert digest(emu) == before, (cell.id, undo.stdout)
    (after,) = json.loads(CliRunner().invoke(app, ["history", VM, "-g", RG, "-o", "json"]).stdout)["vms"][0][
        "runs"
    ]
    assert all(c["undone"] or c["outcome"] == "failed" for c in after["changes"]), after
    assert after["unconfirmed"] == [], after
