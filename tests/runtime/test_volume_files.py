"""Files read and written straight in a data volume's directory: never through a symlink,
never blocking on a FIFO, never into a file that is not the one the server created."""

from __future__ import annotations

import contextlib
import io
import os
import threading
from pathlib import Path

import pytest

from server.runtime import volume_files
from server.runtime.volume_files import NotAFile

OWNER = (os.getuid(), os.getgid())


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    root = tmp_path / "_data"
    root.mkdir()
    (tmp_path / "outside").write_bytes(b"host secret")
    return root


def read(root: Path, path: str) -> bytes:
    size, chunks = volume_files.open_for_reading(str(root), path)
    data = b"".join(chunks)
    assert len(data) == size
    return data


def write(root: Path, path: str, data: bytes) -> None:
    volume_files.write(str(root), path, io.BytesIO(data), len(data), OWNER)


def test_a_file_goes_in_and_comes_out_in_chunks(volume: Path) -> None:
    data = os.urandom(3 * volume_files.CHUNK + 5)
    write(volume, "sub/dir/blob.bin", data)
    assert (volume / "sub/dir/blob.bin").read_bytes() == data
    assert oct((volume / "sub/dir/blob.bin").stat().st_mode & 0o777) == "0o644"
    size, chunks = volume_files.open_for_reading(str(volume), "sub/dir/blob.bin")
    parts = list(chunks)
    assert size == len(data)
    assert b"".join(parts) == data
    assert max(len(p) for p in parts) == volume_files.CHUNK


def test_a_file_that_grows_while_read_is_cut_at_its_size(volume: Path) -> None:
    (volume / "log").write_bytes(b"0123456789")
    size, chunks = volume_files.open_for_reading(str(volume), "log")
    with (volume / "log").open("ab") as f:
        f.write(b"more")
    assert size == 10
    assert b"".join(chunks) == b"0123456789"


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../outside", "a/../../outside", "a//b"])
def test_paths_that_are_not_plain_and_relative_are_refused(volume: Path, path: str) -> None:
    with pytest.raises(NotAFile):
        read(volume, path)
    with pytest.raises(NotAFile):
        write(volume, path, b"x")


def test_reads_follow_no_symlink_and_take_only_regular_files(volume: Path) -> None:
    os.symlink("../outside", volume / "link")
    (volume / "real").mkdir()
    os.symlink("..", volume / "up")
    os.mkfifo(volume / "fifo")
    with pytest.raises(NotAFile, match="symlink"):
        read(volume, "link")
    with pytest.raises(NotAFile, match="symlink"):
        read(volume, "up/outside")
    with pytest.raises(NotAFile, match="FIFO"):
        read(volume, "fifo")  # and it does not wait for a writer
    with pytest.raises(NotAFile, match="directory"):
        read(volume, "real")
    with pytest.raises(NotAFile, match="no longer exists"):
        read(volume, "missing")


def test_writes_replace_what_is_there_and_never_write_through_it(volume: Path) -> None:
    outside = volume.parent / "outside"
    os.symlink("../outside", volume / "link")
    os.mkfifo(volume / "fifo")
    (volume / "original").write_bytes(b"shared")
    os.link(volume / "original", volume / "hardlink")
    write(volume, "link", b"one")
    write(volume, "fifo", b"two")
    write(volume, "hardlink", b"three")
    assert outside.read_bytes() == b"host secret"
    assert not (volume / "link").is_symlink()
    assert (volume / "link").read_bytes() == b"one"
    assert (volume / "fifo").read_bytes() == b"two"
    assert (volume / "original").read_bytes() == b"shared"  # the other name is untouched
    assert (volume / "hardlink").read_bytes() == b"three"
    os.symlink("..", volume / "up")
    with pytest.raises(NotAFile, match="symlink"):
        write(volume, "up/outside", b"pwned")
    assert outside.read_bytes() == b"host secret"
    (volume / "adir").mkdir()
    with pytest.raises(NotAFile, match="directory"):
        write(volume, "adir", b"x")


def test_a_source_that_ends_short_fails_the_write(volume: Path) -> None:
    with pytest.raises(OSError, match="short"):
        volume_files.write(str(volume), "cut", io.BytesIO(b"abc"), 10, OWNER)


def test_settle_sets_the_size_and_the_last_bytes(volume: Path) -> None:
    write(volume, "up.bin", b"a" * 100)
    volume_files.settle(str(volume), "up.bin", 60, b"END")
    assert (volume / "up.bin").read_bytes() == b"a" * 57 + b"END"
    os.symlink("../outside", volume / "link")
    with pytest.raises(NotAFile):
        volume_files.settle(str(volume), "link", 1, b"")
    assert (volume.parent / "outside").read_bytes() == b"host secret"


def test_a_directory_swapped_for_a_symlink_mid_write_is_not_followed(volume: Path) -> None:
    """The race a sandbox can run: the parent directory turns into a symlink over and
    over while the server writes into it. Nothing may land outside."""
    target = volume.parent / "elsewhere"
    target.mkdir()
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            try:
                os.rename(volume / "d", volume / "d.old")
                os.symlink(str(target), volume / "d")
                os.unlink(volume / "d")
                os.rename(volume / "d.old", volume / "d")
            except OSError:
                pass

    (volume / "d").mkdir()
    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        for i in range(200):
            # Refused, or the directory it opened was replaced (and so deleted) meanwhile.
            with contextlib.suppress(NotAFile, FileNotFoundError):
                write(volume, f"d/f{i}", b"x")
    finally:
        stop.set()
        swapper.join()
    assert list(target.iterdir()) == []


def test_usable_tells_whether_the_directory_opens(volume: Path) -> None:
    assert volume_files.usable(str(volume))
    assert not volume_files.usable(str(volume / "missing"))
    os.symlink(str(volume), volume.parent / "alias")
    assert not volume_files.usable(str(volume.parent / "alias"))
