"""Action Run Command: run azrdp's script in a VM and bring back StdOut and StdErr.

* Refuses at once when the guest agent is not Ready (Run Command would otherwise hang until
  Azure gives up, up to 90 minutes).
* A 409 Conflict means another run is still in progress (there is no cancel): wait with backoff up
  to `wait_timeout`, then explain, including the RemoveRunCommandWindowsExtension way out.
* The wait reports progress (phase + elapsed seconds) to a callback, honours `timeout`, and turns
  Ctrl-C into `Interrupted` (exit 130) at once: the SDK's poller thread is a daemon, so nothing
  keeps the CLI alive.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
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


def _is_conflict(exc: Exception) -> bool:
    error = getattr(exc, "error", None)
    return getattr(exc, "status_code", None) == 409 and str(getattr(error, "code", "")) == "Conflict"


def _streams(result: Any) -> tuple[str, str]:
    stdout: list[str] = []
    stderr: list[str] = []
    for status in getattr(result, "value", None) or ():
        code = str(getattr(status, "code", "") or "")
        message = str(getattr(status, "message", "") or "")
        if "/stderr/" in code.lower():
            stderr.append(message)
        elif "/stdout/" in code.lower():
            stdout.append(message)
    return "\n".join(stdout), "\n".join(stderr)


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
    progress: RunProgress = _no_progress,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RunCommandResult:
    """Run a PowerShell script through action Run Command and return its output streams."""
    check_agent(vm_name, agent_status)
    from azure.mgmt.compute.models import RunCommandInput, RunCommandInputParameter

    body = RunCommandInput(
        command_id="RunPowerShellScript",
        script=list(script),
        parameters=[RunCommandInputParameter(name=p["name"], value=p["value"]) for p in parameters],
    )
    run = _Run(clients, resource_group, vm_name, body, progress, clock, sleep)
    try:
        poller = run.begin(wait_timeout)
        conflict_wait = clock() - run.start
        run.wait(poller, timeout)
        result = run.result(poller)
    except KeyboardInterrupt:
        raise Interrupted(
            f"Stopped waiting for Run Command on VM '{vm_name}'.",
            "The script may still be running in the guest; Run Command cannot be cancelled.",
            "Rerun in a few minutes; until the run ends the VM answers 409 Conflict.",
        ) from None
    stdout, stderr = _streams(result)
    return RunCommandResult(stdout, stderr, clock() - run.start, conflict_wait)


@dataclass
class _Run:
    clients: Clients
    resource_group: str
    vm_name: str
    body: Any  # RunCommandInput
    progress: RunProgress
    clock: Callable[[], float]
    sleep: Callable[[float], None]

    def __post_init__(self) -> None:
        self.start = self.clock()
        self.what = f"Run Command on VM '{self.vm_name}'"

    def begin(self, wait_timeout: float) -> Any:
        """Start the run; on 409 Conflict wait with backoff for the previous run to end."""
        from azure.core.exceptions import ResourceExistsError

        backoff = _BACKOFF_START
        while True:
            with translate_errors(self.what):
                try:
                    return self.clients.compute.virtual_machines.begin_run_command(
                        self.resource_group, self.vm_name, self.body
                    )
                except ResourceExistsError as exc:
                    if not _is_conflict(exc):
                        raise
            waited = self.clock() - self.start
            if waited >= wait_timeout:
                raise _conflict_error(self.vm_name, self.resource_group, waited)
            self.progress("waiting", waited)
            self._sleep_ticking(min(backoff, wait_timeout - waited))
            backoff = min(backoff * 2, _BACKOFF_MAX)

    def wait(self, poller: Any, timeout: float) -> None:
        run_start = self.clock()
        while not poller.done():
            if self.clock() - run_start >= timeout:
                raise GuestError(
                    f"Run Command on VM '{self.vm_name}' did not finish within {timeout:.0f} s.",
                    "The script keeps running in the guest (Run Command cannot be cancelled); the VM "
                    "answers 409 Conflict until it ends.",
                    "Retry later with a longer --timeout; the guest keeps a log under "
                    "C:\\WindowsAzure\\Logs\\Plugins\\Microsoft.CPlat.Core.RunCommandWindows.",
                )
            self.progress("running", self.clock() - self.start)
            with self._errors():
                poller.wait(_TICK)  # re-raises a failure of the poller's thread

    def result(self, poller: Any) -> Any:
        with self._errors():
            return poller.result()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The gateway's error mapping, plus the agent's own failure made explicit."""
        from azure.core.exceptions import HttpResponseError

        with translate_errors(self.what):
            try:
                yield
            except HttpResponseError as exc:
                if str(getattr(exc.error, "code", "")) == "VMAgentStatusCommunicationError":
                    raise AgentNotReadyError(
                        f"Run Command on VM '{self.vm_name}' failed: the guest agent did not answer.",
                        "The agent is not reporting to Azure (VMAgentStatusCommunicationError).",
                        "Check the agent with `azrdp check`; restart the VM or the guest agent services.",
                    ) from None
                raise

    def _sleep_ticking(self, seconds: float) -> None:
        """Sleep in short ticks so the spinner's elapsed time moves and Ctrl-C lands at once."""
        end = self.clock() + max(seconds, 0.0)
        while self.clock() < end:
            self.sleep(min(_TICK, end - self.clock()))
            self.progress("waiting", self.clock() - self.start)
