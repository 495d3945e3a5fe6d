"""Files under /mnt/data, seen without ever following a symlink.

Used by the agent (scans for changed files, the disk watchdog), by the server when it reaches
a sandbox's data volume directly (server/runtime/volume_files.py, with root set to the
volume's directory), and run on its own by the server through `docker exec` as root:

  fileops.py read PATH    "ok SIZE\\n" then exactly SIZE bytes, or "missing REASON\\n"
  fileops.py delete PATH  "ok\\n" or "missing REASON\\n"
  fileops.py place TEMP PATH SIZE [TAILHEX]
                          rename the upload written at TEMP (a temporary name beside PATH)
                          to PATH, replacing what is there in one step, once it is checked
                          to hold SIZE bytes; or, given TAILHEX (which may be empty), once
                          it is settled to SIZE bytes ending with TAIL (a streamed upload
                          whose real size turned out other than the one announced); the
                          temporary is removed if it cannot be placed; "ok\\n" or
                          "missing REASON\\n"
  fileops.py sweep GRACE [KEEP...]
                          remove temporaries (anywhere under /mnt/data) not modified for
                          GRACE seconds, except the paths KEEP; "ok REMOVED LEFT\\n", LEFT
                          counting those left for being newer than GRACE (or that could
                          not be removed)
  fileops.py list         one "SIZE\\tMTIME\\tPATH\\0" record per regular file
  fileops.py usage        the bytes allocated under /mnt/data (blocks, not apparent sizes)

PATH is relative to /mnt/data. Every component is opened with O_NOFOLLOW relative to its
parent, so a symlink anywhere on the way (swapped in at any moment) makes the call fail
instead of reaching outside; only regular files are read. Standard library only: it runs
with `python3 -I -S`.

Uploads are written under a temporary name in the directory of their final name, a name
reserved for the server (TEMP_PREFIX and 32 hex digits, see temporary_name), and renamed
into place only once complete: a crash mid-write never leaves a partial file under the
name, and a file being replaced keeps its old bytes until the new ones are whole. Listings
and scans never show temporaries; `sweep` removes those a crash left behind.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Callable, Container, Iterator

DATA = "/mnt/data"
CHUNK = 1 << 20
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
TEMP_PREFIX = ".localbox-upload-"
_TEMP_DIGITS = 32
_HEX = frozenset(b"0123456789abcdef")


class Refused(Exception):
    """The path is not a regular file reached through plain directories under /mnt/data."""


def temporary_name() -> str:
    """A fresh reserved name for an upload being written (hidden: it starts with a dot)."""
    return TEMP_PREFIX + os.urandom(_TEMP_DIGITS // 2).hex()


def is_temporary(name: str | bytes) -> bool:
    """Whether name (one path component) is a reserved upload temporary."""
    raw = name.encode("utf-8", "surrogateescape") if isinstance(name, str) else name
    prefix = TEMP_PREFIX.encode()
    return (
        len(raw) == len(prefix) + _TEMP_DIGITS
        and raw.startswith(prefix)
        and _HEX.issuperset(raw[len(prefix) :])
    )


def temporary_beside(path: str) -> str:
    """A fresh temporary path in the directory of path (relative, like path)."""
    parts = components(path)
    return "/".join([*parts[:-1], temporary_name()])


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
        try:
            fd = os.open(name, access | FILE_FLAGS, dir_fd=parent)
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


def create_new(path: str, root: str = DATA, owner: tuple[int, int] | None = None) -> int:
    """An fd open for writing on a new regular file at path (O_EXCL: never what was there),
    owned by owner; missing directories on the way are made (owned by owner) when given."""
    parent, name = open_parent(path, root, make=owner)
    try:
        try:
            fd = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | FILE_FLAGS, 0o644, dir_fd=parent
            )
        except FileExistsError as exc:
            raise Refused("something is in the way") from exc
        except OSError as exc:
            raise Refused(f"cannot be created: {exc.strerror}") from exc
        try:
            if owner is not None:
                os.fchown(fd, *owner)
        except BaseException:
            os.close(fd)
            _unlink_quietly(parent, name)
            raise
        return fd
    finally:
        os.close(parent)


def remove_temporary(temp: str, root: str = DATA) -> bool:
    """Remove the temporary at temp (it must have a temporary's name); whether it is gone."""
    parent, name = open_parent(temp, root)
    try:
        if not is_temporary(name):
            raise Refused("not a temporary's name")
        return _unlink_quietly(parent, name)
    finally:
        os.close(parent)


def place(temp: str, path: str, size: int, tail: bytes | None = None, root: str = DATA) -> None:
    """Rename the temporary at temp to path (same directory), replacing whatever is there in
    one step. It must be a regular file of size bytes; with tail given, it is first made
    size bytes long ending with tail instead. Refused (and the temporary removed) when it is
    gone, not a regular file, of another size, or a directory is at path."""
    temp_parts, parts = components(temp), components(path)
    if temp_parts[:-1] != parts[:-1] or not is_temporary(temp_parts[-1]):
        raise Refused("not a temporary beside the file")
    if is_temporary(parts[-1]):
        raise Refused("a temporary's name")
    if tail is not None and size < len(tail):
        raise Refused("a size shorter than its tail")
    parent, name = open_parent(path, root)
    temp_name = temp_parts[-1]
    try:
        try:
            fd = os.open(temp_name, os.O_WRONLY | FILE_FLAGS, dir_fd=parent)
        except FileNotFoundError as exc:
            raise Refused("the upload's temporary file is gone") from exc
        except OSError as exc:
            raise Refused("the upload's temporary file is not a regular file") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Refused("the upload's temporary file is not a regular file")
            if tail is None:
                if st.st_size != size:
                    raise Refused(f"the upload holds {st.st_size} bytes, not {size}")
            else:
                os.ftruncate(fd, size)
                if tail:
                    os.pwrite(fd, tail, size - len(tail))
        finally:
            os.close(fd)
        try:
            os.rename(temp_name, name, src_dir_fd=parent, dst_dir_fd=parent)
        except IsADirectoryError as exc:
            raise Refused("a directory is in the way") from exc
        except FileNotFoundError as exc:
            raise Refused("the upload's temporary file is gone") from exc
    except BaseException:
        _unlink_quietly(parent, temp_name)
        raise
    finally:
        os.close(parent)


def _unlink_quietly(parent: int, name: str) -> bool:
    """Unlink name in parent unless it is a directory; whether nothing is left of it."""
    try:
        if stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            return False
        os.unlink(name, dir_fd=parent)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def sweep(grace_seconds: float, keep: Container[str] = (), root: str = DATA) -> tuple[int, int]:
    """Remove every temporary under root last modified grace_seconds ago or earlier, except
    the paths in keep (uploads still being written); returns (removed, left: newer than
    grace, or not removable). Each is removed through its own directory, opened without
    following symlinks, so a tree changing meanwhile cannot point the removal elsewhere."""
    removed = left = 0
    now = time.time()
    for rel, st in walk(root):
        base = rel.rpartition(b"/")[2]
        if not is_temporary(base) or stat.S_ISDIR(st.st_mode):
            continue
        path = rel.decode("utf-8", "surrogateescape")
        if path in keep:
            continue
        try:
            gone = now - st.st_mtime >= grace_seconds and remove_temporary(path, root)
        except (Refused, OSError):
            gone = False
        if gone:
            removed += 1
        else:
            left += 1
    return removed, left


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
    """Every regular file whose path is UTF-8 -> (size, mtime_ns), uploads still under their
    temporary name left out, and the bytes allocated under root (st_blocks, so a sparse file
    counts what it really uses; temporaries included)."""
    files: Snapshot = {}
    used = 0
    for rel, st in walk(root):
        used += st.st_blocks * 512
        if not stat.S_ISREG(st.st_mode) or is_temporary(rel.rpartition(b"/")[2]):
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
        elif op == "place" and len(argv) in (5, 6) and argv[4].isdigit():
            tail = bytes.fromhex(argv[5]) if len(argv) == 6 else None
            place(argv[2], argv[3], int(argv[4]), tail)
            _write_all(b"ok\n")
        elif op == "sweep" and len(argv) >= 3:
            removed, left = sweep(float(argv[2]), set(argv[3:]))
            _write_all(b"ok %d %d\n" % (removed, left))
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
                "usage: fileops.py read|delete PATH | place TEMP PATH SIZE [TAILHEX]"
                " | sweep GRACE [KEEP...] | list | usage\n"
            )
            return 2
    except Refused as exc:
        _write_all(f"missing {exc}\n".encode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
