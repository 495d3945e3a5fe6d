"""WarmPool's refill: it waits for a pause in takes, so that making a spare (the engine and
both cores busy) does not slow the claim or the new container's first calls. The pool's
behaviour on real Docker is in tests/api/test_warm_pool.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from server.runtime import ExecDone, ExecEvent, ExecRequest
from server.services.warm_pool import WarmPool
from tests.services.memory_runtime import MemoryRuntime


class CountingRuntime(MemoryRuntime):
    """Spares whose warm-up call completes at once; each creation is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[float] = []
        self.made = threading.Semaphore(0)

    def create_spare(self, spare_id: str, memory_bytes: int) -> None:
        super().create_spare(spare_id, memory_bytes)
        self.created.append(time.monotonic())

    def execute(self, container_id: str, request: ExecRequest) -> Iterator[ExecEvent]:
        self.made.release()
        yield ExecDone(status="completed", error=None, state_preserved=True)


def filled(size: int, delay: float) -> tuple[WarmPool, CountingRuntime]:
    runtime = CountingRuntime()
    pool = WarmPool(runtime, size=size, memory_bytes=1 << 30, refill_delay=delay)
    pool.start()
    for _ in range(size):
        assert runtime.made.acquire(timeout=10)
    deadline = time.monotonic() + 10
    while pool.ready_count() < size and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.ready_count() == size
    return pool, runtime


@pytest.fixture
def pools() -> Iterator[list[WarmPool]]:
    made: list[WarmPool] = []
    yield made
    for pool in made:
        pool.close(timeout=5)


def test_the_first_fill_does_not_wait(pools: list[WarmPool]) -> None:
    started = time.monotonic()
    pool, runtime = filled(2, delay=30)
    pools.append(pool)
    assert len(runtime.created) == 2
    assert runtime.created[-1] - started < 10  # not the 30 s a refill would wait


def test_the_refill_waits_for_a_pause_in_takes(pools: list[WarmPool]) -> None:
    pool, runtime = filled(2, delay=0.6)
    pools.append(pool)
    taken_at = time.monotonic()
    first = pool.take()
    assert first is not None
    pool.done(first, claimed=True)
    time.sleep(0.3)
    second = pool.take()  # the pause starts again from here
    assert second is not None
    pool.done(second, claimed=True)
    second_at = time.monotonic()
    for _ in range(2):
        assert runtime.made.acquire(timeout=10)
    refills = runtime.created[2:]
    assert len(refills) == 2
    assert min(refills) >= second_at + 0.6 - 0.05  # after the pause, not at the first take
    assert min(refills) - taken_at >= 0.85
    assert pool.take() is not None  # full again


def test_closing_ends_a_refill_that_waits(pools: list[WarmPool]) -> None:
    pool, runtime = filled(1, delay=60)
    spare = pool.take()
    assert spare is not None
    pool.done(spare, claimed=True)
    started = time.monotonic()
    pool.close(timeout=10)
    assert time.monotonic() - started < 5  # not the 60 s of the pause
    assert len(runtime.created) == 1  # and nothing was made after closing
