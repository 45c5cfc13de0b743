"""How a repair or undo stops, and what it tells about the changes it made on the way.

* `Stop`: Ctrl-C and `--timeout` as the workers see them. The first Ctrl-C *requests* a stop: no
  new VM and no new change starts, and the steps in flight get a grace period to finish; after it
  the run is *abandoned*: every wait still running ends at its next tick (the operation goes on in
  Azure or the guest). `--timeout` caps every wait with what is left of it.
* `Ledger`: every journal entry this process writes for the runs of this command, by run, as it
  is written (a `journal.watch` listener). The result document and the interruption message are
  made from it, so they can never say "nothing changed" while the journal holds a change.
* `Supervisor` / `supervise`: the per-VM work in a thread pool, watched from the calling thread:
  one VM's failure is that VM's error, a stop cancels what has not started, and after the grace
  the calling thread returns with what is done, what is in flight and what never started. Work
  may end a stage with LATER and be resumed by other work (a resource group's re-read).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from azrdp import journal
from azrdp.errors import AzrdpError, Interrupted, UsageError
from azrdp.facts import name_of

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_GRACE = 10.0  # seconds the steps in flight get after the first Ctrl-C
_TICK = 0.1
_log = logging.getLogger(__name__)

INTERRUPTED, TIMED_OUT = "interrupted", "timeout"


def grace_seconds() -> float:
    """AZRDP_INTERRUPT_GRACE, else DEFAULT_GRACE."""
    import math

    raw = os.environ.get("AZRDP_INTERRUPT_GRACE", "").strip()
    if not raw:
        return DEFAULT_GRACE
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise UsageError(
            f"AZRDP_INTERRUPT_GRACE {raw!r} is not a finite number of seconds of 0 or more.",
            fix=f"Set it to seconds, e.g. {DEFAULT_GRACE:g}, or unset it.",
        )
    return value


class Stop:
    """The stop request (Ctrl-C), the abandon after the grace, and the --timeout deadline."""

    def __init__(self, time_limit: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.time_limit = time_limit
        self.ends_at = clock() + time_limit if time_limit is not None else None
        self._requested = threading.Event()
        self._abandoned = threading.Event()
        self.reason = ""

    def request(self, reason: str = INTERRUPTED) -> None:
        if not self._requested.is_set():
            self.reason = reason
            self._requested.set()

    def abandon(self) -> None:
        self._abandoned.set()

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    @property
    def abandoned(self) -> bool:
        return self._abandoned.is_set()

    def left(self) -> float | None:
        """Seconds left of --timeout (None: no limit)."""
        return None if self.ends_at is None else self.ends_at - self.clock()

    def out_of_time(self) -> bool:
        left = self.left()
        return left is not None and left <= 0

    def waiter(self) -> Any:
        """A Waiter bounded by --timeout that stops once the run is abandoned."""
        from azrdp.azure.waits import Waiter

        return Waiter(
            ends_at=self.ends_at, stopped=lambda: self.abandoned, expired=lambda: self.request(TIMED_OUT)
        )

    def not_started(self, what: str) -> str:
        """Why `what` did not start ('' when it may)."""
        if self.requested and self.reason == INTERRUPTED:
            return f"Not started: interrupted before {what}."
        if self.requested or self.out_of_time():
            return f"Not started: the --timeout of {self.time_limit:g} s ran out before {what}."
        return ""


# --------------------------------------------------------------------------------------------
# The ledger
# --------------------------------------------------------------------------------------------


@dataclass
class LedgerItem:
    entry_id: str
    kind: str
    what: str
    run_id: str  # the run that journalled it (a shared NSG rule: its owner's)
    status: str = journal.UNCONFIRMED  # done | failed | unconfirmed
    error: str = ""

    def to_doc(self) -> dict[str, Any]:
        doc = {
            "entryId": self.entry_id,
            "kind": self.kind,
            "what": self.what,
            "runId": self.run_id,
            "status": self.status,
        }
        if self.error:
            doc["error"] = self.error
        return doc


def describe(entry: journal.JournalEntry) -> str:
    """One line naming a change from its intent."""
    details = entry.details
    vm = name_of(entry.vm_id)
    if entry.kind == "nsg-rule":
        body = details.get("body") or {}
        port = body.get("destination_port_range", "?") if isinstance(body, Mapping) else "?"
        return (
            f"NSG {name_of(str(details.get('nsg', '')))}: rule {details.get('rule')} "
            f"(priority {details.get('priority')}, {details.get('source')} -> TCP {port})"
        )
    if entry.kind == "vm-start":
        return f"VM {vm} started (it was {details.get('powerStateBefore') or 'not running'})"
    if entry.kind in ("vm-redeploy", "vm-reapply"):
        return f"VM {vm} {entry.kind.removeprefix('vm-')}ed"
    if entry.kind == "guest-run":
        steps = ", ".join(str(s) for s in details.get("steps") or ())
        return f"in-guest run {details.get('guestRun') or entry.run_id} on VM {vm}: {steps}"
    return entry.kind


class Ledger:
    """The changes this command journalled, by the run they serve (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: set[str] = set()
        self._items: dict[str, LedgerItem] = {}
        self._by_run: dict[str, list[str]] = {}

    def track(self, run_ids: Iterable[str]) -> None:
        with self._lock:
            self._runs.update(run_ids)

    def __call__(self, entry: journal.JournalEntry) -> None:
        with self._lock:
            if entry.kind in journal.INTENT_KINDS:
                served = [run for _, run in journal.shared_by(entry) if run in self._runs]
                if not served:
                    return
                self._items[entry.entry_id] = LedgerItem(
                    entry.entry_id, entry.kind, describe(entry), entry.run_id
                )
                for run in dict.fromkeys(served):
                    self._by_run.setdefault(run, []).append(entry.entry_id)
            elif entry.kind in (journal.DONE, journal.FAILED):
                item = self._items.get(str(entry.details.get("entry", "")))
                if item is not None:
                    item.status = entry.kind
                    item.error = str(entry.details.get("error") or "")

    def for_run(self, run_id: str) -> list[LedgerItem]:
        with self._lock:
            return [LedgerItem(**vars(self._items[i])) for i in self._by_run.get(run_id, ())]

    def count(self) -> int:
        with self._lock:
            return len(self._items)


# --------------------------------------------------------------------------------------------
# Supervision
# --------------------------------------------------------------------------------------------


class Later:
    """What a stage returns when the item's work goes on in a stage someone `resume`s later."""

    def __repr__(self) -> str:
        return "LATER"


LATER = Later()


@dataclass
class Outcome(Generic[T, R]):
    """What became of one item: its result, or why there is none."""

    item: T
    result: R | None = None
    error: AzrdpError | None = None  # the work raised (already isolated to this item)
    started: bool = False
    in_flight: bool = False  # still running when the caller stopped waiting
    deferred: bool = False  # a stage returned LATER and no later stage ran (the run stopped first)


@dataclass
class Supervised(Generic[T, R]):
    outcomes: list[Outcome[T, R]] = field(default_factory=list)
    unfinished: int = 0  # workers still running (abandoned)


def unexpected(exc: BaseException) -> AzrdpError:
    """An error azrdp did not foresee, kept to this VM (the traceback goes to the debug log)."""
    _log.debug("unexpected error in a VM's work", exc_info=exc)
    return AzrdpError(
        f"Unexpected {type(exc).__name__}: {exc}",
        "azrdp did not expect this; the other VMs carried on.",
        "Rerun with --debug for the traceback, and report it.",
    )


class Supervisor(Generic[T, R]):
    """The per-VM work in a pool, watched from the calling thread (`run`).

    A stage may return LATER: the item is then finished by a stage that some other work hands to
    `resume` (a fleet repair re-reads a resource group once its last VM's control-plane steps end,
    then resumes each of its VMs). A stage never blocks a worker waiting for another, so a group
    larger than the pool cannot deadlock it. After a stop nothing is resumed: the item stays
    `deferred`, and its caller says why it did not go on.
    """

    def __init__(self, workers: int, stop: Stop, grace: float) -> None:
        self.workers = workers
        self.stop = stop
        self.grace = grace
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[None]] = []
        self._current: dict[int, Future[None]] = {}
        self._outcomes: list[Outcome[T, R]] = []
        self._index: dict[int, int] = {}

    def _stage(self, index: int, work: Callable[[T], R | Later]) -> None:
        outcome = self._outcomes[index]
        if self.stop.requested:
            return
        outcome.started = True
        outcome.deferred = False
        try:
            result = work(outcome.item)
            if isinstance(result, Later):
                outcome.deferred = True
            else:
                outcome.result = result
        except Interrupted as err:  # a wait that saw the user's Ctrl-C: the whole run stops
            self.stop.request(INTERRUPTED)
            outcome.error = err
        except KeyboardInterrupt:  # a prompt in this worker was answered with Ctrl-C / Ctrl-D
            self.stop.request(INTERRUPTED)
            outcome.error = Interrupted("Interrupted at the prompt.")
        except AzrdpError as err:
            outcome.error = err
        except Exception as exc:  # one VM's bug must not sink the fleet
            outcome.error = unexpected(exc)

    def _submit(self, index: int, work: Callable[[T], R | Later]) -> None:
        with self._lock:
            if self._pool is None or self.stop.requested:
                return  # stopping (or over): the item stays deferred
            future = self._pool.submit(self._stage, index, work)
            self._futures.append(future)
            self._current[index] = future

    def resume(self, item: T, work: Callable[[T], R | Later]) -> None:
        """Run `work` on an item whose stage returned LATER (from any thread)."""
        self._submit(self._index[id(item)], work)

    def run(self, work: Callable[[T], R | Later], items: Sequence[T]) -> Supervised[T, R]:
        """Run `work` on every item, isolating each item's errors, until all are done or a stop's
        grace is over. Ctrl-C in the calling thread (no signal handler) requests the stop."""
        stop = self.stop
        self._outcomes = [Outcome[T, R](item) for item in items]
        self._index = {id(item): i for i, item in enumerate(items)}
        if not items:
            return Supervised(self._outcomes)
        workers = max(1, min(self.workers, len(items)))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="azrdp-vm")
        self._pool = pool
        for index in range(len(items)):
            self._submit(index, work)
        grace_ends: float | None = None
        try:
            while True:
                with self._lock:
                    # A stage resumes others before it ends: while any may, one is pending.
                    pending = [f for f in self._futures if not f.done()]
                if not pending:
                    break
                if not stop.requested and stop.out_of_time():
                    stop.request(TIMED_OUT)
                if stop.requested:
                    if grace_ends is None:
                        grace_ends = stop.clock() + self.grace
                        for future in pending:
                            future.cancel()
                        continue
                    if stop.clock() >= grace_ends:
                        stop.abandon()
                        break
                try:
                    wait(pending, timeout=_TICK, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    stop.request(INTERRUPTED)
        finally:
            with self._lock:
                self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
        unfinished = 0
        for index, outcome in enumerate(self._outcomes):
            last = self._current.get(index)
            if outcome.started and last is not None and not last.done():
                outcome.in_flight = True
                unfinished += 1
        return Supervised(self._outcomes, unfinished)


def supervise(
    work: Callable[[T], R], items: Sequence[T], workers: int, stop: Stop, grace: float
) -> Supervised[T, R]:
    """`Supervisor.run` for work done in one stage."""
    return Supervisor[T, R](workers, stop, grace).run(work, items)
