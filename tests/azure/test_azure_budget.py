"""The request budget: ARM's token buckets in the client, shared by every thread and every pipeline."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from azrdp.azure import budget as b
from azrdp.emulator import Emulator

SUB = "2b7c1d9e-3f4a-4b5c-8d6e-7f8091a2b3c4"


class FakeTime:
    """A clock that moves only when slept on (so the waits themselves are what is asserted)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def fake_budget() -> tuple[b.RequestBudget, FakeTime]:
    time = FakeTime()
    return b.RequestBudget(SUB, clock=time.clock, sleep=time.sleep), time


def test_kinds_and_scopes_follow_arm() -> None:
    assert [b.kind_of(m) for m in ("GET", "head", "PUT", "POST", "PATCH", "DELETE")] == [
        "reads",
        "reads",
        "writes",
        "writes",
        "writes",
        "deletes",
    ]
    url = f"https://management.azure.com/subscriptions/{SUB.upper()}/resourceGroups/rg?api-version=1"
    assert b.scope_of(url) == SUB
    assert b.scope_of("https://management.azure.com/subscriptions?api-version=2022-12-01") == b.TENANT


def test_a_burst_spends_the_bucket_then_waits_at_the_refill_rate() -> None:
    budget, time = fake_budget()
    for _ in range(250):
        budget.acquire("reads")
    assert time.slept == []  # ARM's bucket holds 250 reads
    budget.acquire("reads")
    assert sum(time.slept) == pytest.approx(1 / 25)  # then 25 a second
    for _ in range(200):
        budget.acquire("writes")
    before = sum(time.slept)
    budget.acquire("writes")
    assert sum(time.slept) - before == pytest.approx(1 / 10)  # writes: 200, then 10 a second


def test_the_remaining_header_lowers_the_bucket_for_requests_sent_since() -> None:
    budget, _ = fake_budget()
    first = budget.acquire("reads")
    for _ in range(9):
        budget.acquire("reads")  # nine more sent before the first one's answer is read
    # Someone else spent most of ARM's bucket: 20 were left when the first request arrived.
    budget.observe(first, remaining=20, retry_after=None)
    assert budget.buckets["reads"].tokens == pytest.approx(20 - 9)
    # A header that says more than the bucket holds never raises it.
    budget.observe(budget.acquire("reads"), remaining=249, retry_after=None)
    assert budget.buckets["reads"].tokens == pytest.approx(10)


def test_retry_after_closes_the_bucket_for_everyone() -> None:
    budget, time = fake_budget()
    ticket = budget.acquire("writes")
    budget.observe(ticket, remaining=None, retry_after=6.0)
    assert budget.throttled == 1
    budget.acquire("writes")  # another worker: it waits the whole Retry-After out first
    assert sum(time.slept) >= 6.0
    budget.acquire("reads")  # other kinds are not closed
    assert sum(time.slept) < 6.5


def test_retry_after_in_its_three_spellings() -> None:
    assert b.retry_after_seconds({"Retry-After": "6"}) == 6.0
    assert b.retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert b.retry_after_seconds({"x-ms-retry-after-ms": "250"}) == 0.25
    assert b.retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # past
    assert b.retry_after_seconds({}) is None


def test_one_budget_per_subscription_per_process() -> None:
    b.reset()
    assert b.budget_for(SUB.upper()) is b.budget_for(SUB)
    assert b.budget_for(b.TENANT) is not b.budget_for(SUB)


def _burst(clients: Any, count: int, threads: int) -> None:
    from azrdp.azure.arm import COMPUTE_API, subscription_path

    path = subscription_path(
        clients.subscription_id,
        "resourceGroups",
        "rg-rdp",
        "providers",
        "Microsoft.Compute",
        "virtualMachines",
        "vm-rdp01",
    )
    left = [count]
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            clients.arm.get(path, COMPUTE_API)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def test_a_burst_past_arms_bucket_is_never_throttled(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> None:
    """300 reads from 8 threads against ARM's bucket of 250 (+25/s): paced, not answered 429."""
    from azrdp.azure.auth import resolve_context
    from azrdp.azure.clients import Clients

    emu = make_emulator("guest-healthy", throttle=True)
    arm_env(emu)
    clients = Clients(resolve_context())
    _burst(clients, 300, 8)
    statuses = [r.status for r in emu.requests]
    assert len(statuses) == 300
    assert 429 not in statuses
    spent = b.budget_for(emu.subscription_id)
    assert spent.waited_s > 0 and spent.throttled == 0


def test_another_client_spending_the_bucket_is_seen_in_the_headers(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> None:
    """Someone else emptied ARM's bucket: the first answers' remaining counts hold azrdp back, and
    at most the requests already in flight meet a 429 (then Retry-After closes the bucket)."""
    from azrdp.azure.auth import resolve_context
    from azrdp.azure.clients import Clients

    emu = make_emulator("guest-healthy", throttle=True)
    arm_env(emu)
    for _ in range(240):
        emu.throttle.take(emu.subscription_id, "reads")  # another tool's reads
    clients = Clients(resolve_context())
    _burst(clients, 60, 4)
    statuses = [r.status for r in emu.requests]
    assert statuses.count(200) == 60  # every read answered in the end
    assert statuses.count(429) <= 4  # only what was in flight before the first header came back


def test_every_client_spends_from_the_budget(
    make_emulator: Callable[..., Emulator], arm_env: Callable[[Emulator], dict[str, str]]
) -> None:
    """The raw reader and every SDK client azrdp builds: one token per request, LRO polls included."""
    from azrdp.azure.arm import COMPUTE_API, resource_path
    from azrdp.azure.auth import resolve_context
    from azrdp.azure.clients import Clients

    emu = make_emulator("guest-healthy")
    arm_env(emu)
    clients = Clients(resolve_context())
    vm_id = emu.store.list("Microsoft.Compute/virtualMachines")[0]["id"]
    reads = b.budget_for(emu.subscription_id).buckets["reads"]
    writes = b.budget_for(emu.subscription_id).buckets["writes"]
    calls: list[Callable[[], Any]] = [
        lambda: clients.arm.get(resource_path(vm_id), COMPUTE_API),
        lambda: clients.compute.virtual_machines.get("rg-rdp", "vm-rdp01"),
        lambda: clients.network.network_interfaces.get("rg-rdp", "vm-rdp01-nic"),
        lambda: clients.resource_health.availability_statuses.get_by_resource(vm_id.lstrip("/")),
    ]
    for call in calls:
        before = (reads.sent, len(emu.requests))
        call()
        assert reads.sent - before[0] == len(emu.requests) - before[1] == 1
    before_reads, before_writes, before_requests = reads.sent, writes.sent, len(emu.requests)
    clients.compute.virtual_machines.begin_restart("rg-rdp", "vm-rdp01").result()
    sent = reads.sent - before_reads + writes.sent - before_writes
    assert writes.sent - before_writes == 1  # the POST
    assert sent == len(emu.requests) - before_requests  # and every poll of the operation
