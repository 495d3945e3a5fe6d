"""ContainerFileService on real SQLite and the in-memory runtime: expiry, vanished sandboxes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from server.errors import ContainerExpired
from server.services.activity import Activity
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
from tests.services.clock import Clock
from tests.services.memory_runtime import MemoryRuntime


@pytest.fixture
def parts(
    tmp_path: Path,
) -> tuple[ContainerService, ContainerFileService, MemoryRuntime, Clock]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.create_tables()
    runtime, clock = MemoryRuntime(), Clock()
    repo = ContainerRepository(db)
    files = FileService(FileRepository(db), BlobStore(tmp_path / "blobs"), clock, max_bytes=1000)
    cfs = ContainerFileService(repo, ContainerFileRepository(db), files, runtime, clock)
    return ContainerService(repo, cfs, runtime, Activity(), clock), cfs, runtime, clock


def test_file_operations_on_an_expired_container_are_refused(
    parts: tuple[ContainerService, ContainerFileService, MemoryRuntime, Clock],
) -> None:
    containers, cfs, _, clock = parts
    c = containers.create(CreateContainer(name="c", minutes=1))
    f = cfs.upload(c.id, "a.txt", io.BytesIO(b"abc"), 3)
    clock.now += 30
    cfs.list(c.id, order="asc", limit=10, after=None)  # activity: the deadline moves
    clock.now += 45
    assert containers.expire_due() == []
    clock.now += 20
    assert containers.expire_due() == [c.id]
    for call in (
        lambda: cfs.list(c.id, order="asc", limit=10, after=None),
        lambda: cfs.retrieve(c.id, f.id),
        lambda: cfs.content(c.id, f.id),
        lambda: cfs.delete(c.id, f.id),
        lambda: cfs.upload(c.id, "b.txt", io.BytesIO(b"b"), 1),
    ):
        with pytest.raises(ContainerExpired) as info:
            call()
        assert info.value.message == "Container is expired."
        assert info.value.status == 400


def test_a_vanished_sandbox_expires_its_container(
    parts: tuple[ContainerService, ContainerFileService, MemoryRuntime, Clock],
) -> None:
    containers, cfs, runtime, _ = parts
    c = containers.create(CreateContainer(name="c"))
    cfs.upload(c.id, "a.txt", io.BytesIO(b"abc"), 3)
    runtime.files.pop(c.id)
    runtime.sandboxes.pop(c.id)
    with pytest.raises(ContainerExpired):
        cfs.list(c.id, order="asc", limit=10, after=None)
    assert containers.retrieve(c.id).status == "expired"
