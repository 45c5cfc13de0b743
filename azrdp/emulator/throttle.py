"""ARM-style throttling: a token bucket per subscription and operation kind (reads, writes, deletes)."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottleConfig:
    """Bucket sizes and refill rates; the defaults are ARM's published per-subscription limits."""

    reads: int = 250
    reads_per_second: float = 25.0
    writes: int = 200
    writes_per_second: float = 10.0
    deletes: int = 200
    deletes_per_second: float = 10.0

    def bucket(self, kind: str) -> tuple[int, float]:
        if kind == "reads":
            return self.reads, self.reads_per_second
        if kind == "writes":
            return self.writes, self.writes_per_second
        return self.deletes, self.deletes_per_second


@dataclass
class _Bucket:
    capacity: int
    rate: float
    tokens: float
    stamp: float


class Throttle:
    def __init__(self, config: ThrottleConfig | None) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, subscription: str, kind: str) -> tuple[bool, int, int]:
        """(allowed, remaining, retry_after_seconds) for one request of `kind`."""
        if self.config is None:
            capacity, _ = ThrottleConfig().bucket(kind)
            return True, capacity - 1, 0
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get((subscription.lower(), kind))
            if bucket is None:
                capacity, rate = self.config.bucket(kind)
                bucket = self._buckets[(subscription.lower(), kind)] = _Bucket(
                    capacity, rate, float(capacity), now
                )
            bucket.tokens = min(bucket.capacity, bucket.tokens + (now - bucket.stamp) * bucket.rate)
            bucket.stamp = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return True, int(bucket.tokens), 0
            wait = (1.0 - bucket.tokens) / bucket.rate if bucket.rate > 0 else 3600.0
            return False, 0, max(1, math.ceil(wait))
