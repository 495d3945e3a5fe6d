"""Capacity under concurrency: admissions in flight count, so a burst cannot overshoot."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.domain import File
from server.errors import (
    ApiError,
    MemoryBudgetExhausted,
    MemoryLimitOverHost,
    MemoryLow,
    ServiceUnavailable,
    TooManyContainers,
)
from server.runtime import ExecDone, ExecEvent, ExecRequest, SandboxSpec
from server.services.activity import Activity
from server.services.capacity import PENDING_SANDBOX_BYTES, Capacity, Limits, human
from server.services.container_files import ContainerFileService
from server.services.containers import ContainerService, CreateContainer
from server.services.files import FileService
from server.services.warm_pool import RETRY_SECONDS, WarmPool
from server.store import (
    BlobStore,
    ContainerFileRepository,
    ContainerRepository,
    Database,
    FileRepository,
)
from tests.services.memory_runtime import MemoryRuntime


class SlowRuntime(MemoryRuntime):
    """Creating a sandbox takes a while, as it does on Docker: the window a race needs."""

    def create(self, spec: SandboxSpec) -> None:
        time.sleep(0.05)
        super().create(spec)


def service(
    tmp_path: Path,
    runtime: MemoryRuntime | None = None,
    free_memory: Callable[[], int] | None = None,
    pool: WarmPool | None = None,
    **limits: int,
) -> ContainerService:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.create_tables()
    containers, file_repo = ContainerRepository(db), FileRepository(db)
    defaults = {"max_containers": 100, "max_files_bytes": 1 << 30}
    capacity = Capacity(
        containers,
        file_repo,
        Limits(min_free_disk=0, **{**defaults, **limits}),
        free_memory=free_memory,
    )
    runtime = runtime or SlowRuntime()
    files = FileService(file_repo, BlobStore(tmp_path / "blobs"), time.time, max_bytes=1 << 20)
    cfs = ContainerFileService(containers, ContainerFileRepository(db), files, runtime, time.time)
    return ContainerService(
        containers, cfs, runtime, Activity(), time.time, capacity=capacity, pool=pool
    )


def burst(svc: ContainerService, n: int, memory_limit: str = "1g") -> list[ApiError | str]:
    results: list[ApiError | str] = []

    def one(i: int) -> None:
        try:
            results.append(svc.create(CreateContainer(name=f"c{i}", memory_limit=memory_limit)).id)
        except ApiError as exc:
            results.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_a_burst_of_creates_stops_at_the_container_cap(tmp_path: Path) -> None:
    results = burst(service(tmp_path, max_containers=3), 10)
    assert sum(isinstance(r, str) for r in results) == 3
    assert all(isinstance(r, (str, TooManyContainers)) for r in results)


def test_a_burst_of_creates_stops_at_the_memory_budget(tmp_path: Path) -> None:
    results = burst(service(tmp_path, memory_budget=9 << 30), 6, "4g")
    assert sum(isinstance(r, str) for r in results) == 2
    assert all(isinstance(r, (str, MemoryBudgetExhausted)) for r in results)


FLOOR = 1 << 30


def test_a_burst_of_creates_stops_where_free_memory_would_pass_the_floor(tmp_path: Path) -> None:
    """Each started sandbox takes PENDING_SANDBOX_BYTES of the host's free memory here; those
    still starting count as if they had, so a burst cannot overshoot together."""
    runtime = SlowRuntime()

    def free() -> int:
        return (
            FLOOR
            + 3 * PENDING_SANDBOX_BYTES
            + (1 << 20)
            - len(runtime.sandboxes) * (PENDING_SANDBOX_BYTES)
        )

    svc = service(tmp_path, runtime, free, min_free_memory=FLOOR)
    results = burst(svc, 10, "16g")  # limits adding up to 160 GiB: not what is counted
    assert sum(isinstance(r, str) for r in results) == 4
    refused = [r for r in results if not isinstance(r, str)]
    assert all(isinstance(r, MemoryLow) for r in refused), refused
    assert "LOCALBOX_MIN_FREE_MEMORY (1.0 GiB)" in str(refused[0])


def test_a_limit_larger_than_the_host_is_a_400_whatever_is_free(tmp_path: Path) -> None:
    svc = service(tmp_path, host_memory=24 << 30, min_free_memory=FLOOR)
    with pytest.raises(MemoryLimitOverHost) as never:
        svc.create(CreateContainer(name="never", memory_limit="64g"))
    assert never.value.status == 400
    assert svc.create(CreateContainer(name="fits", memory_limit="16g")).id


class WarmingRuntime(MemoryRuntime):
    """Spares whose warm-up call completes at once."""

    def execute(self, container_id: str, request: ExecRequest) -> Iterator[ExecEvent]:
        yield ExecDone(status="completed", error=None, state_preserved=True)


def test_a_spare_is_not_claimed_when_memory_is_short(tmp_path: Path) -> None:
    runtime = WarmingRuntime()
    free = [64 << 30]
    pool = WarmPool(runtime, size=1, memory_bytes=1 << 30)
    pool.start()
    try:
        deadline = time.monotonic() + 10
        while pool.ready_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.ready_count() == 1
        svc = service(tmp_path, runtime, lambda: free[0], pool, min_free_memory=FLOOR)
        free[0] = FLOOR - 1
        with pytest.raises(MemoryLow):
            svc.create(CreateContainer(name="short"))
        assert pool.ready_count() == 1  # the spare is still there for later
        free[0] = 64 << 30
        assert svc.create(CreateContainer(name="room again")).id
    finally:
        pool.close(timeout=5)


def test_the_pool_waits_for_memory_before_it_makes_a_spare(tmp_path: Path) -> None:
    runtime = WarmingRuntime()
    room = threading.Event()
    pool = WarmPool(runtime, size=1, memory_bytes=1 << 30, has_room=room.is_set)
    pool.start()
    try:
        time.sleep(0.3)
        assert runtime.list_spares() == []
        room.set()
        deadline = time.monotonic() + RETRY_SECONDS + 5
        while pool.ready_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.ready_count() == 1
    finally:
        pool.close(timeout=5)


def test_a_failed_create_gives_its_slot_back(tmp_path: Path) -> None:
    runtime = SlowRuntime()
    svc = service(tmp_path, runtime, max_containers=1)
    runtime.down = True
    with pytest.raises(ServiceUnavailable):
        svc.create(CreateContainer(name="engine down"))
    runtime.down = False
    assert svc.create(CreateContainer(name="good")).id


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 bytes"), (1536, "1.5 KiB"), (24 << 30, "24.0 GiB"), (5 << 40, "5.0 TiB")]
)
def test_human_sizes(n: int, text: str) -> None:
    assert human(n) == text


def test_a_recorded_container_is_not_counted_twice(tmp_path: Path) -> None:
    """Once a create has written its record, it counts as running and no longer as in flight,
    even while it still copies its files: a create next to it is not refused at the cap."""
    svc = service(tmp_path, MemoryRuntime(), max_containers=2)
    in_window, release = threading.Event(), threading.Event()
    files = svc._files
    original = files.copy_in

    def slow_copy(container_id: str, sources: list[File]) -> None:
        in_window.set()
        release.wait(10)
        original(container_id, sources)

    files.copy_in = slow_copy  # type: ignore[method-assign]
    first = threading.Thread(target=lambda: svc.create(CreateContainer(name="first")))
    first.start()
    try:
        assert in_window.wait(10)
        files.copy_in = original  # type: ignore[method-assign]
        assert svc.create(CreateContainer(name="second")).id
        with pytest.raises(TooManyContainers):
            svc.create(CreateContainer(name="third"))
    finally:
        release.set()
        first.join()
