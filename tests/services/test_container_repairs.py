"""ContainerService repairs over real SQLite and an in-memory runtime: deletes cut short are
finished, one bad record never stops a reconcile, and a container past its deadline is never
revived, whether or not the sweep has run."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from server.errors import ContainerExpired, ContainerNotFound
from server.runtime import SandboxInfo, SandboxRuntimeError
from server.services.activity import Activity
from server.services.container_files import ContainerFileService
from server.services.containers import ContainerService, CreateContainer
from server.services.files import FileService
from server.store import (
    DELETING,
    BlobStore,
    ContainerFileRepository,
    ContainerRepository,
    Database,
    FileRepository,
)
from tests.services.clock import Clock
from tests.services.memory_runtime import MemoryRuntime


class Parts:
    def __init__(self, tmp_path: Path, runtime: MemoryRuntime | None = None) -> None:
        db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
        db.create_tables()
        self.runtime, self.clock, self.activity = (
            runtime or MemoryRuntime(),
            Clock(1_000_000.0),
            Activity(),
        )
        self.repo = ContainerRepository(db)
        files = FileService(
            FileRepository(db), BlobStore(tmp_path / "blobs"), self.clock, max_bytes=1 << 20
        )
        self.files = ContainerFileService(
            self.repo, ContainerFileRepository(db), files, self.runtime, self.clock
        )
        self.service = ContainerService(
            self.repo, self.files, self.runtime, self.activity, self.clock
        )

    def listed(self) -> dict[str, str]:
        page = self.service.list(order="desc", limit=100, after=None, before=None, name=None)
        return {c.id: c.status for c in page.items}


@pytest.fixture
def parts(tmp_path: Path) -> Parts:
    return Parts(tmp_path)


def test_a_delete_while_the_engine_is_down_answers_and_is_finished_later(parts: Parts) -> None:
    c = parts.service.create(CreateContainer(name="c"))
    parts.runtime.down = True
    parts.service.delete(c.id)  # the record says "deleting": gone for the API at once
    with pytest.raises(ContainerNotFound):
        parts.service.retrieve(c.id)
    assert c.id not in parts.listed()
    assert parts.repo.get(c.id) is not None
    with pytest.raises(SandboxRuntimeError):
        parts.service.reconcile(grace_seconds=0)  # still down: nothing is lost
    parts.runtime.down = False
    parts.service.reconcile(grace_seconds=0)
    assert c.id not in parts.runtime.sandboxes
    assert parts.repo.get(c.id) is None


def test_reconcile_finishes_a_delete_cut_short(parts: Parts) -> None:
    c = parts.service.create(CreateContainer(name="c"))
    parts.files.upload(c.id, "a.txt", io.BytesIO(b"a"), 1)
    parts.repo.mark_deleting(c.id)  # what a kill right after the delete began leaves
    parts.service.reconcile(grace_seconds=0)
    assert c.id not in parts.runtime.sandboxes
    assert parts.repo.get(c.id) is None
    with pytest.raises(ContainerNotFound):
        parts.service.delete(c.id)


def test_a_container_being_deleted_is_not_marked_expired(parts: Parts) -> None:
    c = parts.service.create(CreateContainer(name="c"))
    parts.repo.mark_deleting(c.id)
    parts.runtime.sandboxes.pop(c.id)  # the kill came after the sandbox went
    parts.repo.set_status(c.id, "expired")  # a file operation finding it gone, say
    got = parts.repo.get(c.id)
    assert got is not None
    assert got.status == DELETING
    parts.service.reconcile(grace_seconds=0)
    assert parts.repo.get(c.id) is None


class FailingRuntime(MemoryRuntime):
    """Refuses to remove one sandbox, as an engine with a wedged container might."""

    def __init__(self, bad: str) -> None:
        super().__init__()
        self.bad = bad

    def destroy(self, container_id: str) -> None:
        if container_id == self.bad:
            raise SandboxRuntimeError("remove sandbox: device or resource busy")
        super().destroy(container_id)


def test_one_repair_that_fails_does_not_stop_the_others(tmp_path: Path) -> None:
    parts = Parts(tmp_path)
    good = parts.service.create(CreateContainer(name="good"))
    bad = parts.service.create(CreateContainer(name="bad"))
    lost = parts.service.create(CreateContainer(name="lost"))
    failing = FailingRuntime(bad.id)
    failing.sandboxes, failing.files = parts.runtime.sandboxes, parts.runtime.files
    failing.sandboxes.pop(lost.id)
    service = ContainerService(parts.repo, parts.files, failing, parts.activity, parts.clock)
    parts.repo.mark_deleting(bad.id)
    parts.repo.mark_deleting(good.id)

    service.reconcile(grace_seconds=0)  # no exception

    assert parts.repo.get(good.id) is None
    assert good.id not in failing.sandboxes
    assert parts.repo.get(bad.id) is not None  # kept for the next pass
    assert service.retrieve(lost.id).status == "expired"


def test_reads_past_the_deadline_answer_expired_before_the_sweep(parts: Parts) -> None:
    c = parts.service.create(CreateContainer(name="c", minutes=1))
    parts.clock.now += 61  # past the deadline; no sweep has run
    got = parts.service.retrieve(c.id)
    assert got.status == "expired"
    assert got.last_active_at == c.last_active_at
    assert parts.listed()[c.id] == "expired"
    with pytest.raises(ContainerExpired):
        parts.files.list(c.id, order="desc", limit=10, after=None)
    with pytest.raises(ContainerExpired):
        parts.files.upload(c.id, "a.txt", io.BytesIO(b"a"), 1)
    stored = parts.repo.get(c.id)
    assert stored is not None
    assert (stored.last_active_at, stored.expires_at) == (c.last_active_at, c.expires_at)
    # The sweep then expires it for good.
    assert parts.service.expire_due() == [c.id]
    assert parts.service.retrieve(c.id).status == "expired"


def test_a_read_at_the_deadline_does_not_move_it(parts: Parts) -> None:
    c = parts.service.create(CreateContainer(name="c", minutes=1))
    parts.clock.now += 59
    assert parts.service.retrieve(c.id).status == "running"  # moves the deadline on
    parts.clock.now += 60
    assert parts.service.retrieve(c.id).status == "expired"  # exactly at the deadline
    parts.clock.now += 1
    assert parts.service.retrieve(c.id).status == "expired"


def test_a_container_running_code_past_its_deadline_is_still_running(parts: Parts) -> None:
    c = parts.service.create(CreateContainer(name="c", minutes=1))
    parts.clock.now += 120
    with parts.activity.busy(c.id):
        assert parts.service.retrieve(c.id).status == "running"
        assert parts.listed()[c.id] == "running"
    assert parts.service.retrieve(c.id).status == "running"  # it was touched meanwhile


class ListingRace(MemoryRuntime):
    """The engine's listing is taken, then something happens before it reaches the server."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile: list[Callable[[], object]] = []

    def list_sandboxes(self) -> list[SandboxInfo]:
        listed = super().list_sandboxes()
        while self.meanwhile:
            self.meanwhile.pop()()
        return listed


def test_creates_and_deletes_while_the_engine_lists_are_left_alone(tmp_path: Path) -> None:
    runtime = ListingRace()
    parts = Parts(tmp_path, runtime)
    kept = parts.service.create(CreateContainer(name="kept"))
    going = parts.service.create(CreateContainer(name="going"))
    made: list[str] = []
    runtime.meanwhile = [
        lambda: made.append(parts.service.create(CreateContainer(name="new")).id),
        lambda: parts.service.delete(going.id),
    ]
    parts.service.reconcile(grace_seconds=60.0)
    assert parts.listed() == {kept.id: "running", made[0]: "running"}
    assert made[0] in runtime.sandboxes
    # The next pass sees the new one in the listing too: nothing to repair.
    parts.service.reconcile(grace_seconds=60.0)
    assert parts.listed() == {kept.id: "running", made[0]: "running"}
