"""Action Run Command: run azrdp's script in a VM and bring back StdOut and StdErr.

* Refuses at once when the guest agent is not Ready (Run Command would otherwise hang until
  Azure gives up, up to 90 minutes).
* A 409 Conflict means another run is still in progress (there is no cancel): wait with backoff up
  to `wait_timeout`, then explain, including the RemoveRunCommandWindowsExtension way out.
* The run is polled adaptively (`PollSchedule`), through the same pipeline and request budget as
  every other ARM request, so a run costs close to its floor of two requests (the POST, and one GET
  of its Location once it is done) and a fleet of runs never starves the rest of the budget.
* The wait reports progress (phase + elapsed seconds) to a callback, honours `timeout` (the run)
  and `deadline` (everything, 409 waits included, for a caller's own --timeout), and turns Ctrl-C
  into `Interrupted` (exit 130) at once: the wait runs in the caller's thread, in short ticks.

The wire (VirtualMachines_RunCommand; /work/shared/reference/arm-wire.md 2.5): `POST
.../virtualMachines/{vm}/runCommand` answers 202 with `Location` (and usually
`Azure-AsyncOperation`). ARM's asynchronous-operation contract
(github.com/Azure/azure-resource-manager-rpc, async-api-reference.md) has the Location URL answer
202 while the operation runs and, once it is done, the operation's result (200) or its error: so
polling Location alone ends with the StdOut/StdErr statuses in hand, one GET fewer than polling
Azure-AsyncOperation and then reading Location (what the SDK's poller does). Without a Location,
the Azure-AsyncOperation status is polled and its `properties.output` read.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azrdp.azure.clients import translate_errors
from azrdp.errors import ConflictError, GuestError, Interrupted

if TYPE_CHECKING:
    from azrdp.azure.clients import Clients

# phase ("waiting" for a previous run, "running" ours), seconds since the start
RunProgress = Callable[[str, float], None]

DEFAULT_WAIT_TIMEOUT = 300.0
DEFAULT_TIMEOUT = 900.0
_BACKOFF_START = 2.0
_BACKOFF_MAX = 30.0
_TICK = 0.2

# Polling (see PollSchedule): the first poll after AZRDP_POLLING_INTERVAL (default 2 s, also the
# shortest gap between two polls); before any run has ended in this process, each next poll waits
# GROWTH x the time elapsed, so a poll lands at most 50 % after the run ended; once runs have ended
# (of the same script, else of any), the first poll goes where their median ended and the ones
# after it every TAIL x elapsed. No growing gap is longer than MAX_GAP, and a Retry-After is always
# waited out.
GROWTH = 0.5
TAIL = 0.2
MAX_GAP = 15.0
HISTORY = 50  # runs remembered per script


class AgentNotReadyError(GuestError):
    code = "agent-not-ready"


def _no_progress(phase: str, elapsed: float) -> None:
    """The default progress callback."""


@dataclass(frozen=True)
class RunCommandResult:
    stdout: str
    stderr: str
    elapsed_s: float  # from the first request to the result, including any 409 wait
    conflict_wait_s: float = 0.0
    polls: int = 0  # GETs of the operation (the POSTs are 1 + the 409 retries)


class RunDurations:
    """How long runs of each script took in this process (the median guides the next polls)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, deque[float]] = {}

    def add(self, key: str, seconds: float) -> None:
        with self._lock:
            self._seen.setdefault(key, deque(maxlen=HISTORY)).append(seconds)

    def median(self, key: str) -> float | None:
        """The median run of this script; before one has ended, the median of every script's
        runs (in Azure most of a run is the Run Command extension's own start, whatever the script)."""
        with self._lock:
            seen = self._seen.get(key)
            if not seen:
                seen = deque(t for runs in self._seen.values() for t in runs)
            return statistics.median(seen) if seen else None

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


DURATIONS = RunDurations()


@dataclass
class PollSchedule:
    """When to poll a run next, from the time elapsed and the runs of the same script seen so far."""

    first: float
    expected: Callable[[], float | None] = lambda: None
    polls: int = field(default=0)

    def delay(self, elapsed: float, retry_after: float | None = None) -> float:
        """Seconds to wait, from now, before the next poll."""
        floor = self.first
        expected = self.expected()
        if expected is not None and elapsed + floor <= expected:
            gap = expected - elapsed  # sleep until runs like this one usually end
        elif self.polls == 0 and expected is None:
            gap = floor
        else:
            gap = max(floor, elapsed * (TAIL if expected is not None else GROWTH))
            gap = min(gap, max(MAX_GAP, floor))
        if retry_after is not None:
            gap = max(gap, retry_after)
        return gap


def check_agent(vm_name: str, agent_status: str | None) -> None:
    """Refuse early when the guest agent is known not to be Ready (None: unknown, try anyway)."""
    if agent_status is not None and agent_status.strip().lower() != "ready":
        raise AgentNotReadyError(
            f"Cannot run the in-guest diagnosis on VM '{vm_name}': its guest agent is {agent_status!r}, "
            "not Ready.",
            "Run Command needs a Ready agent and would wait up to 90 minutes for nothing.",
            "Fix the agent first (see the agent-not-ready finding of `azrdp check`): start the VM, or "
            "restart the WindowsAzureGuestAgent and RdAgent services from the serial console.",
        )


def _conflict_error(vm_name: str, resource_group: str, waited: float) -> ConflictError:
    return ConflictError(
        f"Another Run Command is still in progress on VM '{vm_name}' after waiting {waited:.0f} s.",
        "Azure runs one action Run Command per VM at a time and cannot cancel one; a script that "
        "hangs keeps the VM busy for up to 90 minutes.",
        f"Wait and retry (or raise --wait-timeout). If a run is stuck, remove the Run Command extension: "
        f"az vm run-command invoke -g {resource_group} -n {vm_name} --command-id "
        "RemoveRunCommandWindowsExtension",
    )


def _timeout_error(vm_name: str, waited: float, by_deadline: bool) -> GuestError:
    return GuestError(
        f"Run Command on VM '{vm_name}' did not finish within {waited:.0f} s"
        + (" (the command's deadline)." if by_deadline else "."),
        "The script keeps running in the guest (Run Command cannot be cancelled); the VM "
        "answers 409 Conflict until it ends.",
        "Retry later with a longer --timeout; the guest keeps a log under "
        "C:\\WindowsAzure\\Logs\\Plugins\\Microsoft.CPlat.Core.RunCommandWindows.",
    )


def _error_code(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, Mapping) else None
    return str(error.get("code", "")) if isinstance(error, Mapping) else ""


def streams(result: Any) -> tuple[str, str]:
    """StdOut and StdErr from a RunCommandResult's JSON (`{"value": [InstanceViewStatus, ...]}`)."""
    stdout: list[str] = []
    stderr: list[str] = []
    values = result.get("value") if isinstance(result, Mapping) else None
    for status in values if isinstance(values, list) else ():
        if not isinstance(status, Mapping):
            continue
        code = str(status.get("code") or "").lower()
        message = str(status.get("message") or "")
        if "/stderr/" in code:
            stderr.append(message)
        elif "/stdout/" in code:
            stdout.append(message)
    return "\n".join(stdout), "\n".join(stderr)


def polling_interval() -> float:
    """AZRDP_POLLING_INTERVAL (default 2 s): the first poll and the shortest gap between two."""
    from azrdp.azure.auth import DEFAULT_POLLING_INTERVAL, _float_env

    return max(_float_env("AZRDP_POLLING_INTERVAL", DEFAULT_POLLING_INTERVAL), 0.01)


def run_powershell(
    clients: Clients,
    resource_group: str,
    vm_name: str,
    script: Sequence[str],
    parameters: Sequence[Mapping[str, str]],
    *,
    agent_status: str | None = None,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
    progress: RunProgress = _no_progress,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RunCommandResult:
    """Run a PowerShell script through action Run Command and return its output streams.

    `wait_timeout` bounds the wait for another run in progress (409), `timeout` the run itself;
    `deadline` (a `clock()` value) bounds both together, for a caller with a --timeout of its own.
    """
    check_agent(vm_name, agent_status)
    body = {
        "commandId": "RunPowerShellScript",
        "script": list(script),
        "parameters": [{"name": p["name"], "value": p["value"]} for p in parameters],
    }
    key = "\n".join(script)
    run = _Run(clients, resource_group, vm_name, body, progress, clock, sleep, deadline)
    try:
        started = run.begin(wait_timeout)
        conflict_wait = clock() - run.start
        result = run.wait(started, timeout, PollSchedule(polling_interval(), lambda: DURATIONS.median(key)))
    except KeyboardInterrupt:
        raise Interrupted(
            f"Stopped waiting for Run Command on VM '{vm_name}'.",
            "The script may still be running in the guest; Run Command cannot be cancelled.",
            "Rerun in a few minutes; until the run ends the VM answers 409 Conflict.",
        ) from None
    if run.polls:
        DURATIONS.add(key, run.ran_s)
    stdout, stderr = streams(result)
    return RunCommandResult(stdout, stderr, clock() - run.start, conflict_wait, run.polls)


@dataclass(frozen=True)
class _Started:
    """Where to poll an accepted run (or its result, when Azure answered at once)."""

    location: str | None
    status_url: str | None
    result: Any = None


@dataclass
class _Run:
    clients: Clients
    resource_group: str
    vm_name: str
    body: dict[str, Any]
    progress: RunProgress
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    deadline: float | None

    def __post_init__(self) -> None:
        self.start = self.clock()
        self.what = f"Run Command on VM '{self.vm_name}'"
        self.polls = 0
        self.ran_s = 0.0

    @property
    def path(self) -> str:
        from azrdp.azure.arm import subscription_path

        return subscription_path(
            self.clients.subscription_id,
            "resourceGroups",
            self.resource_group,
            "providers",
            "Microsoft.Compute",
            "virtualMachines",
            self.vm_name,
            "runCommand",
        )

    def _left(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def begin(self, wait_timeout: float) -> _Started:
        """Start the run; on 409 Conflict wait with backoff for the previous run to end."""
        from azrdp.azure.arm import COMPUTE_API, raise_for_arm

        left = self._left()
        if left is not None:
            wait_timeout = min(wait_timeout, max(left, 0.0))
        backoff = _BACKOFF_START
        while True:
            with translate_errors(self.what):
                response = self.clients.arm.send("POST", self.path, COMPUTE_API, body=self.body)
                conflict = response.status_code == 409 and _error_code(response) == "Conflict"
                if not conflict:
                    raise_for_arm(response)
            if not conflict:
                headers = response.headers
                if response.status_code == 200:  # finished at once: the result is the answer
                    return _Started(None, None, response.json() if response.content else {})
                return _Started(headers.get("Location"), headers.get("Azure-AsyncOperation"))
            waited = self.clock() - self.start
            if waited >= wait_timeout:
                raise _conflict_error(self.vm_name, self.resource_group, waited)
            self.progress("waiting", waited)
            self._sleep_ticking(min(backoff, wait_timeout - waited), "waiting")
            backoff = min(backoff * 2, _BACKOFF_MAX)

    def wait(self, started: _Started, timeout: float, schedule: PollSchedule) -> Any:
        """Poll until the run ends; its RunCommandResult JSON."""
        from azrdp.azure.budget import retry_after_seconds

        location, status_url = started.location, started.status_url
        if location is None and status_url is None:
            return started.result if started.result is not None else {}
        run_start = self.clock()
        retry_after: float | None = None
        left = self._left()
        by_deadline = left is not None and left < timeout
        bound = min(timeout, left) if left is not None else timeout
        while True:
            elapsed = self.clock() - run_start
            gap = schedule.delay(elapsed, retry_after)
            if elapsed + gap > bound:
                # The next poll would come after the bound: one last look right at it.
                gap = max(bound - elapsed, 0.0)
            self._sleep_ticking(gap, "running")
            response = self._poll(location or status_url or "")
            schedule.polls += 1
            self.polls += 1
            headers = response.headers
            retry_after = retry_after_seconds(headers)
            done, result = self._outcome(response, location is not None)
            if done:
                self.ran_s = self.clock() - run_start
                return result
            if location is not None and headers.get("Location"):
                location = headers["Location"]
            if self.clock() - run_start >= bound:
                raise _timeout_error(self.vm_name, self.clock() - run_start, by_deadline)

    def _poll(self, url: str) -> Any:
        with self._errors():
            return self.clients.arm.send("GET", url, None)

    def _outcome(self, response: Any, via_location: bool) -> tuple[bool, Any]:
        """(finished, result) of one poll; raises the run's failure."""
        from azrdp.azure.arm import raise_for_arm

        if via_location:
            if response.status_code == 202:
                return False, None
            with self._errors():
                raise_for_arm(response)
            return True, response.json() if response.content else {}
        with self._errors():
            raise_for_arm(response)
        body = response.json()
        status = str(body.get("status", "")).lower() if isinstance(body, Mapping) else ""
        if status in ("", "inprogress", "accepted", "running", "notstarted"):
            return False, None
        if status == "succeeded":
            props = body.get("properties") if isinstance(body.get("properties"), Mapping) else {}
            return True, (props or {}).get("output") or {}
        error = body.get("error") if isinstance(body.get("error"), Mapping) else {}
        self._raise_failure(str((error or {}).get("code") or status), str((error or {}).get("message") or ""))
        return True, None  # unreachable: _raise_failure raises

    def _raise_failure(self, code: str, message: str) -> None:
        if code == "VMAgentStatusCommunicationError":
            raise AgentNotReadyError(
                f"Run Command on VM '{self.vm_name}' failed: the guest agent did not answer.",
                "The agent is not reporting to Azure (VMAgentStatusCommunicationError).",
                "Check the agent with `azrdp check`; restart the VM or the guest agent services.",
            )
        raise GuestError(f"Run Command on VM '{self.vm_name}' failed ({code}): {message}".rstrip(": "))

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The gateway's error mapping, plus the agent's own failure made explicit."""
        from azure.core.exceptions import HttpResponseError

        with translate_errors(self.what):
            try:
                yield
            except HttpResponseError as exc:
                code = str(getattr(exc.error, "code", "") or "")
                if code == "VMAgentStatusCommunicationError":
                    self._raise_failure(code, "")
                raise

    def _sleep_ticking(self, seconds: float, phase: str) -> None:
        """Sleep in short ticks so the spinner's elapsed time moves and Ctrl-C lands at once."""
        end = self.clock() + max(seconds, 0.0)
        while True:
            self.progress(phase, self.clock() - self.start)
            left = end - self.clock()
            if left <= 0:
                return
            self.sleep(min(_TICK, left))
