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


def test_sync_follows_the_sandbox_whatever_changed_in_between(
    parts: tuple[ContainerService, ContainerFileService, MemoryRuntime, Clock],
) -> None:
    containers, cfs, runtime, _ = parts
    c = containers.create(CreateContainer(name="c"))

    def listed() -> dict[str, tuple[str, int, str]]:
        page = cfs.list(c.id, order="asc", limit=100, after=None)
        return {f.path: (f.id, f.bytes, f.source) for f in page.items}

    runtime.files[c.id].update({f"f{i}": b"x" * (i % 7) for i in range(1100)})
    first = listed()
    assert len(first) == 100
    assert listed() == first
    everything = {f.path: f for f in cfs._repo.all_for(c.id).values()}
    assert len(everything) == 1100
    assert {f.source for f in everything.values()} == {"assistant"}

    for i in range(600):  # more removed than one DELETE ... IN (...) holds
        del runtime.files[c.id][f"f{i}"]
    runtime.files[c.id]["f700"] = b"changed!"
    runtime.files[c.id]["new"] = b"n"
    cfs.sync(c.id)
    now = cfs._repo.all_for(c.id)
    assert set(now) == {f"f{i}" for i in range(600, 1100)} | {"new"}
    assert now["f700"].bytes == 8
    assert now["f700"].id == everything["f700"].id
    assert now["new"].source == "assistant"

    # Records changed by the service itself are never hidden by an unchanged listing.
    uploaded = cfs.upload(c.id, "up.txt", io.BytesIO(b"abc"), 3)
    cfs.sync(c.id)
    cfs.delete(c.id, uploaded.id)
    cfs.sync(c.id)
    assert "up.txt" not in cfs._repo.all_for(c.id)
    runtime.files[c.id]["up.txt"] = b"back"
    cfs.sync(c.id)
    assert cfs._repo.all_for(c.id)["up.txt"].source == "assistant"
