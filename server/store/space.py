"""Room on the data disk: the error a write that found none raises, and the reserve file that
keeps room for deletes.

A full disk must never lock the data in: deleting a record is itself a write (SQLite appends
to its write-ahead log, and opening the database at all needs its shared-memory file), so with
no byte free nothing could be deleted, and a start-up that repairs a record could not either.
The reserve is a file of a few MiB on the data disk. It is given back when a write that frees
space (a delete) fails for lack of room, and made again once the disk has room for it; the
services refuse uploads and creates while it cannot be kept, so only deletes ever use it.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
from pathlib import Path

log = logging.getLogger("localbox.store")

RESERVE_BYTES = 8 << 20
"""What the reserve holds: more than SQLite's write-ahead log grows to between checkpoints
(1000 pages of 4 KiB), so any number of deletes fit once it is given back."""

NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})


class StorageFull(Exception):
    """A write found no room on the data disk (the database or stored bytes)."""


def no_room(exc: BaseException) -> bool:
    """Whether an OSError says the disk (or the quota) is full."""
    return isinstance(exc, OSError) and exc.errno in NO_ROOM


class DiskReserve:
    """A file of `size` bytes kept on the data disk and given back when a delete needs room."""

    def __init__(self, path: Path, size: int = RESERVE_BYTES) -> None:
        self.path = path
        self.size = size
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        try:
            return self.path.stat().st_size >= self.size
        except OSError:
            return False

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path.parent).free

    def release(self) -> bool:
        """Give the reserve's room back; False when there was none to give."""
        with self._lock:
            try:
                self.path.unlink()
            except FileNotFoundError:
                return False
            log.warning(
                "the data disk is full: released the %d MiB reserve (%s) so that deletes can "
                "be written; uploads and creates are refused until there is room for it again",
                self.size >> 20,
                self.path,
            )
            return True

    def restore(self) -> bool:
        """Make the reserve if the disk has room for it; True when it is held afterwards."""
        with self._lock:
            if self.held:
                return True
            # Named per process: replicas that share the data dir may make it at once.
            tmp = self.path.with_name(f"{self.path.name}.new.{os.getpid()}")
            try:
                if self.free_bytes() < self.size:
                    return False
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    _allocate(fd, self.size)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, self.path)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                if not no_room(exc):
                    log.warning("could not make the disk reserve %s: %s", self.path, exc)
                return False
            log.info("made the %d MiB disk reserve %s", self.size >> 20, self.path)
            return True


def _allocate(fd: int, size: int) -> None:
    """Really take size bytes on disk (a sparse file would hold no room)."""
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    block = b"\0" * (1 << 20)
    written = 0
    while written < size:
        written += os.write(fd, block[: min(len(block), size - written)])
