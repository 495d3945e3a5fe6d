"""Reading and writing a sandbox's files straight in its data volume, when the server can
reach the volume's directory on this host (a local engine, the server running as root).

This skips the engine's relay (an exec's output in frames of a few KiB, or an archive that
the engine unpacks), which is most of the cost of moving a large file. Paths are opened by
the sandbox's own file helper's code (localbox_agent/fileops.py, installed with the server):
every component is opened relative to its parent with O_NOFOLLOW, so a symlink anywhere on
the path, swapped in at any moment, makes the call fail rather than reach outside; only
regular files are read, nothing blocks on a FIFO, and a file is written by creating it anew
(O_EXCL) under a temporary name beside its own, never by opening what is there, and renamed
into place (within the same opened directory) only once it is whole.
Hard links cannot lead out either: the volume is a mount of its own inside the sandbox, and
links do not cross mounts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Container, Iterator
from typing import BinaryIO

from localbox_agent import fileops
from localbox_agent.fileops import Refused as NotAFile

CHUNK = fileops.CHUNK

__all__ = [
    "NotAFile",
    "open_for_reading",
    "place",
    "remove_temporary",
    "stage",
    "sweep",
    "temporary_beside",
    "usable",
]


def usable(root: str) -> bool:
    """Whether this process can open the volume's directory itself."""
    try:
        os.close(os.open(root, fileops.DIR_FLAGS))
    except OSError:
        return False
    return True


def open_for_reading(root: str, path: str) -> tuple[int, Iterator[bytes]]:
    """The regular file's size and its bytes, in chunks (exactly that many: a file that
    grows meanwhile is cut at the size, one that shrinks ends early)."""
    fd, size = fileops.open_regular(path, root)

    def chunks() -> Iterator[bytes]:
        try:
            remaining = size
            while remaining > 0:
                chunk = os.read(fd, min(CHUNK, remaining))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk
        finally:
            os.close(fd)

    return size, chunks()


def temporary_beside(path: str) -> str:
    """A fresh temporary path (a name reserved for uploads) in the directory of path."""
    return fileops.temporary_beside(path)


def remove_temporary(root: str, temp: str) -> bool:
    """Remove the temporary at temp, if it is still there; whether it is gone."""
    return fileops.remove_temporary(temp, root)


def stage(root: str, temp: str, source: BinaryIO, size: int, owner: tuple[int, int]) -> None:
    """A new regular file at temp (a temporary name, see fileops.temporary_beside), size
    bytes read from source, owned by owner; removed again if the write fails."""
    fd = fileops.create_new(temp, root, owner)
    try:
        try:
            remaining = size
            while remaining > 0:
                chunk = source.read(min(CHUNK, remaining))
                if not chunk:
                    raise OSError(f"source ended {remaining} bytes short")
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                remaining -= len(chunk)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(fileops.Refused, OSError):
            fileops.remove_temporary(temp, root)
        raise


def place(root: str, temp: str, path: str, size: int, tail: bytes | None) -> None:
    """Rename the staged temp to path once it holds size bytes (or, with tail, once it is
    made size bytes long ending with tail); see fileops.place."""
    fileops.place(temp, path, size, tail, root)


def sweep(root: str, grace_seconds: float, keep: Container[str]) -> tuple[int, int]:
    """Remove temporaries older than grace_seconds, except keep; see fileops.sweep."""
    return fileops.sweep(grace_seconds, keep, root)
