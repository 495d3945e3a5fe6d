"""Tar streams for moving single files through the Docker archive API without buffering."""

from __future__ import annotations

import tarfile
import time
from collections.abc import Iterable, Iterator
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


class _ChunkReader:
    """A minimal read()-able view of an iterator of byte chunks, for tarfile's stream mode."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if n < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


def untar_first_file(chunks: Iterable[bytes]) -> tuple[int, Iterator[bytes]]:
    """The size and streamed bytes of the first regular file in a tar stream."""
    archive = tarfile.open(fileobj=_ChunkReader(chunks), mode="r|")  # type: ignore[call-overload]  # noqa: SIM115 (closed by the reader)
    for member in archive:
        if member.isfile():
            extracted = archive.extractfile(member)
            assert extracted is not None
            return member.size, _read_all(archive, extracted)
    archive.close()
    raise FileNotFoundError("archive holds no regular file")


def _read_all(archive: tarfile.TarFile, extracted: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := extracted.read(CHUNK):
            yield chunk
    finally:
        archive.close()
