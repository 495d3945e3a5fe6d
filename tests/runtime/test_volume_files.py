"""Files read and written straight in a data volume's directory: never through a symlink,
never blocking on a FIFO, never into a file that is not the one the server created; written
under a temporary name beside their own and renamed into place only when whole, so a write
cut off leaves the old file and no temporary."""

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
    """As the runtime writes: staged beside path, then placed."""
    temp = volume_files.temporary_beside(path)
    volume_files.stage(str(root), temp, io.BytesIO(data), len(data), OWNER)
    volume_files.place(str(root), temp, path, len(data), None)


class Cut(io.RawIOBase):
    """A source that fails after handing out some bytes, as a dropped upload does."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if not self._data:
            raise OSError("the upload was cut short")
        out, self._data = self._data[:n], self._data[n:]
        return out


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


def test_a_staged_file_is_invisible_until_placed(volume: Path) -> None:
    temp = volume_files.temporary_beside("sub/new.bin")
    assert temp.startswith("sub/.localbox-upload-")
    data = os.urandom(3 * volume_files.CHUNK + 5)
    volume_files.stage(str(volume), temp, io.BytesIO(data), len(data), OWNER)
    assert (volume / temp).read_bytes() == data
    assert not (volume / "sub" / "new.bin").exists()
    volume_files.place(str(volume), temp, "sub/new.bin", len(data), None)
    assert (volume / "sub" / "new.bin").read_bytes() == data
    assert os.listdir(volume / "sub") == ["new.bin"]


def test_a_replacement_keeps_the_old_bytes_until_the_new_ones_are_whole(volume: Path) -> None:
    write(volume, "kept.bin", b"acknowledged")
    temp = volume_files.temporary_beside("kept.bin")
    volume_files.stage(str(volume), temp, io.BytesIO(b"new!"), 4, OWNER)
    assert read(volume, "kept.bin") == b"acknowledged"
    volume_files.place(str(volume), temp, "kept.bin", 4, None)
    assert read(volume, "kept.bin") == b"new!"
    assert os.listdir(volume) == ["kept.bin"]


@pytest.mark.parametrize(
    "source", [io.BytesIO(b"abc"), Cut(b"x" * 1000)], ids=["ends-short", "fails"]
)
def test_a_write_cut_off_leaves_the_old_file_and_no_temporary(
    volume: Path, source: io.RawIOBase
) -> None:
    write(volume, "kept.bin", b"acknowledged")
    temp = volume_files.temporary_beside("kept.bin")
    with pytest.raises(OSError, match="short"):
        volume_files.stage(str(volume), temp, source, 1 << 20, OWNER)  # type: ignore[arg-type]
    assert os.listdir(volume) == ["kept.bin"]
    assert read(volume, "kept.bin") == b"acknowledged"


def test_place_checks_the_size_or_settles_it(volume: Path) -> None:
    temp = volume_files.temporary_beside("up.bin")
    volume_files.stage(str(volume), temp, io.BytesIO(b"a" * 100), 100, OWNER)
    with pytest.raises(NotAFile, match="holds 100 bytes, not 101"):
        volume_files.place(str(volume), temp, "up.bin", 101, None)
    assert os.listdir(volume) == []  # the temporary went with it
    temp = volume_files.temporary_beside("up.bin")
    volume_files.stage(str(volume), temp, io.BytesIO(b"a" * 100), 100, OWNER)
    volume_files.place(str(volume), temp, "up.bin", 60, b"END")
    assert (volume / "up.bin").read_bytes() == b"a" * 57 + b"END"


def test_a_temporary_swapped_for_a_symlink_is_not_followed(volume: Path) -> None:
    temp = volume_files.temporary_beside("up.bin")
    volume_files.stage(str(volume), temp, io.BytesIO(b"x"), 1, OWNER)
    os.unlink(volume / temp)
    os.symlink("../outside", volume / temp)
    with pytest.raises(NotAFile, match="not a regular file"):
        volume_files.place(str(volume), temp, "up.bin", 1, b"")
    assert (volume.parent / "outside").read_bytes() == b"host secret"
    assert os.listdir(volume) == []


def test_sweep_and_remove_temporary(volume: Path) -> None:
    temps = [volume_files.temporary_beside(p) for p in ("a", "sub/b", "c")]
    for temp in temps:
        volume_files.stage(str(volume), temp, io.BytesIO(b"x"), 1, OWNER)
        os.utime(volume / temp, (1, 1))
    volume_files.remove_temporary(str(volume), temps[2])
    volume_files.remove_temporary(str(volume), temps[2])  # gone already: no error
    assert volume_files.sweep(str(volume), 60, {temps[0]}) == (1, 0)
    assert (volume / temps[0]).exists()
    assert not (volume / temps[1]).exists()
    write(volume, "kept.bin", b"k")
    with pytest.raises(NotAFile):
        volume_files.remove_temporary(str(volume), "kept.bin")  # not a temporary's name
    assert (volume / "kept.bin").exists()


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
