"""Reading and writing a sandbox's files straight in its data volume, when the server can
reach the volume's directory on this host (a local engine, the server running as root).

This skips the engine's relay (an exec's output in frames of a few KiB, or an archive that
the engine unpacks), which is most of the cost of moving a large file. Paths are opened by
the sandbox's own file helper's code (localbox_agent/fileops.py, installed with the server):
every component is opened relative to its parent with O_NOFOLLOW, so a symlink anywhere on
the path, swapped in at any moment, makes the call fail rather than reach outside; only
regular files are read, nothing blocks on a FIFO, and a file is written by creating it anew
(O_EXCL), never by opening what is there.
Hard links cannot lead out either: the volume is a mount of its own inside the sandbox, and
links do not cross mounts.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from localbox_agent import fileops
from localbox_agent.fileops import Refused as NotAFile

CHUNK = fileops.CHUNK
FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
CREATE_ATTEMPTS = 5

__all__ = ["NotAFile", "open_for_reading", "settle", "usable", "write"]


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


def write(root: str, path: str, source: BinaryIO, size: int, owner: tuple[int, int]) -> None:
    """A new regular file at path, size bytes read from source, owned by owner; whatever
    was there (a file, a symlink, a FIFO) is replaced, as unpacking an archive would."""
    parent, name = fileops.open_parent(path, root, make=owner)
    try:
        fd = _create(parent, name)
        try:
            os.fchown(fd, *owner)
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
    finally:
        os.close(parent)


def _create(parent: int, name: str) -> int:
    for _ in range(CREATE_ATTEMPTS):
        try:
            return os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | FILE_FLAGS, 0o644, dir_fd=parent
            )
        except FileExistsError:
            pass
        try:
            if stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                raise NotAFile("a directory is in the way")
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            pass
    raise NotAFile("something keeps taking its place")


def settle(root: str, path: str, size: int, tail: bytes) -> None:
    """Make the regular file at path size bytes long, ending with tail."""
    fileops.settle(path, size, tail, root)
