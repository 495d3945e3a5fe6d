"""ContainerFileService: files inside a container's sandbox, under /mnt/data.

The sandbox is the truth: the bytes live only there, and the records are brought in line
with what the sandbox holds (files code created appear with source "assistant", files
removed inside disappear) whenever the files are listed or looked up.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import BinaryIO

from server.domain import Container, ContainerFile, File, Order, Page, PageQuery
from server.errors import (
    ContainerBusy,
    ContainerExpired,
    ContainerFileGone,
    DiskLimitExceeded,
    FileNotFound,
    InvalidRequest,
    PayloadTooLarge,
    SandboxFailure,
    UploadConflict,
)
from server.ids import Clock, new_container_file_id
from server.runtime import (
    SandboxFile,
    SandboxFileNotFound,
    SandboxNotFound,
    SandboxRuntime,
    SandboxRuntimeError,
    StagedFile,
    is_reserved_name,
)
from server.services.activity import PerContainer
from server.services.coordination import Coordination, LeaseTimeout, Solo, files_key
from server.services.errors import runtime_errors, touch_running
from server.services.files import FileService
from server.services.names import safe_name
from server.store import ContainerFileRepository, ContainerRepository

log = logging.getLogger("localbox.container_files")

FILES_WAIT_SECONDS = 60


class ContainerFileService:
    def __init__(
        self,
        containers: ContainerRepository,
        repo: ContainerFileRepository,
        files: FileService,
        runtime: SandboxRuntime,
        clock: Clock,
        *,
        disk_limit: int = 0,
        coordination: Coordination | None = None,
    ) -> None:
        self.disk_limit = disk_limit
        self._coordination: Coordination = coordination or Solo("")
        self._containers = containers
        self._repo = repo
        self._files = files
        self._runtime = runtime
        self._clock = clock
        self._lock = PerContainer(threading.Lock)
        # Per container, a fingerprint of the sandbox's listing that the records last matched
        # (cleared whenever the records change another way): a listing with the same
        # fingerprint needs no merge.
        self._in_line: dict[str, int] = {}

    @contextmanager
    def _locked(self, container_id: str) -> Iterator[None]:
        """The container's file records to change alone: in this process, then among
        replicas."""
        with self._lock(container_id):
            try:
                with self._coordination.hold(files_key(container_id), FILES_WAIT_SECONDS):
                    yield
            except LeaseTimeout:  # only the hold raises it: nothing in the block waits so
                raise ContainerBusy(
                    "Another replica has been changing this container's files for "
                    f"{FILES_WAIT_SECONDS} s. Try again."
                ) from None

    @contextmanager
    def _sandbox(self, container_id: str, action: str) -> Iterator[None]:
        """Runtime calls: a sandbox that vanished behind our back means the container expired."""
        try:
            with runtime_errors(action):
                yield
        except SandboxFailure as exc:
            if isinstance(exc.__cause__, SandboxNotFound):
                log.warning("sandbox of %s vanished; marking it expired", container_id)
                self._containers.set_status(container_id, "expired")
                self.forget(container_id)
                raise ContainerExpired() from exc
            raise

    @contextmanager
    def _placing(self, container_id: str, path: str, action: str) -> Iterator[None]:
        """Runtime calls that write a file: one that code in the sandbox raced (a symlink
        swapped in for the upload's file or a directory on its way) is a 409, not a failure."""
        try:
            with self._sandbox(container_id, action):
                yield
        except SandboxFileNotFound as exc:
            log.info("upload to %s in %s refused: %s", path, container_id, exc)
            raise UploadConflict(f"/mnt/data/{path}", str(exc)) from None

    def _active(self, container_id: str) -> Container:
        return touch_running(self._containers, container_id, int(self._clock()))

    def upload(
        self, container_id: str, filename: str | None, source: BinaryIO, size: int
    ) -> ContainerFile:
        """Write an uploaded file to /mnt/data/<safe name>, replacing a file of that name."""
        if size > self._files.max_bytes:
            raise PayloadTooLarge(self._files.max_bytes)
        name = _writable(safe_name(filename), "file")
        self._active(container_id)
        return self._write(container_id, name, source, size)

    def stage_upload(
        self, container_id: str, filename: str | None, source: BinaryIO, size: int
    ) -> StagedFile:
        """Write an upload while it arrives, under a size announced before its end was seen,
        beside its name: finish_upload puts it in place once its real size is known."""
        if size > self._files.max_bytes:
            raise PayloadTooLarge(self._files.max_bytes)
        name = _writable(safe_name(filename), "file")
        self._active(container_id)
        self._check_room(container_id, size)
        with self._placing(container_id, name, "write the file into the sandbox"):
            return self._runtime.stage_file(container_id, name, source, size)

    def finish_upload(
        self, container_id: str, staged: StagedFile, size: int, tail: bytes
    ) -> ContainerFile:
        """Put a staged upload in place as /mnt/data/<name>, replacing a file of that name.
        Its real size is size, its last bytes tail (those that came past the announced size):
        when that differs from what was staged, the file is corrected first."""
        if size > self._files.max_bytes:
            self._discard(container_id, staged)
            raise PayloadTooLarge(self._files.max_bytes)
        settle = size != staged.size or bool(tail)
        return self._commit(
            container_id, staged, size=size if settle else None, tail=tail if settle else b""
        )

    def upload_file_id(self, container_id: str, file_id: str) -> ContainerFile:
        """Copy a Files-API file into the container under its file name."""
        self._active(container_id)
        file, source = self._files.open(file_id, "file_id")
        with source:
            return self._write(
                container_id, _writable(file.filename, "file_id"), source, file.bytes
            )

    def resolve_file_ids(self, file_ids: list[str]) -> list[File]:
        """The Files-API files named at container creation; 404 naming file_ids if one is gone."""
        return [self._files.retrieve(fid, "file_ids") for fid in file_ids]

    def copy_in(self, container_id: str, files: list[File]) -> None:
        """Copy Files-API files into a new container (source "user")."""
        for file in files:
            _, source = self._files.open(file.id, "file_ids")
            with source:
                self._write(container_id, _writable(file.filename, "file_ids"), source, file.bytes)

    def _check_room(self, container_id: str, size: int) -> None:
        """Refuse (413) a write that would take /mnt/data past the disk limit, before any
        byte of it lands."""
        if self.disk_limit <= 0:
            return
        with self._sandbox(container_id, "measure the sandbox's disk usage"):
            usage = self._runtime.disk_usage(container_id)
        if usage + size > self.disk_limit:
            raise DiskLimitExceeded(usage, size, self.disk_limit)

    def _write(self, container_id: str, name: str, source: BinaryIO, size: int) -> ContainerFile:
        """Write the bytes beside name, then put them in place: until they are all there, a
        file of that name keeps its old bytes, and a write cut off leaves no file of it."""
        self._check_room(container_id, size)
        with self._placing(container_id, name, "write the file into the sandbox"):
            staged = self._runtime.stage_file(container_id, name, source, size)
        return self._commit(container_id, staged)

    def _commit(
        self, container_id: str, staged: StagedFile, *, size: int | None = None, tail: bytes = b""
    ) -> ContainerFile:
        """Rename a staged write into place and record it (a settled size when given)."""
        with self._locked(container_id):
            with self._placing(container_id, staged.path, "write the file into the sandbox"):
                self._runtime.commit_file(container_id, staged, size=size, tail=tail)
            file = ContainerFile(
                id=new_container_file_id(),
                container_id=container_id,
                path=staged.path,
                bytes=staged.size if size is None else size,
                created_at=int(self._clock()),
                source="user",
            )
            self._repo.put(file)
            self._in_line.pop(container_id, None)
        log.info("wrote %s (%d bytes) into %s", file.path, file.bytes, container_id)
        return file

    def list(
        self, container_id: str, *, order: Order, limit: int, after: str | None
    ) -> Page[ContainerFile]:
        self._active(container_id)
        self.sync(container_id)
        cursor = None
        if after is not None:
            anchor = self._repo.get(container_id, after)
            if anchor is None:
                raise InvalidRequest(f"No file found with id '{after}' for 'after'.", "after")
            cursor = anchor.cursor
        return self._repo.list_page(container_id, PageQuery(order=order, limit=limit, after=cursor))

    def retrieve(self, container_id: str, file_id: str) -> ContainerFile:
        self._active(container_id)
        self.sync(container_id)
        return self._get(container_id, file_id)

    def delete(self, container_id: str, file_id: str) -> None:
        """Remove the file's bytes from the sandbox and its record."""
        self._active(container_id)
        with self._locked(container_id):
            file = self._get(container_id, file_id)
            with self._sandbox(container_id, "delete the file from the sandbox"):
                self._runtime.delete_file(container_id, file.path)
            self._repo.delete(file.id)
            self._in_line.pop(container_id, None)

    def content(
        self, container_id: str, file_id: str
    ) -> tuple[ContainerFile, int, Iterator[bytes]]:
        """The file, its current size and its bytes streamed out of the sandbox."""
        self._active(container_id)
        file = self._get(container_id, file_id)
        try:
            with self._sandbox(container_id, "read the file from the sandbox"):
                size, chunks = self._runtime.open_file(container_id, file.path)
        except SandboxFileNotFound as exc:
            self._repo.delete(file.id)
            self._in_line.pop(container_id, None)
            raise ContainerFileGone(file_id, f"/mnt/data/{file.path}", str(exc)) from None
        return file, size, chunks

    def forget(self, container_id: str) -> None:
        """Drop every record of the container's files (its sandbox is gone)."""
        self._repo.delete_all(container_id)
        self._in_line.pop(container_id, None)
        self._lock.forget(container_id)

    def sync(self, container_id: str) -> None:
        """Bring the records in line with the files the sandbox really holds; when the
        listing is the one the records were last brought in line with, nothing is read or
        written in the database."""
        with self._locked(container_id):
            with self._sandbox(container_id, "list the files in the sandbox"):
                actual = self._runtime.list_files(container_id)
            # A keyed 64-bit hash (str hashes are salted per process), order-independent;
            # a collision would only delay recording a change until the next one.
            fingerprint = hash(frozenset((f.path, f.bytes, f.mtime) for f in actual))
            if self._in_line.get(container_id) == fingerprint:
                return
            self._merge(container_id, actual, removed=None)
            self._in_line[container_id] = fingerprint

    def record_changes(
        self, container_id: str, files: Sequence[SandboxFile], removed: Sequence[str]
    ) -> Sequence[ContainerFile]:
        """Register files that code created or changed and forget removed ones; return the
        records of the created or changed files."""
        if not files and not removed:
            return []
        with self._locked(container_id):
            self._in_line.pop(container_id, None)
            return self._merge(container_id, files, removed)

    def _merge(
        self,
        container_id: str,
        present: Sequence[SandboxFile],
        removed: Sequence[str] | None,
    ) -> builtins.list[ContainerFile]:
        """Record the present files (new ones with source "assistant") and drop the removed
        paths; removed=None means present is the whole listing. Returns present's records.
        The caller holds the container's lock."""
        known = self._repo.all_for(container_id)
        added: builtins.list[ContainerFile] = []
        changed: builtins.list[ContainerFile] = []
        records: builtins.list[ContainerFile] = []
        for f in present:
            rec = known.get(f.path)
            if rec is None:
                rec = ContainerFile(
                    id=new_container_file_id(),
                    container_id=container_id,
                    path=f.path,
                    bytes=f.bytes,
                    created_at=int(f.mtime) or int(self._clock()),
                    source="assistant",
                    mtime=f.mtime,
                )
                added.append(rec)
            elif (rec.bytes, rec.mtime) != (f.bytes, f.mtime):
                rec.bytes, rec.mtime = f.bytes, f.mtime
                changed.append(rec)
            records.append(rec)
        if removed is None:
            removed = sorted(known.keys() - {f.path for f in present})
        gone = [known[p].id for p in removed if p in known]
        if added or changed or gone:
            self._repo.apply(added, changed, gone)
        return records

    def _discard(self, container_id: str, staged: StagedFile) -> None:
        """Remove a staged write that will not be put in place; a failure here is only
        logged (the runtime's sweep removes what is left)."""
        try:
            self._runtime.delete_file(container_id, staged.temp)
        except SandboxRuntimeError as exc:
            log.warning("could not remove a staged %s in %s: %s", staged.path, container_id, exc)

    def ensure_active(self, container_id: str) -> None:
        """Fail early (404, expired) before a client sends a large body for nothing."""
        self._active(container_id)

    def _get(self, container_id: str, file_id: str) -> ContainerFile:
        file = self._repo.get(container_id, file_id)
        if file is None:
            raise FileNotFound(file_id)
        return file


def _writable(name: str, param: str) -> str:
    """name, unless the sandbox reserves it for uploads being written."""
    if is_reserved_name(name):
        raise InvalidRequest(
            f"The file name {name!r} is reserved for localbox's uploads in progress.", param
        )
    return name
