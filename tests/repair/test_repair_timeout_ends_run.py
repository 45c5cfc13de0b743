"""A wait that --timeout cuts short ends the run as timed out, from the worker that saw it.

The supervisor also notices the deadline on its own tick, but when the cut wait was the last work
of the run the workers could finish before that tick: the document then said `timedOut: false`
and exit 0-4 for a run whose start was cut by --timeout (seen in CI, once in several runs)."""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import HttpResponseError

from azrdp.engine.control import TIMED_OUT, Stop
from azrdp.errors import AzrdpError


class NeverDone:
    def done(self) -> bool:
        return False

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)


def spent(limit: float) -> Stop:
    stop = Stop(limit)
    time.sleep(limit + 0.05)
    return stop


def test_a_poll_cut_by_the_timeout_requests_the_timed_out_stop() -> None:
    stop = spent(0.05)
    assert not stop.requested
    with pytest.raises(AzrdpError, match=r"\(the --timeout ran out\)"):
        stop.waiter().wait_poller(NeverDone(), "the start of VM 'vm1'", 900, "fix")
    assert stop.requested and stop.reason == TIMED_OUT


def test_conflict_retries_cut_by_the_timeout_request_the_timed_out_stop() -> None:
    class Busy(HttpResponseError):
        def __init__(self) -> None:
            super().__init__(message="busy")
            self.status_code = 409
            self.error = type("E", (), {"code": "AnotherOperationInProgress", "message": "another runs"})()

    def call() -> None:
        raise Busy()

    stop = spent(0.05)
    with pytest.raises(AzrdpError, match=r"\(the --timeout ran out\)"):
        stop.waiter().retry_conflicts("NSG nsg1", call)
    assert stop.requested and stop.reason == TIMED_OUT


def test_a_wait_that_ends_in_time_requests_nothing() -> None:
    class Done(NeverDone):
        def done(self) -> bool:
            return True

        def result(self) -> str:
            return "ok"

    stop = Stop(60)
    assert stop.waiter().wait_poller(Done(), "the start of VM 'vm1'", 900, "fix") == "ok"
    assert not stop.requested
    with pytest.raises(AzrdpError, match=r"within 0 s\. "):
        no_limit = Stop()
        no_limit.waiter().wait_poller(NeverDone(), "the start of VM 'vm1'", 0, "fix")  # its own limit
    assert not no_limit.requested
