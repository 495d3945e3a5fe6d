"""FileService expiry on real SQLite with an injected clock: deadlines, the sweep, batch."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from server.errors import FileNotFound, InvalidRequest
from server.services.files import ExpiresAfter, FileService
from server.store import BlobStore, Database, FileRepository
from tests.services.clock import Clock


@pytest.fixture
def parts(tmp_path: Path) -> tuple[FileService, Clock, Path]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.create_tables()
    clock = Clock()
    blobs = tmp_path / "blobs"
    return FileService(FileRepository(db), BlobStore(blobs), clock, max_bytes=1000), clock, blobs


def _upload(files: FileService, purpose: str, expires: ExpiresAfter | None = None) -> str:
    return files.upload("a.txt", purpose, io.BytesIO(b"abc"), 3, expires).id


def test_an_expired_file_is_gone_at_once_and_swept_later(
    parts: tuple[FileService, Clock, Path],
) -> None:
    files, clock, blobs = parts
    hour = ExpiresAfter("created_at", "3600")
    doomed = files.upload("a.txt", "assistants", io.BytesIO(b"abc"), 3, hour)
    assert doomed.expires_at == int(clock.now) + 3600
    kept = _upload(files, "assistants")
    assert files.retrieve(kept).expires_at is None

    clock.now += 3599
    assert files.expire_due() == []
    assert files.retrieve(doomed.id).id == doomed.id

    clock.now += 1  # expires_at <= now: gone, though the sweep has not run
    for call in (
        lambda: files.retrieve(doomed.id),
        lambda: files.content(doomed.id),
        lambda: files.open(doomed.id, "file_ids"),
        lambda: files.delete(doomed.id),
    ):
        with pytest.raises(FileNotFound):
            call()
    listed = files.list(order="asc", limit=10, after=None, purpose=None).items
    assert [f.id for f in listed] == [kept]
    assert (blobs / doomed.id).exists()

    assert list(files.expire_due()) == [doomed.id]
    assert not (blobs / doomed.id).exists()
    assert (blobs / kept).exists()
    assert list(files.expire_due()) == []
    assert files.retrieve(kept).id == kept


def test_batch_files_expire_after_thirty_days_by_default(
    parts: tuple[FileService, Clock, Path],
) -> None:
    files, clock, blobs = parts
    batch = files.retrieve(_upload(files, "batch"))
    assert batch.expires_at == batch.created_at + 30 * 24 * 3600
    chosen = files.retrieve(_upload(files, "batch", ExpiresAfter("created_at", "7200")))
    assert chosen.expires_at == chosen.created_at + 7200
    clock.now += 30 * 24 * 3600
    assert sorted(files.expire_due()) == sorted([batch.id, chosen.id])
    assert not (blobs / batch.id).exists()


@pytest.mark.parametrize(
    ("anchor", "seconds", "param"),
    [
        ("last_active_at", "3600", "expires_after.anchor"),
        (None, "3600", "expires_after.anchor"),
        ("created_at", None, "expires_after.seconds"),
        ("created_at", "3599", "expires_after.seconds"),
        ("created_at", "2592001", "expires_after.seconds"),
        ("created_at", "-3600", "expires_after.seconds"),
        ("created_at", "3600.5", "expires_after.seconds"),
        ("created_at", "an hour", "expires_after.seconds"),
    ],
)
def test_bad_expiry_is_refused_and_nothing_is_kept(
    parts: tuple[FileService, Clock, Path], anchor: str | None, seconds: str | None, param: str
) -> None:
    files, _, blobs = parts
    with pytest.raises(InvalidRequest) as info:
        _upload(files, "assistants", ExpiresAfter(anchor, seconds))
    assert info.value.param == param
    assert info.value.status == 400
    assert files.list(order="asc", limit=10, after=None, purpose=None).items == []
    assert [p.name for p in blobs.iterdir() if p.is_file()] == []


def test_expiry_bounds_are_inclusive(parts: tuple[FileService, Clock, Path]) -> None:
    files, clock, _ = parts
    for seconds in (3600, 2_592_000):
        f = files.retrieve(_upload(files, "user_data", ExpiresAfter("created_at", str(seconds))))
        assert f.expires_at == int(clock.now) + seconds
