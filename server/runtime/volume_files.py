"""Reading and writing a sandbox's files straight in its data volume, when the server can
reach the volume's directory on this host (a local engine, the server running as root).

This skips the engine's relay (an exec's output in frames of a few KiB, or an archive that
the engine unpacks), which is most of the cost of moving a large file. It is as careful as
the sandbox's own file helper (fileops.py): every component is opened relative to its
parent with O_NOFOLLOW, so a symlink anywhere on the path, swapped in at any moment, makes
the call fail rather than reach outside; only regular files are read, nothing blocks on a
FIFO, and a file is written by creating it anew (O_EXCL), never by opening what is there.
Hard links cannot lead out either: the volume is a mount of its own inside the sandbox, and
links do not cross mounts.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

CHUNK = 1 << 20
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
CREATE_ATTEMPTS = 5


class NotAFile(Exception):
    """The path is not a regular file reached through plain directories in the volume."""


def usable(root: str) -> bool:
    """Whether this process can open the volume's directory itself."""
    try:
        os.close(os.open(root, DIR_FLAGS))
    except OSError:
        return False
    return True


def _components(path: str) -> list[str]:
    parts = path.split("/")
    if not path or path.startswith("/") or "\0" in path or any(p in ("", ".", "..") for p in parts):
        raise NotAFile("not a plain relative path")
    return parts


def _open_parent(root: str, path: str, make: tuple[int, int] | None = None) -> tuple[int, str]:
    """An fd of the directory holding path's last component, and that component; missing
    directories are made (owned by make's uid and gid) when make is given."""
    parts = _components(path)
    fd = os.open(root, DIR_FLAGS)
    try:
        for part in parts[:-1]:
            if make is not None:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    os.chown(part, *make, dir_fd=fd, follow_symlinks=False)
                except FileExistsError:
                    pass
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError as exc:
                raise NotAFile("it no longer exists") from exc
            except OSError as exc:
                raise NotAFile(f"{part!r} on its path is a symlink or not a directory") from exc
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def _open_regular(root: str, path: str, access: int) -> tuple[int, int]:
    parent, name = _open_parent(root, path)
    try:
        try:
            fd = os.open(name, access | FILE_FLAGS, dir_fd=parent)
        except FileNotFoundError as exc:
            raise NotAFile("it no longer exists") from exc
        except OSError as exc:
            raise NotAFile("it is a symlink or cannot be opened") from exc
    finally:
        os.close(parent)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotAFile("it is not a regular file: a FIFO, a device or a directory")
    return fd, st.st_size


def open_for_reading(root: str, path: str) -> tuple[int, Iterator[bytes]]:
    """The regular file's size and its bytes, in chunks (exactly that many: a file that
    grows meanwhile is cut at the size, one that shrinks ends early)."""
    fd, size = _open_regular(root, path, os.O_RDONLY)

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
    parent, name = _open_parent(root, path, make=owner)
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
    if size < len(tail):
        raise NotAFile("a size shorter than its tail")
    fd, _ = _open_regular(root, path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        if tail:
            os.pwrite(fd, tail, size - len(tail))
    finally:
        os.close(fd)
