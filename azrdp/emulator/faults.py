"""Injected faults: wrong answers (HTTP errors, resets) and slow behaviour (a long start, a late agent).

Two spellings, for `--faults` on the command line or `faults=` in Python:

* the short string form, comma-separated: `503:0.05` (probability), `429@3` (the 3rd ARM request,
  1-based, counted since start), `reset:0.01`;
* a JSON list of fault objects (or `@FILE` holding one):
  `[{"kind": "forbidden", "action": "Microsoft.Compute/virtualMachines/runCommand/action"},
    {"kind": "another-operation", "times": 2}, {"kind": "slow-start", "seconds": 300, "vm": "vm1"}]`
  Keys: `kind`; at most one of `probability`, `at` (request number) and `times` (the first N
  requests in its scope); optional `method`, `pathContains`, `queryContains` (in the query string),
  `vm` (VM name in the path), `action`
  (`forbidden` only: the RBAC action refused, `*` wildcards allowed) and `seconds` (`slow-start`,
  `late-agent`), `after` (let the first N requests in scope through first), and for `guest-output`
  `stdout` / `stderr` (the text that replaces that stream of the Run Command's result). Without
  `probability`, `at` or `times` a fault hits every request in its scope.

Every kind has a scope (which requests it can hit) that `method`, `pathContains` and `vm` narrow.
"""

from __future__ import annotations

import fnmatch
import json
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azrdp.errors import UsageError

# kind -> (what it does, its scope)
ANSWER_KINDS: dict[str, str] = {
    "429": "429 SubscriptionRequestsThrottled with Retry-After: 1",
    "500": "500 InternalServerError",
    "502": "502 GatewayError",
    "503": "503 ServiceUnavailable",
    "504": "504 GatewayError",
    "reset": "the connection is reset (TCP RST) before any answer",
    "unauthorized": "401 InvalidAuthenticationToken",
    "expired-token": "401 ExpiredAuthenticationToken",
    "wrong-audience": "401 InvalidAuthenticationTokenAudience",
    "forbidden": "403 AuthorizationFailed naming the request's RBAC action (`action` limits it to one)",
    "not-found": "404 ResourceNotFound naming the resource in the path (a resource that is gone)",
    "another-operation": "409 AnotherOperationInProgress on Microsoft.Network writes (PUT, PATCH, DELETE)",
    "concurrent-request": "409 Conflict on Microsoft.Compute writes: a conflict with a concurrent request",
    "runcommand-in-progress": "409 Conflict on action Run Command: another run is in progress",
}
BEHAVIOUR_KINDS: dict[str, str] = {
    "slow-start": "a VM start or restart runs `seconds` (default 300) instead of lro_seconds",
    "late-agent": "after a start the guest agent reports Not Ready for `seconds` (default 120)",
    # The script runs (the guest changes as it would), only the output azrdp reads is replaced.
    "guest-output": "the Run Command runs, but its result carries `stdout` / `stderr` as given",
}
ALIASES = {"401": "unauthorized", "403": "forbidden", "404": "not-found"}
KINDS = (*ANSWER_KINDS, *BEHAVIOUR_KINDS)
DEFAULT_SECONDS = {"slow-start": 300.0, "late-agent": 120.0}
_KEYS = frozenset(
    {
        "kind",
        "probability",
        "at",
        "times",
        "after",
        "method",
        "pathContains",
        "queryContains",
        "vm",
        "action",
        "seconds",
        "stdout",
        "stderr",
    }
)


@dataclass(frozen=True)
class Fault:
    kind: str  # one of KINDS
    probability: float | None = None
    at: int | None = None  # 1-based ARM request number
    method: str | None = None
    path_contains: str | None = None
    vm: str | None = None
    query_contains: str | None = None  # e.g. "monitor=true": an LRO's final GET, not its status polls
    action: str | None = None  # forbidden: the RBAC action refused (fnmatch pattern)
    seconds: float | None = None  # slow-start, late-agent
    times: int | None = None  # the first N requests in scope
    after: int = 0  # requests in scope let through before the fault may hit
    stdout: str | None = None  # guest-output: the Run Command's StdOut (None: left as it is)
    stderr: str | None = None  # guest-output: its StdErr

    def in_scope(self, method: str, path: str, action: str = "", query: str = "") -> bool:
        """Whether this fault may hit a request (its kind's scope, narrowed by its filters)."""
        method = method.upper()
        lowered = path.lower()
        if self.method and self.method.upper() != method:
            return False
        if self.path_contains and self.path_contains.lower() not in lowered:
            return False
        if self.query_contains and self.query_contains.lower() not in query.lower():
            return False
        if self.vm and f"/virtualmachines/{self.vm.lower()}/" not in lowered + "/":
            return False
        if self.kind == "forbidden" and self.action:
            return fnmatch.fnmatchcase(action.lower(), self.action.lower())
        if self.kind == "another-operation":
            return "/providers/microsoft.network/" in lowered and method in ("PUT", "PATCH", "DELETE")
        if self.kind == "concurrent-request":
            return "/providers/microsoft.compute/" in lowered and method in ("PUT", "PATCH", "DELETE", "POST")
        if self.kind in ("runcommand-in-progress", "guest-output"):
            return method == "POST" and lowered.rstrip("/").endswith("/runcommand")
        return True

    @property
    def duration(self) -> float:
        return self.seconds if self.seconds is not None else DEFAULT_SECONDS.get(self.kind, 0.0)


def _usage(item: str, problem: str) -> UsageError:
    return UsageError(
        f"Bad fault {item}: {problem}",
        fix="Use e.g. --faults '503:0.05,429@3' or a JSON list such as "
        '\'[{"kind": "forbidden", "action": "Microsoft.Compute/virtualMachines/runCommand/action"}]\' '
        f"(kinds: {', '.join(KINDS)}; see docs/emulator.md).",
    )


def _kind(raw: Any, item: str) -> str:
    kind = ALIASES.get(str(raw).strip().lower(), str(raw).strip().lower())
    if kind not in KINDS:
        raise _usage(item, f"unknown kind '{raw}'.")
    return kind


def _parse_short(spec: str) -> list[Fault]:
    faults = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        try:
            if "@" in item:
                kind, _, at = item.partition("@")
                fault = Fault(_kind(kind, f"'{item}'"), at=int(at))
                if fault.at is None or fault.at < 1:
                    raise ValueError(item)
            elif ":" in item:
                kind, _, prob = item.partition(":")
                fault = Fault(_kind(kind, f"'{item}'"), probability=float(prob))
                if not 0.0 <= (fault.probability or 0.0) <= 1.0:
                    raise ValueError(item)
            else:
                fault = Fault(_kind(item, f"'{item}'"))
        except ValueError:
            raise _usage(
                f"'{item}'", "expected KIND:PROBABILITY (e.g. 503:0.05), KIND@N (e.g. 429@3) or KIND."
            ) from None
        if fault.kind == "guest-output":
            raise _usage(
                f"'{item}'", "guest-output needs its text: use the JSON form with 'stdout'/'stderr'."
            )
        faults.append(fault)
    return faults


def _number(obj: Mapping[str, Any], name: str, where: str, *, integer: bool = False) -> Any:
    value = obj.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (integer and not isinstance(value, int))
    ):
        raise _usage(where, f"'{name}' must be a{'n integer' if integer else ' number'}.")
    return value


def _string(obj: Mapping[str, Any], name: str, where: str) -> str | None:
    value = obj.get(name)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise _usage(where, f"'{name}' must be a non-empty string.")
    return value


def _text(obj: Mapping[str, Any], name: str, where: str) -> str | None:
    """A replacement output stream: any string, the empty one included (an empty StdOut)."""
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise _usage(where, f"'{name}' must be a string.")
    return value


def fault_from_json(obj: Any, index: int = 0) -> Fault:
    where = f"[{index}]"
    if not isinstance(obj, dict):
        raise _usage(where, "expected an object with a 'kind'.")
    unknown = sorted(set(obj) - _KEYS)
    if unknown:
        raise _usage(where, f"unknown key '{unknown[0]}' (allowed: {', '.join(sorted(_KEYS))}).")
    if "kind" not in obj:
        raise _usage(where, "'kind' is required.")
    kind = _kind(obj["kind"], where)
    probability = _number(obj, "probability", where)
    at = _number(obj, "at", where, integer=True)
    times = _number(obj, "times", where, integer=True)
    after = _number(obj, "after", where, integer=True)
    seconds = _number(obj, "seconds", where)
    if sum(x is not None for x in (probability, at, times)) > 1:
        raise _usage(where, "give at most one of 'probability', 'at' and 'times'.")
    if probability is not None and not 0.0 <= probability <= 1.0:
        raise _usage(where, "'probability' must be between 0 and 1.")
    if (at is not None and at < 1) or (times is not None and times < 1):
        raise _usage(where, "'at' and 'times' count from 1.")
    if after is not None and (after < 0 or at is not None):
        raise _usage(where, "'after' is a count of 0 or more, and 'at' already names one request.")
    if seconds is not None and (seconds < 0 or kind not in DEFAULT_SECONDS):
        raise _usage(where, "'seconds' is a non-negative number, for slow-start and late-agent only.")
    stdout, stderr = _text(obj, "stdout", where), _text(obj, "stderr", where)
    if (stdout is not None or stderr is not None) != (kind == "guest-output"):
        raise _usage(where, "'stdout' and 'stderr' belong to kind guest-output, which needs at least one.")
    action = _string(obj, "action", where)
    if action is not None and kind != "forbidden":
        raise _usage(where, "'action' belongs to kind forbidden only.")
    return Fault(
        kind,
        probability=probability,
        at=at,
        times=times,
        method=_string(obj, "method", where),
        path_contains=_string(obj, "pathContains", where),
        query_contains=_string(obj, "queryContains", where),
        vm=_string(obj, "vm", where),
        action=action,
        seconds=seconds,
        after=after or 0,
        stdout=stdout,
        stderr=stderr,
    )


def parse_faults(spec: str) -> list[Fault]:
    """Faults from the short string form, a JSON list, or `@FILE` holding a JSON list."""
    text = spec.strip()
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8-sig").strip()
        except OSError as exc:
            raise UsageError(
                f"Cannot read the fault file '{path}': {exc.strerror or exc}.",
                fix="Check the path after '@'.",
            ) from None
    if not text.startswith(("[", "{")):
        return _parse_short(text)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _usage("list", f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}).") from None
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise _usage("list", "expected a JSON list of fault objects.")
    return [fault_from_json(item, index) for index, item in enumerate(doc)]


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 (reproducible faults, not crypto)
        self._lock = threading.Lock()
        self._count = 0
        self._hits: dict[int, int] = {}
        self._seen: dict[int, int] = {}  # requests in scope so far, per fault (for `after`)

    @classmethod
    def of(cls, faults: str | Iterable[Fault] | None, seed: int) -> FaultPlan:
        if faults is None:
            return cls([], seed)
        if isinstance(faults, str):
            return cls(parse_faults(faults), seed)
        return cls(list(faults), seed)

    def count(self) -> int:
        """Count one ARM request; its 1-based number."""
        with self._lock:
            self._count += 1
            return self._count

    def _fires(self, index: int, fault: Fault, number: int | None) -> bool:
        if fault.after:
            seen = self._seen.get(index, 0)
            self._seen[index] = seen + 1
            if seen < fault.after:
                return False
        if fault.at is not None:
            return number == fault.at
        if fault.probability is not None:
            return self._rng.random() < fault.probability
        if fault.times is not None:
            hits = self._hits.get(index, 0)
            if hits >= fault.times:
                return False
            self._hits[index] = hits + 1
        return True

    def answer(self, number: int, method: str, path: str, action: str = "", query: str = "") -> Fault | None:
        """The answer fault request `number` must suffer, if any."""
        with self._lock:
            for index, fault in enumerate(self.faults):
                in_scope = fault.kind in ANSWER_KINDS and fault.in_scope(method, path, action, query)
                if in_scope and self._fires(index, fault, number):
                    return fault
        return None

    def behaviour(self, kind: str, path: str, number: int | None = None) -> Fault | None:
        """A behaviour fault (`slow-start`, `late-agent`, `guest-output`) for the POST to `path`,
        ARM request `number` (for `at`)."""
        with self._lock:
            for index, fault in enumerate(self.faults):
                if fault.kind == kind and fault.in_scope("POST", path) and self._fires(index, fault, number):
                    return fault
        return None
