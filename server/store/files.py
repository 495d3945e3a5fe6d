"""FileRepository and BlobStore: Files-API metadata in the database, bytes on the host disk."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO

from sqlmodel import col, func, or_, select

from server.domain import File, Page, PageQuery
from server.store.repository import Repository
from server.store.space import StorageFull, no_room
from server.store.tables import FileRecord

CHUNK = 500  # ids per SELECT ... IN (...)


def _to_domain(rec: FileRecord) -> File:
    return File(
        id=rec.id,
        filename=rec.filename,
        bytes=rec.bytes,
        created_at=rec.created_at,
        purpose=rec.purpose,
        status=rec.status,
        expires_at=rec.expires_at,
    )


class FileRepository(Repository[FileRecord, File]):
    record = FileRecord

    def to_domain(self, rec: FileRecord) -> File:
        return _to_domain(rec)

    def to_record(self, item: File) -> FileRecord:
        return FileRecord(**vars(item))

    def list_page(
        self, query: PageQuery, purpose: str | None = None, live_at: int | None = None
    ) -> Page[File]:
        """A page of files; with live_at, only those not yet expired at that time."""
        stmt = select(FileRecord)
        if live_at is not None:
            stmt = stmt.where(
                or_(col(FileRecord.expires_at).is_(None), col(FileRecord.expires_at) > live_at)
            )
        if purpose is not None:
            stmt = stmt.where(FileRecord.purpose == purpose)
        return self._page(stmt, query)

    def expired_ids(self, now: int, limit: int = 500) -> list[str]:
        """Ids of files whose expires_at has come (expires_at <= now), oldest deadline first."""
        stmt = (
            select(FileRecord.id)
            .where(col(FileRecord.expires_at).is_not(None), col(FileRecord.expires_at) <= now)
            .order_by(col(FileRecord.expires_at))
            .limit(limit)
        )
        with self._db.session() as s:
            return list(s.exec(stmt).all())

    def total_bytes(self) -> int:
        with self._db.session() as s:
            return int(s.exec(select(func.coalesce(func.sum(FileRecord.bytes), 0))).one())

    def known(self, file_ids: list[str]) -> set[str]:
        """Which of these ids have a record."""
        found: set[str] = set()
        with self._db.session() as s:
            for start in range(0, len(file_ids), CHUNK):
                chunk = file_ids[start : start + CHUNK]
                found.update(s.exec(select(FileRecord.id).where(col(FileRecord.id).in_(chunk))))
        return found


class BlobStore:
    """Files-API bytes, one file per id under a directory.

    A file is written under a temporary name in root/.incoming (the same disk, so the rename
    is atomic, and a directory that holds nothing but temporaries) and renamed into place only
    once all of it is on disk: a stored file is always whole. A write cut short by a kill
    leaves its temporary behind; the file service removes those (remove_temporary).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._incoming = root / ".incoming"
        self._incoming.mkdir(exist_ok=True)

    def path(self, file_id: str) -> Path:
        return self.root / file_id

    def save(self, file_id: str, source: BinaryIO) -> int:
        """Copy source into the store; returns the byte count. Nothing is left on failure;
        StorageFull when the disk has no room for it."""
        tmp = self._incoming / file_id
        try:
            with tmp.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
                size = out.tell()
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path(file_id))
        except OSError as exc:
            if no_room(exc):
                raise StorageFull(f"no room for the file's bytes ({exc})") from exc
            raise
        finally:
            tmp.unlink(missing_ok=True)
        return size

    def ids(self, before: float | None = None) -> list[str]:
        """The ids of the files stored (temporaries are not files); with before, of those
        last written before that time."""
        return [
            e.name
            for e in os.scandir(self.root)
            if not e.name.startswith(".") and e.is_file() and _before(e, before)
        ]

    def temporaries(self, before: float | None = None) -> list[str]:
        """The names of the files being written, or left by writes cut short; with before,
        of those last written before that time."""
        return [e.name for e in os.scandir(self._incoming) if _before(e, before)]

    def remove_temporary(self, name: str) -> int:
        """Remove a temporary; returns the bytes it held (0 if it was gone already)."""
        return _unlink(self._incoming / name)

    def open(self, file_id: str) -> BinaryIO:
        return self.path(file_id).open("rb")

    def remove(self, file_id: str) -> int:
        """Remove a file's bytes; returns how many there were (0 if none)."""
        return _unlink(self.path(file_id))


def _before(entry: os.DirEntry[str], before: float | None) -> bool:
    if before is None:
        return True
    try:
        return entry.stat(follow_symlinks=False).st_mtime < before
    except FileNotFoundError:
        return False


def _unlink(path: Path) -> int:
    try:
        size = path.lstat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size
