"""Files under /mnt/data, seen without ever following a symlink.

Used by the agent (scans for changed files, the disk watchdog), by the server when it reaches
a sandbox's data volume directly (server/runtime/volume_files.py, with root set to the
volume's directory), and run on its own by the server through `docker exec` as root:

  fileops.py read PATH    "ok SIZE\\n" then exactly SIZE bytes, or "missing REASON\\n"
  fileops.py delete PATH  "ok\\n" or "missing REASON\\n"
  fileops.py settle PATH SIZE [TAILHEX]
                          cut (or extend) the file to SIZE bytes, its last bytes set to
                          TAIL; "ok\\n" or "missing REASON\\n" (fixes up a streamed upload
                          whose real size turned out other than the one announced)
  fileops.py list         one "SIZE\\tMTIME\\tPATH\\0" record per regular file
  fileops.py usage        the bytes allocated under /mnt/data (blocks, not apparent sizes)

PATH is relative to /mnt/data. Every component is opened with O_NOFOLLOW relative to its
parent, so a symlink anywhere on the way (swapped in at any moment) makes the call fail
instead of reaching outside; only regular files are read. Standard library only: it runs
with `python3 -I -S`.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator

DATA = "/mnt/data"
CHUNK = 1 << 20
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Refused(Exception):
    """The path is not a regular file reached through plain directories under /mnt/data."""


def components(path: str) -> list[str]:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise Refused("not a plain relative path")
    if "\0" in path:
        raise Refused("NUL in path")
    return parts


def open_parent(
    path: str, root: str = DATA, make: tuple[int, int] | None = None
) -> tuple[int, str]:
    """An fd of the directory holding path's last component, and that component; missing
    directories are made (owned by make's uid and gid) when make is given."""
    parts = components(path)
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
                raise Refused("it no longer exists") from exc
            except OSError as exc:
                raise Refused(f"{part!r} on its path is a symlink or not a directory") from exc
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def _open_file(path: str, root: str, access: int) -> tuple[int, int]:
    """An fd on the regular file at path (opened with access: O_RDONLY or O_WRONLY), reached
    through no symlink and without blocking on a FIFO, and its size."""
    parent, name = open_parent(path, root)
    try:
        flags = access | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=parent)
        except FileNotFoundError as exc:
            raise Refused("it no longer exists") from exc
        except OSError as exc:
            raise Refused("it is a symlink or cannot be opened") from exc
    finally:
        os.close(parent)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise Refused("it is not a regular file: a FIFO, a device or a directory")
    return fd, st.st_size


def open_regular(path: str, root: str = DATA) -> tuple[int, int]:
    """An fd open for reading on the regular file at path, and its size."""
    return _open_file(path, root, os.O_RDONLY)


def delete(path: str, root: str = DATA) -> None:
    parent, name = open_parent(path, root)
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            raise Refused("a directory")
        os.unlink(name, dir_fd=parent)
    except FileNotFoundError as exc:
        raise Refused("no such file") from exc
    finally:
        os.close(parent)


def settle(path: str, size: int, tail: bytes = b"", root: str = DATA) -> None:
    """Make the regular file at path size bytes long, ending with tail."""
    if size < len(tail):
        raise Refused("a size shorter than its tail")
    fd, _ = _open_file(path, root, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        if tail:
            os.pwrite(fd, tail, size - len(tail))
    finally:
        os.close(fd)


def walk(root: str = DATA) -> Iterator[tuple[bytes, os.stat_result]]:
    """(path relative to root, lstat) of every entry below root, symlinks not followed."""
    stack = [b""]
    base = os.fsencode(root)
    while stack:
        rel = stack.pop()
        try:
            it = os.scandir(base + b"/" + rel if rel else base)
        except OSError:
            continue
        with it:
            for entry in it:
                child = rel + b"/" + entry.name if rel else entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                yield child, st
                if stat.S_ISDIR(st.st_mode):
                    stack.append(child)


Snapshot = dict[str, tuple[int, int]]


def scan(
    root: str = DATA, on_bad_name: Callable[[bytes], None] | None = None
) -> tuple[Snapshot, int]:
    """Every regular file whose path is UTF-8 -> (size, mtime_ns), and the bytes allocated
    under root (st_blocks, so a sparse file counts what it really uses)."""
    files: Snapshot = {}
    used = 0
    for rel, st in walk(root):
        used += st.st_blocks * 512
        if not stat.S_ISREG(st.st_mode):
            continue
        try:
            name = rel.decode("utf-8")
        except UnicodeDecodeError:
            if on_bad_name is not None:
                on_bad_name(rel)
            continue
        files[name] = (st.st_size, st.st_mtime_ns)
    return files, used


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def _copy(fd: int, size: int) -> None:
    remaining = size
    while remaining > 0:
        chunk = os.read(fd, min(CHUNK, remaining))
        if not chunk:  # shrank while being read: the reader sees a short body
            return
        _write_all(chunk)
        remaining -= len(chunk)


def main(argv: list[str]) -> int:
    op = argv[1] if len(argv) > 1 else ""
    try:
        if op == "read" and len(argv) == 3:
            fd, size = open_regular(argv[2])
            _write_all(b"ok %d\n" % size)
            _copy(fd, size)
        elif op == "delete" and len(argv) == 3:
            delete(argv[2])
            _write_all(b"ok\n")
        elif op == "settle" and len(argv) in (4, 5) and argv[3].isdigit():
            settle(argv[2], int(argv[3]), bytes.fromhex(argv[4]) if len(argv) == 5 else b"")
            _write_all(b"ok\n")
        elif op == "list":
            skipped: list[bytes] = []
            files, _ = scan(on_bad_name=skipped.append)
            _write_all(
                b"".join(
                    b"%d\t%d\t%s\0" % (size, mtime, path.encode())
                    for path, (size, mtime) in files.items()
                )
            )
            for raw in skipped[:20]:
                sys.stderr.write(f"skipped a file whose name is not UTF-8: {raw!r}\n")
        elif op == "usage":
            _write_all(b"%d\n" % scan()[1])
        else:
            sys.stderr.write(
                "usage: fileops.py read|delete PATH | settle PATH SIZE [TAILHEX] | list | usage\n"
            )
            return 2
    except Refused as exc:
        _write_all(f"missing {exc}\n".encode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
