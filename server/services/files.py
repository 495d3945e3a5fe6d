"""FileService: the Files API (what file_ids and file_id point to); bytes on the host."""

from __future__ import annotations

import builtins
import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
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

MIN_EXPIRY_SECONDS = 3600  # one hour
MAX_EXPIRY_SECONDS = 2_592_000  # thirty days
BATCH_EXPIRY_SECONDS = MAX_EXPIRY_SECONDS
"""Batch files expire after thirty days unless expires_after says otherwise, as hosted."""
EXPIRY_BATCH = 500  # files removed per database round trip by the sweep


@dataclass(frozen=True)
class ExpiresAfter:
    """expires_after as the client sent it (form fields are text); checked by the service."""

    anchor: str | None
    seconds: str | None


def expiry_seconds(expires_after: ExpiresAfter | None, purpose: str) -> int | None:
    """Seconds from created_at to expiry, None for a file that does not expire."""
    if expires_after is None:
        return BATCH_EXPIRY_SECONDS if purpose == "batch" else None
    if expires_after.anchor != "created_at":
        raise InvalidRequest(
            f"Invalid value for 'expires_after.anchor': {expires_after.anchor!r}; "
            "the only supported anchor is 'created_at'.",
            "expires_after.anchor",
        )
    raw = (expires_after.seconds or "").strip()
    seconds = int(raw) if raw.isascii() and raw.isdigit() else None
    if seconds is None or not MIN_EXPIRY_SECONDS <= seconds <= MAX_EXPIRY_SECONDS:
        raise InvalidRequest(
            f"Invalid value for 'expires_after.seconds': {expires_after.seconds!r}; expected "
            f"an integer between {MIN_EXPIRY_SECONDS} and {MAX_EXPIRY_SECONDS}.",
            "expires_after.seconds",
        )
    return seconds


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

    def upload(
        self,
        filename: str | None,
        purpose: str,
        source: BinaryIO,
        size: int,
        expires_after: ExpiresAfter | None = None,
    ) -> File:
        """Keep an uploaded file; nothing is recorded unless all of its bytes were stored.

        With expires_after (or purpose "batch", thirty days by default) the file gets an
        expires_at; from then on it is gone, and the sweep removes its record and bytes.
        """
        if purpose not in PURPOSES:
            raise InvalidRequest(
                f"Invalid purpose {purpose!r}; expected one of {', '.join(PURPOSES)}.", "purpose"
            )
        lifetime = expiry_seconds(expires_after, purpose)
        if size > self.max_bytes:
            raise PayloadTooLarge(self.max_bytes)
        name = safe_name(filename)
        file_id = new_file_id()
        with self._capacity.file_bytes(size) if self._capacity else nullcontext():
            stored = self._blobs.save(file_id, source)
            created_at = int(self._clock())
            file = File(
                id=file_id,
                filename=name,
                bytes=stored,
                created_at=created_at,
                purpose=purpose,
                expires_at=None if lifetime is None else created_at + lifetime,
            )
            try:
                self._repo.add(file)
            except Exception:
                self._blobs.remove(file_id)
                raise
        return file

    def retrieve(self, file_id: str, param: str | None = None) -> File:
        """The file; 404 when unknown or expired (even before the sweep has removed it)."""
        file = self._repo.get(file_id)
        if file is None or file.expired(self._clock()):
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
            PageQuery(order=order, limit=limit, after=cursor),
            purpose=purpose,
            live_at=int(self._clock()),
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

    def expire_due(self) -> Sequence[str]:
        """Remove every file whose expires_at has come: its record, then its bytes.

        Returns the ids removed. Called by the periodic sweep; a file that expired while the
        server was down goes at the first sweep after start-up.
        """
        removed: builtins.list[str] = []
        while True:
            due = self._repo.expired_ids(int(self._clock()), EXPIRY_BATCH)
            for file_id in due:
                if self._repo.delete(file_id):
                    removed.append(file_id)
                self._blobs.remove(file_id)
            if len(due) < EXPIRY_BATCH:
                break
        if removed:
            log.info("expired %d file(s)", len(removed))
        return removed
