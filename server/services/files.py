"""FileService: the Files API (what file_ids and file_id point to); bytes on the host."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path
from typing import BinaryIO

from server.domain import File, Order, Page, PageQuery
from server.errors import FileNotFound, InvalidRequest, PayloadTooLarge
from server.ids import Clock, new_file_id
from server.services.capacity import Capacity
from server.services.names import safe_name
from server.store import BlobStore, FileRepository

log = logging.getLogger("localbox.files")

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


class FileService:
    def __init__(
        self,
        repo: FileRepository,
        blobs: BlobStore,
        clock: Clock,
        *,
        max_bytes: int,
        capacity: Capacity | None = None,
    ) -> None:
        self._repo = repo
        self._blobs = blobs
        self._clock = clock
        self.max_bytes = max_bytes
        self._capacity = capacity

    def upload(self, filename: str | None, purpose: str, source: BinaryIO, size: int) -> File:
        """Keep an uploaded file; nothing is recorded unless all of its bytes were stored."""
        if purpose not in PURPOSES:
            raise InvalidRequest(
                f"Invalid purpose {purpose!r}; expected one of {', '.join(PURPOSES)}.", "purpose"
            )
        if size > self.max_bytes:
            raise PayloadTooLarge(self.max_bytes)
        name = safe_name(filename)
        file_id = new_file_id()
        with self._capacity.file_bytes(size) if self._capacity else nullcontext():
            stored = self._blobs.save(file_id, source)
            file = File(
                id=file_id,
                filename=name,
                bytes=stored,
                created_at=int(self._clock()),
                purpose=purpose,
            )
            try:
                self._repo.add(file)
            except Exception:
                self._blobs.remove(file_id)
                raise
        return file

    def retrieve(self, file_id: str, param: str | None = None) -> File:
        file = self._repo.get(file_id)
        if file is None:
            raise FileNotFound(file_id, param)
        return file

    def list(
        self, *, order: Order, limit: int, after: str | None, purpose: str | None
    ) -> Page[File]:
        cursor = None
        if after is not None:
            anchor = self._repo.get(after)
            if anchor is None:
                raise InvalidRequest(f"No file found with id '{after}' for 'after'.", "after")
            cursor = anchor.cursor
        return self._repo.list_page(
            PageQuery(order=order, limit=limit, after=cursor), purpose=purpose
        )

    def delete(self, file_id: str) -> None:
        """Delete the file; copies already made into containers stay where they are."""
        self.retrieve(file_id)
        self._repo.delete(file_id)
        self._blobs.remove(file_id)

    def content(self, file_id: str, param: str | None = None) -> tuple[File, Path]:
        file = self.retrieve(file_id, param)
        return file, self._blobs.path(file_id)

    def open(self, file_id: str, param: str | None = None) -> tuple[File, BinaryIO]:
        file = self.retrieve(file_id, param)
        return file, self._blobs.open(file_id)
