"""FileService: the Files API (what file_ids and file_id point to); bytes on the host."""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from server.domain import File, Order, Page, PageQuery
from server.errors import FileNotFound, InvalidRequest, PayloadTooLarge
from server.ids import Clock, new_file_id
from server.services.capacity import Capacity
from server.services.errors import disk_full
from server.services.names import safe_name
from server.store import BlobStore, FileRepository, StorageFull

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
        self._uploading: set[str] = set()
        """Files being written (bytes, then record): reconcile leaves their bytes alone."""
        self._lock = threading.Lock()

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
        admitted = self._capacity.file_bytes(size) if self._capacity else nullcontext()
        with admitted, self._in_flight(file_id):
            try:
                stored = self._blobs.save(file_id, source)
            except StorageFull as exc:
                raise disk_full(exc) from exc
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
            except Exception as exc:
                self._blobs.remove(file_id)
                if isinstance(exc, StorageFull):
                    raise disk_full(exc) from exc
                raise
        return file

    def keep_reserve(self) -> bool:
        """Make the data disk's reserve again if deletes used it and there is room for it
        now (the sweep calls this often); whether it is held."""
        return self._capacity is None or self._capacity.keep_reserve()

    @contextmanager
    def _in_flight(self, file_id: str) -> Iterator[None]:
        with self._lock:
            self._uploading.add(file_id)
        try:
            yield
        finally:
            with self._lock:
                self._uploading.discard(file_id)

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
        if self._capacity is not None:
            self._capacity.keep_reserve()  # the room just freed may hold it again

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

    def reconcile(self, grace_seconds: float | None = None) -> int:
        """Remove bytes that no file owns: temporaries of uploads cut short (a kill while the
        bytes were written) and stored bytes without a record (a kill between writing the
        bytes and recording them, or between deleting a record and its bytes). Uploads under
        way in this process are left alone; with grace_seconds, so are bytes written since
        (replicas sharing the data dir may be writing them). Run at start-up and
        periodically; returns the bytes freed."""
        before = None if grace_seconds is None else self._clock() - grace_seconds
        # Listed before the uploads under way are read: bytes listed here whose upload is
        # over by then have their record (or are gone) by the time the records are read.
        temporaries = self._blobs.temporaries(before)
        stored = self._blobs.ids(before)
        with self._lock:
            busy = set(self._uploading)
        freed = sum(self._blobs.remove_temporary(t) for t in temporaries if t not in busy)
        candidates = [i for i in stored if i not in busy]
        known = self._repo.known(candidates)
        orphans = [i for i in candidates if i not in known]
        freed += sum(self._blobs.remove(file_id) for file_id in orphans)
        if freed or orphans:
            log.info(
                "removed %d byte(s) of unfinished uploads and %d file(s) without a record",
                freed,
                len(orphans),
            )
        return freed
