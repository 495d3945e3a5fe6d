"""Capacity under concurrency: admissions in flight count, so a burst cannot overshoot."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from server.errors import ApiError, MemoryBudgetExhausted, ServiceUnavailable, TooManyContainers
from server.runtime import SandboxSpec
from server.services.activity import Activity
from server.services.capacity import Capacity, Limits, human
from server.services.container_files import ContainerFileService
from server.services.containers import ContainerService, CreateContainer
from server.services.files import FileService
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
    tmp_path: Path, runtime: MemoryRuntime | None = None, **limits: int
) -> ContainerService:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.create_tables()
    containers, file_repo = ContainerRepository(db), FileRepository(db)
    defaults = {"max_containers": 100, "memory_budget": 64 << 30, "max_files_bytes": 1 << 30}
    capacity = Capacity(
        containers,
        file_repo,
        Limits(min_free_disk=0, **{**defaults, **limits}),
    )
    runtime = runtime or SlowRuntime()
    files = FileService(file_repo, BlobStore(tmp_path / "blobs"), time.time, max_bytes=1 << 20)
    cfs = ContainerFileService(containers, ContainerFileRepository(db), files, runtime, time.time)
    return ContainerService(containers, cfs, runtime, Activity(), time.time, capacity=capacity)


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
