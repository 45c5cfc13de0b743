"""Injected faults: HTTP 403/404/429/500/502/503/504 or a connection reset, by probability or schedule.

Spec strings (CLI `--faults`, or `faults=` in Python), comma-separated items:
  `503:0.05`  each ARM request fails with 503 with probability 0.05
  `reset:0.01` each ARM request has its connection reset with probability 0.01
  `429@3`     the 3rd ARM request (1-based, counted since start) gets a 429
Python callers may also pass `Fault` objects, which can be limited to a method or a path substring:
`Fault("403", probability=1.0, method="GET", path_contains="/networkSecurityGroups/nic-nsg")` makes
one NSG unreadable (AuthorizationFailed, as ARM answers a caller without the read action) and
`Fault("404", ...)` makes a resource gone (ResourceNotFound).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from azrdp.errors import UsageError

KINDS = ("403", "404", "429", "500", "502", "503", "504", "reset")


@dataclass(frozen=True)
class Fault:
    kind: str  # one of KINDS
    probability: float | None = None
    at: int | None = None  # 1-based ARM request number
    method: str | None = None
    path_contains: str | None = None

    def applies(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        return not (self.path_contains and self.path_contains.lower() not in path.lower())


def parse_faults(spec: str) -> list[Fault]:
    faults = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        try:
            if "@" in item:
                kind, _, at = item.partition("@")
                fault = Fault(kind.strip().lower(), at=int(at))
                if fault.at is None or fault.at < 1:
                    raise ValueError(item)
            else:
                kind, _, prob = item.partition(":")
                fault = Fault(kind.strip().lower(), probability=float(prob))
                if not 0.0 <= (fault.probability or 0.0) <= 1.0:
                    raise ValueError(item)
        except ValueError:
            raise UsageError(
                f"Bad fault spec item '{item}'.",
                "Expected KIND:PROBABILITY (e.g. 503:0.05) or KIND@N (e.g. 429@3).",
                f"Use kinds {', '.join(KINDS)}, probabilities 0..1 and request numbers from 1.",
            ) from None
        if fault.kind not in KINDS:
            raise UsageError(
                f"Unknown fault kind '{fault.kind}' in '{item}'.",
                f"Known kinds: {', '.join(KINDS)}.",
                "Use e.g. --faults '503:0.05,reset:0.01' or '429@3,500@7'.",
            )
        faults.append(fault)
    return faults


class FaultPlan:
    def __init__(self, faults: str | Iterable[Fault] | None, seed: int) -> None:
        if faults is None:
            self.faults: list[Fault] = []
        elif isinstance(faults, str):
            self.faults = parse_faults(faults)
        else:
            self.faults = list(faults)
        self._rng = random.Random(seed)  # noqa: S311 (reproducible faults, not crypto)
        self._lock = threading.Lock()
        self._count = 0

    def next(self, method: str, path: str) -> str | None:
        """Count one ARM request; the fault kind it must suffer, if any."""
        with self._lock:
            self._count += 1
            number = self._count
            for fault in self.faults:
                if not fault.applies(method, path):
                    continue
                if fault.at is not None and fault.at == number:
                    return fault.kind
                if fault.probability is not None and self._rng.random() < fault.probability:
                    return fault.kind
        return None
