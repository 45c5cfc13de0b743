"""Long-running operations: created by a route, finished lazily when their time is up.

Every request first `settle()`s the book, so an operation that nobody polls still completes on time
(a VM powered off without waiting shows `stopped` a moment later). Completion callbacks run under
the store lock.
"""

from __future__ import annotations

import heapq
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from azrdp.emulator.vmstate import now_iso

OPERATION_RETENTION_S = 600.0


@dataclass
class Operation:
    id: str
    provider: str  # "Microsoft.Compute" | "Microsoft.Network"
    subscription: str
    location: str
    api_version: str
    due: float
    # Runs once when due; may return a result body (for the Location URL) or raise OperationFailed.
    on_complete: Callable[[], Any] | None = None
    status: str = "InProgress"
    result: Any = None
    error: dict[str, Any] | None = None
    start_time: str = field(default_factory=now_iso)
    end_time: str | None = None
    token: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Ids of resources this operation is working on (e.g. the VM of a run command)
    resource_key: str = ""
    kind: str = ""

    @property
    def done(self) -> bool:
        return self.status != "InProgress"


class OperationFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class OperationBook:
    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._ops: dict[str, Operation] = {}
        self._pending: list[tuple[float, int, str]] = []
        self._counter = 0
        # (resource key, kind) -> id of the newest operation on it, so conflict checks stay O(1)
        self._latest: dict[tuple[str, str], str] = {}
        self._finished: deque[tuple[float, str]] = deque()

    def create(
        self,
        *,
        provider: str,
        subscription: str,
        location: str,
        api_version: str,
        seconds: float,
        on_complete: Callable[[], Any] | None = None,
        resource_key: str = "",
        kind: str = "",
    ) -> Operation:
        op = Operation(
            id=str(uuid.uuid4()),
            provider=provider,
            subscription=subscription,
            location=location.replace(" ", "").lower() or "westeurope",
            api_version=api_version,
            due=time.monotonic() + max(0.0, seconds),
            on_complete=on_complete,
            resource_key=resource_key,
            kind=kind,
        )
        with self._lock:
            self._ops[op.id] = op
            self._counter += 1
            heapq.heappush(self._pending, (op.due, self._counter, op.id))
            if resource_key:
                self._latest[(resource_key, kind)] = op.id
        return op

    def get(self, op_id: str) -> Operation | None:
        with self._lock:
            return self._ops.get(op_id.lower()) or self._ops.get(op_id)

    def in_progress(self, resource_key: str, kind: str) -> Operation | None:
        with self._lock:
            op_id = self._latest.get((resource_key, kind))
            op = self._ops.get(op_id) if op_id else None
            return op if op is not None and not op.done else None

    def busy(self) -> bool:
        """Whether any operation is still running (tests wait for a quiet emulator)."""
        self.settle()
        with self._lock:
            return any(not op.done for op in self._ops.values())

    def settle(self) -> None:
        """Finish every operation whose time has come, oldest first."""
        now = time.monotonic()
        if not self._pending or self._pending[0][0] > now:
            return
        with self._lock:
            while self._pending and self._pending[0][0] <= now:
                _, _, op_id = heapq.heappop(self._pending)
                op = self._ops.get(op_id)
                if op is not None and not op.done:
                    self._finish(op)
                    self._finished.append((now, op.id))
            # A long-running server forgets operations ten minutes after they end (pollers are long gone).
            while self._finished and self._finished[0][0] < now - OPERATION_RETENTION_S:
                _, old = self._finished.popleft()
                self._ops.pop(old, None)

    def _finish(self, op: Operation) -> None:
        try:
            op.result = op.on_complete() if op.on_complete else None
            op.status = "Succeeded"
        except OperationFailed as failure:
            op.status = "Failed"
            op.error = {"code": failure.code, "message": failure.message}
        op.end_time = now_iso()
