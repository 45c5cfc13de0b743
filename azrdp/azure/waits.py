"""Bounded waits for control-plane writes: 409 conflicts retried with backoff, LROs with a deadline,
and the guest agent after a start.

Azure refuses a write while another one runs on the same resource: the network RP with 409
`AnotherOperationInProgress` ("Another operation on this or dependent resource is in progress"),
Compute with 409 `Conflict` ("The request failed due to conflict with a concurrent request"), both
also as a failed LRO. Both clear when the other operation ends, so the write is retried with
exponential backoff (starting at the polling interval, at most 30 s apart) for up to
AZRDP_CONFLICT_TIMEOUT seconds (default 120), then refused with what conflicted.

A VM start can run for a long time (the operation also tracks agent and extension provisioning;
one report: 1.5 h, Azure/azure-xplat-cli#3389), and the agent turns Ready after the power state:
AZRDP_START_TIMEOUT (default 900 s) bounds the start, AZRDP_AGENT_TIMEOUT (default 300 s) the wait
for the agent. Every timeout says what it waited for.

A Waiter may also carry the command's overall limit (`ends_at`, from `--timeout`), which caps every
wait it runs, and a `stopped` test (Ctrl-C after its grace): each wait then ends at its next tick
with Interrupted, saying what it stopped waiting for (the operation goes on in Azure).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from azrdp.azure.errormap import translate_errors
from azrdp.errors import AzureError, ConflictError, Interrupted, UsageError

if TYPE_CHECKING:
    from azrdp.azure.clients import Clients

T = TypeVar("T")
CONFLICT_CODES = ("AnotherOperationInProgress", "Conflict", "OperationNotAllowedConflict")
DEFAULT_CONFLICT_TIMEOUT = 120.0
DEFAULT_START_TIMEOUT = 900.0
DEFAULT_AGENT_TIMEOUT = 300.0
_BACKOFF_MAX = 30.0
_TICK = 0.2


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(
            f"{name} {raw!r} is not a number.", fix=f"Set {name} to seconds, e.g. {default:g}."
        ) from None
    if value < 0:
        raise UsageError(f"{name} must not be negative.", fix=f"Set {name} to seconds, e.g. {default:g}.")
    return value


def _polling_interval() -> float:
    from azrdp.azure.auth import DEFAULT_POLLING_INTERVAL

    return max(_seconds("AZRDP_POLLING_INTERVAL", DEFAULT_POLLING_INTERVAL), 0.01)


def conflict_of(exc: BaseException) -> tuple[str, str] | None:
    """(code, message) when `exc` is a write refused because another operation runs, else None.

    A 409 on the first request, or a failed LRO (status 200 in azure-core) with one of those codes.
    """
    error = getattr(exc, "error", None)
    code = str(getattr(error, "code", "") or "")
    message = str(getattr(error, "message", "") or "")
    status = getattr(exc, "status_code", None)
    if code in CONFLICT_CODES and status in (409, 200, None):
        return code, " ".join(message.split())
    return None


def _never() -> bool:
    return False


def _nothing() -> None:
    return None


@dataclass
class Waiter:
    """The clock, sleep and bounds of one wait (injectable for tests of the timing itself)."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    ends_at: float | None = None  # the command's --timeout, as a clock() value
    stopped: Callable[[], bool] = _never  # stop waiting now (Ctrl-C once its grace is over)
    expired: Callable[[], None] = _nothing  # told when a wait gives up because --timeout ran out

    def gave_up(self, limit: str) -> None:
        """A wait is giving up; `limit` (from `bound`) says whether --timeout was what ended it."""
        if limit:
            self.expired()

    def bound(self, timeout: float) -> tuple[float, str]:
        """`timeout` capped by what is left of --timeout, and the words for which limit it was."""
        if self.ends_at is not None and self.ends_at - self.clock() < timeout:
            return max(self.ends_at - self.clock(), 0.0), " (the --timeout ran out)"
        return timeout, ""

    def check_stopped(self, what: str) -> None:
        if self.stopped():
            raise Interrupted(
                f"Stopped waiting for {what}.",
                "It goes on in Azure; azrdp stopped waiting because it was interrupted.",
                "`azrdp history` lists what the run changed.",
            )

    def pause(self, seconds: float, what: str) -> None:
        """Sleep in short ticks, so a stop lands at once."""
        end = self.clock() + max(seconds, 0.0)
        while True:
            self.check_stopped(what)
            left = end - self.clock()
            if left <= 0:
                return
            self.sleep(min(_TICK, left))

    def retry_conflicts(self, what: str, call: Callable[[], T], timeout: float | None = None) -> T:
        """`call()`, retried while Azure answers that another operation on the resource runs."""
        from azure.core.exceptions import HttpResponseError

        bound = _seconds("AZRDP_CONFLICT_TIMEOUT", DEFAULT_CONFLICT_TIMEOUT) if timeout is None else timeout
        bound, limit = self.bound(bound)
        start = self.clock()
        backoff = _polling_interval()
        attempts = 0
        while True:
            attempts += 1
            try:
                return call()
            except HttpResponseError as exc:  # ResourceExistsError is one
                conflict = conflict_of(exc)
                if conflict is None:
                    raise
                waited = self.clock() - start
                if waited + backoff > bound:
                    self.gave_up(limit)
                    code, message = conflict
                    raise ConflictError(
                        f"Azure refused to change {what}: another operation on it was still in progress "
                        f"after {attempts} attempts over {waited:.0f} s{limit} ({code}: {message})",
                        "Azure runs one write at a time on a resource and the ones it depends on.",
                        "Wait for the other operation to finish (the resource's Activity log names it), then "
                        "rerun; AZRDP_CONFLICT_TIMEOUT sets how long azrdp keeps retrying.",
                    ) from None
                self.pause(backoff, what)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    def wait_poller(self, poller: Any, what: str, timeout: float, fix: str) -> Any:
        """The poller's result, or an error naming what did not finish within `timeout` seconds."""
        timeout, limit = self.bound(timeout)
        start = self.clock()
        while not poller.done():
            self.check_stopped(what)
            if self.clock() - start >= timeout:
                self.gave_up(limit)
                raise AzureError(
                    f"{what[:1].upper()}{what[1:]} did not finish within {timeout:.0f} s{limit}.",
                    "The operation goes on in Azure; azrdp stopped waiting for it.",
                    fix,
                )
            poller.wait(_TICK)  # re-raises a failure of the poller's thread
        return poller.result()


def _agent_status(view: Any) -> str | None:
    data = view.as_dict() if hasattr(view, "as_dict") else dict(view or {})
    agent = data.get("vmAgent") or {}
    for status in agent.get("statuses") or ():
        return str(status.get("displayStatus") or "") or None
    return None


def start_vm(clients: Clients, resource_group: str, name: str, waiter: Waiter | None = None) -> list[str]:
    """Start a VM and wait, within bounds, until it runs and its guest agent is Ready.

    Returns what happened, one line each; raises AzureError when the start itself does not finish
    in time, ConflictError when another operation on the VM keeps it busy.
    """
    waiter = waiter or Waiter()
    ops = clients.compute.virtual_machines
    what = f"VM '{name}'"
    start_timeout = _seconds("AZRDP_START_TIMEOUT", DEFAULT_START_TIMEOUT)
    with translate_errors(what):

        def begin_and_wait() -> Any:
            poller = ops.begin_start(resource_group, name)
            return waiter.wait_poller(
                poller, f"the start of VM '{name}'", start_timeout, "AZRDP_START_TIMEOUT"
            )

        waiter.retry_conflicts(what, begin_and_wait)
    lines: list[str] = []
    agent_timeout, limit = waiter.bound(_seconds("AZRDP_AGENT_TIMEOUT", DEFAULT_AGENT_TIMEOUT))
    began = waiter.clock()
    status: str | None = None
    with translate_errors(f"the instance view of VM '{name}'"):
        while True:
            status = _agent_status(ops.instance_view(resource_group, name))
            if (status or "").lower() == "ready":
                break
            if waiter.clock() - began >= agent_timeout:
                waiter.gave_up(limit)
                lines.append(
                    f"VM {name} runs, but its guest agent did not report Ready within {agent_timeout:.0f} s"
                    f"{limit} (it reports {status or 'nothing yet'}); in-guest steps need a Ready agent "
                    "(AZRDP_AGENT_TIMEOUT sets this wait)."
                )
                break
            waiter.pause(max(_polling_interval(), _TICK), f"the guest agent of VM '{name}'")
    return lines


def platform_action(
    clients: Clients, resource_group: str, name: str, action: str, waiter: Waiter | None = None
) -> None:
    """Redeploy or reapply a VM, retried on conflicts and bounded like a start."""
    waiter = waiter or Waiter()
    ops = clients.compute.virtual_machines
    begin = ops.begin_redeploy if action == "redeploy" else ops.begin_reapply
    timeout = _seconds("AZRDP_START_TIMEOUT", DEFAULT_START_TIMEOUT)
    what = f"VM '{name}'"
    with translate_errors(what):
        waiter.retry_conflicts(
            what,
            lambda: waiter.wait_poller(
                begin(resource_group, name),
                f"the {action} of VM '{name}'",
                timeout,
                f"Check it with `az vm get-instance-view -g {resource_group} -n {name}`, or raise "
                "AZRDP_START_TIMEOUT.",
            ),
        )


def _power_state(view: Any) -> str | None:
    data = view.as_dict() if hasattr(view, "as_dict") else dict(view or {})
    for status in data.get("statuses") or ():
        code = str(status.get("code") or "")
        if code.lower().startswith("powerstate/"):
            return code.split("/", 1)[1].lower()
    return None


def stop_vm(
    clients: Clients, resource_group: str, name: str, deallocate: bool, waiter: Waiter | None = None
) -> str | None:
    """Undo of a start: deallocate the VM (or power it off, keeping its host, when it was only
    stopped before), bounded like a start; the power state read back after."""
    waiter = waiter or Waiter()
    ops = clients.compute.virtual_machines
    action = "deallocation" if deallocate else "power-off"
    timeout = _seconds("AZRDP_START_TIMEOUT", DEFAULT_START_TIMEOUT)
    what = f"VM '{name}'"
    with translate_errors(what):
        waiter.retry_conflicts(
            what,
            lambda: waiter.wait_poller(
                ops.begin_deallocate(resource_group, name)
                if deallocate
                else ops.begin_power_off(resource_group, name),
                f"the {action} of VM '{name}'",
                timeout,
                f"Check it with `az vm get-instance-view -g {resource_group} -n {name}`, or raise "
                "AZRDP_START_TIMEOUT.",
            ),
        )
    with translate_errors(f"the instance view of VM '{name}'"):
        return _power_state(ops.instance_view(resource_group, name))
