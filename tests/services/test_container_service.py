"""ContainerService over real SQLite and an in-memory runtime, with an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.errors import ContainerNotFound, InvalidRequest, ServiceUnavailable
from server.runtime import SandboxInfo
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

ACTIVITY = Activity()


@pytest.fixture
def parts(tmp_path: Path) -> tuple[ContainerService, MemoryRuntime, Clock]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.create_tables()
    runtime, clock = MemoryRuntime(), Clock(1_000_000.0)
    containers = ContainerRepository(db)
    files = FileService(FileRepository(db), BlobStore(tmp_path / "blobs"), clock, max_bytes=1 << 20)
    container_files = ContainerFileService(
        containers, ContainerFileRepository(db), files, runtime, clock
    )
    return ContainerService(containers, container_files, runtime, ACTIVITY, clock), runtime, clock


def test_create_and_touch_use_the_clock(
    parts: tuple[ContainerService, MemoryRuntime, Clock],
) -> None:
    service, runtime, clock = parts
    c = service.create(CreateContainer(name="a", minutes=5))
    assert c.created_at == 1_000_000
    assert c.expires_at == 1_000_000 + 300
    assert c.id in runtime.sandboxes
    clock.now += 90
    touched = service.retrieve(c.id)
    assert touched.last_active_at == 1_000_090
    assert touched.expires_at == 1_000_090 + 300
    listed = service.list(order="desc", limit=10, after=None, before=None, name=None)
    assert listed.items[0].last_active_at == 1_000_090


def test_ties_in_created_at_are_broken_by_id(
    parts: tuple[ContainerService, MemoryRuntime, Clock],
) -> None:
    service, _, _ = parts
    ids = sorted(service.create(CreateContainer(name=f"c{i}")).id for i in range(5))
    asc = service.list(order="asc", limit=10, after=None, before=None, name=None)
    assert [c.id for c in asc.items] == ids
    page = service.list(order="desc", limit=2, after=ids[3], before=None, name=None)
    assert [c.id for c in page.items] == [ids[2], ids[1]]
    assert page.has_more is True


def test_validation_and_not_found(parts: tuple[ContainerService, MemoryRuntime, Clock]) -> None:
    service, _, _ = parts
    with pytest.raises(InvalidRequest) as info:
        service.create(CreateContainer(name="a", minutes=0))
    assert info.value.param == "expires_after.minutes"
    with pytest.raises(InvalidRequest):
        service.create(CreateContainer(name="a", memory_limit="2g"))
    with pytest.raises(ContainerNotFound):
        service.retrieve("cntr_missing")
    with pytest.raises(ContainerNotFound):
        service.delete("cntr_missing")


def test_engine_down_is_service_unavailable_and_records_nothing(
    parts: tuple[ContainerService, MemoryRuntime, Clock],
) -> None:
    service, runtime, _ = parts
    runtime.down = True
    with pytest.raises(ServiceUnavailable):
        service.create(CreateContainer(name="a"))
    runtime.down = False
    assert service.list(order="desc", limit=10, after=None, before=None, name=None).items == []


def test_reconcile(parts: tuple[ContainerService, MemoryRuntime, Clock]) -> None:
    service, runtime, clock = parts
    kept = service.create(CreateContainer(name="kept"))
    lost = service.create(CreateContainer(name="lost"))
    stopped = service.create(CreateContainer(name="stopped"))
    runtime.sandboxes.pop(lost.id)
    runtime.sandboxes[stopped.id] = SandboxInfo(stopped.id, "stopped", 0.0)
    runtime.sandboxes["cntr_orphan"] = SandboxInfo("cntr_orphan", "running", clock.now - 600)
    runtime.sandboxes["cntr_young"] = SandboxInfo("cntr_young", "running", clock.now - 1)

    service.reconcile()

    assert set(runtime.sandboxes) == {kept.id, stopped.id, "cntr_young"}
    assert runtime.sandboxes[stopped.id].state == "running"
    assert service.retrieve(lost.id).status == "expired"
    assert service.retrieve(kept.id).status == "running"


def test_expiry_follows_the_injected_clock(
    parts: tuple[ContainerService, MemoryRuntime, Clock],
) -> None:
    service, runtime, clock = parts
    short = service.create(CreateContainer(name="short", minutes=1))
    long = service.create(CreateContainer(name="long", minutes=10))
    clock.now += 59
    assert service.expire_due() == []
    clock.now += 1
    assert service.expire_due() == [short.id]
    assert short.id not in runtime.sandboxes
    assert long.id in runtime.sandboxes
    expired = service.retrieve(short.id)
    assert expired.status == "expired"
    # Retrieving an expired container does not revive it or move its timestamps.
    assert expired.last_active_at == short.last_active_at
    assert service.expire_due() == []

    # Activity pushes the deadline: retrieve at +9 min, so +10 min is not due yet.
    clock.now += 8 * 60
    service.retrieve(long.id)
    clock.now += 2 * 60
    assert service.expire_due() == []
    clock.now += 9 * 60
    assert service.expire_due() == [long.id]


def test_expiry_while_the_engine_is_down_is_finished_by_reconcile(
    parts: tuple[ContainerService, MemoryRuntime, Clock],
) -> None:
    service, runtime, clock = parts
    c = service.create(CreateContainer(name="c", minutes=1))
    runtime.down = True
    clock.now += 61
    assert service.expire_due() == [c.id]
    assert service.retrieve(c.id).status == "expired"
    assert c.id in runtime.sandboxes
    runtime.down = False
    service.reconcile(grace_seconds=0)
    assert c.id not in runtime.sandboxes


def test_a_container_running_code_does_not_expire(
    parts: tuple[ContainerService, MemoryRuntime, Clock],
) -> None:
    service, _, clock = parts
    c = service.create(CreateContainer(name="busy", minutes=1))
    clock.now += 3600
    with ACTIVITY.busy(c.id):
        assert service.expire_due() == []
        assert service.retrieve(c.id).status == "running"
    clock.now += 61
    assert service.expire_due() == [c.id]


def test_reconcile_stops_stray_calls_in_running_sandboxes(
    parts: tuple[ContainerService, MemoryRuntime, Clock],
) -> None:
    service, runtime, _ = parts
    container = service.create(CreateContainer(name="c"))
    service.reconcile(0.0)
    assert runtime.strays_stopped == {container.id}
