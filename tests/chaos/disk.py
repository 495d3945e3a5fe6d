"""A small real disk (tmpfs) to fill up, and the filling."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def tmpfs(path: Path, size: str = "64m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at path (we run as root), unmounted at the end."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        # Lazily: a process that still holds a file there (a server being killed) must not
        # keep the mount.
        subprocess.run(["umount", "-l", str(path)], check=True)


def free(path: Path) -> int:
    return shutil.disk_usage(path).free


def fill(path: Path) -> int:
    """Append to the file at path until the disk has not one byte left; return how many
    bytes were written."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for block in (1 << 20, 4096, 1):
            chunk = b"\0" * block
            while True:
                try:
                    written += os.write(fd, chunk)
                except OSError:
                    break
    finally:
        os.close(fd)
    return written


def shrink(path: Path, by: int) -> None:
    """Give back `by` bytes of a filler file."""
    os.truncate(path, max(path.stat().st_size - by, 0))
