"""FileRepository and BlobStore: Files-API metadata in the database, bytes on the host disk."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO

from sqlmodel import col, func, or_, select

from server.domain import File, Page, PageQuery
from server.store.repository import Repository
from server.store.tables import FileRecord


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


class BlobStore:
    """Files-API bytes, one file per id under a directory; writes land atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._incoming = root / ".incoming"
        self._incoming.mkdir(exist_ok=True)

    def path(self, file_id: str) -> Path:
        return self.root / file_id

    def save(self, file_id: str, source: BinaryIO) -> int:
        """Copy source into the store; returns the byte count. Nothing is left on failure."""
        tmp = self._incoming / file_id
        try:
            with tmp.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
                size = out.tell()
            os.replace(tmp, self.path(file_id))
        finally:
            tmp.unlink(missing_ok=True)
        return size

    def open(self, file_id: str) -> BinaryIO:
        return self.path(file_id).open("rb")

    def remove(self, file_id: str) -> None:
        self.path(file_id).unlink(missing_ok=True)
