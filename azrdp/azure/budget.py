"""One request budget per subscription for the whole process, shaped like ARM's token buckets.

ARM throttles per subscription (and per tenant), per security principal, per region and per
operation type with token buckets (learn.microsoft.com/azure/azure-resource-manager/management/
request-limits-and-throttling): reads 250 tokens refilled at 25 a second, writes 200 + 10/s,
deletes 200 + 10/s. Each response says what is left in
`x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}` (`-tenant-` for tenant requests);
a throttled request is answered 429 with `Retry-After`.

So every request azrdp sends to ARM first takes a token from the bucket of its subscription and
kind, and waits for one when none is left: a fleet spends the budget at ARM's own pace instead of
earning a 429 and retrying after it. Every client azrdp builds (the SDK's and the raw-page
pipeline) carries `BudgetPolicy` right after its RetryPolicy, so SDK retries, LRO polls, pager pages
and Run Command polls all spend from the same buckets. A response's remaining-count header lowers
the bucket when someone else (another tool, another azrdp) spent from ARM's; a 429's `Retry-After`
closes the bucket for every worker until it has passed (azure-core's RetryPolicy sleeps it before
its own retry): Retry-After always wins.

The buckets live in this module (`budget_for`), one per subscription (and one for the tenant) per
process, shared by every thread; they are created full, as ARM's are for a quiet principal.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# ARM's published bucket sizes and refill rates per second (the page above; also
# /work/shared/reference/arm-wire.md section 5). The emulator's throttle uses the same figures.
ARM_BUCKETS: dict[str, tuple[int, float]] = {
    "reads": (250, 25.0),
    "writes": (200, 10.0),
    "deletes": (200, 10.0),
}
TENANT = "tenant"
_SUBSCRIPTION = re.compile(r"/subscriptions/([0-9a-fA-F-]{36})(?:/|$|\?)")
_TICK = 0.25  # longest single sleep while waiting for a token (Ctrl-C lands within it)


def kind_of(method: str) -> str:
    """ARM's operation type of an HTTP method: GET and HEAD read, DELETE deletes, the rest write."""
    method = method.upper()
    if method in ("GET", "HEAD"):
        return "reads"
    return "deletes" if method == "DELETE" else "writes"


def scope_of(url: str) -> str:
    """The subscription a request counts against (lower-case), or TENANT."""
    match = _SUBSCRIPTION.search(url)
    return match.group(1).lower() if match else TENANT


@dataclass
class Bucket:
    """One token bucket. Not locked itself: its RequestBudget holds the lock."""

    capacity: int
    rate: float
    tokens: float
    stamp: float
    closed_until: float = 0.0  # a 429's Retry-After: nobody sends before this
    sent: int = 0  # requests that took a token (their sequence numbers)

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(float(self.capacity), self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_for(self, now: float) -> float:
        """Seconds until a token may be taken (0: take it now)."""
        self.refill(now)
        if now < self.closed_until:
            return self.closed_until - now
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate if self.rate > 0 else _TICK


@dataclass
class Ticket:
    """What the policy remembers of one request to read its response's header right."""

    kind: str
    sequence: int
    sent_at: float


@dataclass
class RequestBudget:
    """ARM's buckets for one subscription (or the tenant), shared by every thread of the process."""

    scope: str
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    buckets: dict[str, Bucket] = field(default_factory=dict)
    waited_s: float = 0.0  # time spent waiting for tokens, all threads together
    throttled: int = 0  # 429 answers seen (none, when everyone spends through budgets)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        now = self.clock()
        for kind, (capacity, rate) in ARM_BUCKETS.items():
            self.buckets.setdefault(kind, Bucket(capacity, rate, float(capacity), now))

    def acquire(self, kind: str) -> Ticket:
        """Take one token of `kind`, waiting as long as ARM would make us."""
        bucket = self.buckets[kind]
        while True:
            with self._lock:
                now = self.clock()
                wait = bucket.wait_for(now)
                if wait <= 0:
                    bucket.tokens -= 1.0
                    bucket.sent += 1
                    return Ticket(kind, bucket.sent, now)
            pause = min(wait, _TICK)
            self.sleep(pause)
            with self._lock:
                self.waited_s += pause

    def observe(self, ticket: Ticket, remaining: int | None, retry_after: float | None) -> None:
        """Correct the bucket from a response: ARM's remaining count and a 429's Retry-After."""
        bucket = self.buckets[ticket.kind]
        with self._lock:
            now = self.clock()
            bucket.refill(now)
            if remaining is not None:
                # ARM counted `remaining` when this request arrived; the requests sent after it are
                # not in that count yet, and the bucket refilled since.
                later = bucket.sent - ticket.sequence
                estimate = remaining - later + (now - ticket.sent_at) * bucket.rate
                bucket.tokens = min(bucket.tokens, max(estimate, 0.0))
            if retry_after is not None:
                self.throttled += 1
                bucket.tokens = min(bucket.tokens, 0.0)
                bucket.closed_until = max(bucket.closed_until, now + retry_after)


_BUDGETS: dict[str, RequestBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def budget_for(scope: str) -> RequestBudget:
    """The process's budget for a subscription id (any case) or TENANT, created on first use."""
    key = scope.lower()
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(key)
        if budget is None:
            budget = _BUDGETS[key] = RequestBudget(key)
        return budget


def reset() -> None:
    """Forget every budget: the next request of each scope starts from full buckets (a new ARM, as
    each test's emulator is)."""
    with _BUDGETS_LOCK:
        _BUDGETS.clear()


def budgets() -> dict[str, RequestBudget]:
    """Every budget used so far in this process, by scope."""
    with _BUDGETS_LOCK:
        return dict(_BUDGETS)


def _int_header(headers: Any, name: str) -> int | None:
    value = headers.get(name) if headers is not None else None
    try:
        return int(str(value).strip()) if value is not None else None
    except ValueError:
        return None


def retry_after_seconds(headers: Any) -> float | None:
    """Retry-After (seconds or an HTTP date), retry-after-ms or x-ms-retry-after-ms, as azure-core
    reads them."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("Retry-After", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) * scale, 0.0)
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                when = parsedate_to_datetime(str(value))
            except (TypeError, ValueError):
                continue
            return max(when.timestamp() - time.time(), 0.0)
    return None


class BudgetPolicy:
    """An azure-core HTTPPolicy (the `next` / `send` protocol of azure.core.pipeline.policies):
    take a token before each attempt, correct the bucket from the response.

    Installed as a per-retry policy, so every attempt of every request spends one token, as it
    does at ARM.
    """

    next: Any  # the rest of the pipeline, set by azure-core's Pipeline

    def send(self, request: Any) -> Any:
        http_request = request.http_request
        budget = budget_for(scope_of(str(http_request.url)))
        kind = kind_of(str(http_request.method))
        ticket = budget.acquire(kind)
        response = self.next.send(request)
        http_response = response.http_response
        headers = http_response.headers
        prefix = "tenant" if budget.scope == TENANT else "subscription"
        remaining = _int_header(headers, f"x-ms-ratelimit-remaining-{prefix}-{kind}")
        retry_after = retry_after_seconds(headers) if http_response.status_code == 429 else None
        if retry_after is None and http_response.status_code == 429:
            retry_after = 1.0  # no header: still close the bucket briefly for everyone
        budget.observe(ticket, remaining, retry_after)
        return response
