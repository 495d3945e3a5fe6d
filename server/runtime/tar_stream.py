"""A tar stream for writing one file through the Docker archive API without buffering."""

from __future__ import annotations

import tarfile
import time
from collections.abc import Iterator
from typing import BinaryIO

CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE


class OneFileTar:
    """A tar archive holding one file read from source, a chunk at a time. Its length is
    known before a byte is read, so it goes out with a Content-Length rather than chunked
    (no framing, no copy of each chunk to frame it)."""

    def __init__(
        self, name: str, source: BinaryIO, size: int, *, uid: int, gid: int, mode: int = 0o644
    ) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.mtime = int(time.time())
        self._header = info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")
        self._source = source
        self._size = size
        self._padding = (BLOCK - size % BLOCK) % BLOCK + 2 * BLOCK

    def __len__(self) -> int:
        return len(self._header) + self._size + self._padding

    def __iter__(self) -> Iterator[bytes]:
        yield self._header
        remaining = self._size
        while remaining > 0:
            # Sources may hand out memoryviews; they are sent as they are.
            chunk = self._source.read(min(CHUNK, remaining))
            if not chunk:
                raise OSError(f"source ended {remaining} bytes short")
            remaining -= len(chunk)
            yield chunk
        yield b"\0" * self._padding


def tar_one_file(
    name: str, source: BinaryIO, size: int, *, uid: int, gid: int, mode: int = 0o644
) -> OneFileTar:
    """A tar archive holding one file read from source, a chunk at a time."""
    return OneFileTar(name, source, size, uid=uid, gid=gid, mode=mode)
