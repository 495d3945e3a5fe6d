"""The disk reserve on a real, small disk (tmpfs): deletes are written when the disk is full,
other writes are refused as StorageFull, and the database opens on a full disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.domain import Container, File
from server.store import (
    ContainerRepository,
    Database,
    DiskReserve,
    FileRepository,
    StorageFull,
)
from tests.chaos.disk import fill, free, shrink, tmpfs


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "24m") as path:
        yield path


def container(i: int) -> Container:
    return Container(
        id=f"cntr_{i}",
        name="c",
        created_at=i,
        status="running",
        expires_after_minutes=1,
        last_active_at=i,
        memory_limit="1g",
    )


def add_many(files: FileRepository) -> None:
    for i in range(1000):
        files.add(File(id=f"file-{i}", filename="x", bytes=1, created_at=1, purpose="user"))


def test_a_full_disk_still_takes_deletes(disk: Path) -> None:
    reserve = DiskReserve(disk / ".reserve")
    assert reserve.restore()
    assert reserve.held
    db = Database(f"sqlite:///{disk / 'db.sqlite'}", reserve)
    db.create_tables()
    repo = ContainerRepository(db)
    for i in range(300):
        repo.add(container(i))
    db.close()  # a clean close: the write-ahead log and shared-memory file go
    fill(disk / "filler")
    assert free(disk) == 0

    db = Database(f"sqlite:///{disk / 'db.sqlite'}", reserve)
    db.create_tables()  # opening needs room: the reserve gives it
    assert not reserve.held
    repo = ContainerRepository(db)
    files = FileRepository(db)
    for i in range(0, 300, 3):
        assert repo.delete(f"cntr_{i}")
    repo.set_status("cntr_1", "expired")
    assert repo.get("cntr_0") is None
    assert not reserve.restore()  # not enough room for it

    shrink(disk / "filler", 12 << 20)
    assert reserve.restore()
    assert reserve.held
    files.add(File(id="file-x", filename="x", bytes=1, created_at=1, purpose="assistants"))
    fill(disk / "filler")  # full again, the database open this time
    with pytest.raises(StorageFull):  # not a delete: refused
        add_many(files)
    for i in range(1, 300, 3):
        assert repo.delete(f"cntr_{i}")
    assert not reserve.held
    db.close()


def test_without_a_reserve_a_full_disk_is_storage_full(disk: Path) -> None:
    db = Database(f"sqlite:///{disk / 'db.sqlite'}")
    db.create_tables()
    db.close()
    fill(disk / "filler")
    db = Database(f"sqlite:///{disk / 'db.sqlite'}")
    with pytest.raises(StorageFull):
        ContainerRepository(db).delete("cntr_1")
    db.close()
