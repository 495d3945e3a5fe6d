"""A tar stream for writing one file through the Docker archive API without buffering."""

from __future__ import annotations

import tarfile
import time
from collections.abc import Iterator
from typing import BinaryIO

CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE


def tar_one_file(
    name: str, source: BinaryIO, size: int, *, uid: int, gid: int, mode: int = 0o644
) -> Iterator[bytes]:
    """Yield a tar archive holding one file read from source, a chunk at a time."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = int(time.time())
    yield info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")
    remaining = size
    while remaining > 0:
        chunk = source.read(min(CHUNK, remaining))
        if not chunk:
            raise OSError(f"source ended {remaining} bytes short")
        remaining -= len(chunk)
        yield chunk
    padding = (BLOCK - size % BLOCK) % BLOCK
    yield b"\0" * (padding + 2 * BLOCK)
