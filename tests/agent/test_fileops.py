"""fileops never follows a symlink, reads only regular files, and counts allocated blocks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from localbox_agent import fileops  # type: ignore[import-not-found]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "d").mkdir(parents=True)
    (data / "d" / "f.txt").write_text("hello")
    (tmp_path / "secret").write_text("nope")
    return data


def test_reads_a_regular_file(root: Path) -> None:
    fd, size = fileops.open_regular("d/f.txt", str(root))
    assert size == 5
    assert os.read(fd, 10) == b"hello"
    os.close(fd)


@pytest.mark.parametrize("path", ["../secret", "/etc/passwd", "d/../../secret", "", "d//f.txt"])
def test_refuses_paths_that_are_not_plain(root: Path, path: str) -> None:
    with pytest.raises(fileops.Refused):
        fileops.open_regular(path, str(root))


def test_refuses_symlinks_anywhere_on_the_way(root: Path) -> None:
    (root / "link").symlink_to(root.parent / "secret")
    (root / "dirlink").symlink_to(root.parent)
    with pytest.raises(fileops.Refused, match="symlink"):
        fileops.open_regular("link", str(root))
    with pytest.raises(fileops.Refused, match="symlink or not a directory"):
        fileops.open_regular("dirlink/secret", str(root))
    with pytest.raises(fileops.Refused, match="symlink or not a directory"):
        fileops.delete("dirlink/secret", str(root))
    assert (root.parent / "secret").exists()


def test_refuses_fifos_without_blocking(root: Path) -> None:
    os.mkfifo(root / "pipe")
    with pytest.raises(fileops.Refused, match="not a regular file"):
        fileops.open_regular("pipe", str(root))


def test_scan_lists_regular_utf8_files_and_counts_blocks(root: Path) -> None:
    with open(root / "sparse.bin", "wb") as f:
        f.truncate(1 << 40)
    (root / "link").symlink_to("d/f.txt")
    os.mkfifo(root / "pipe")
    bad: list[bytes] = []
    with open(os.fsencode(root) + b"/bad\xff", "w") as f:
        f.write("x")
    files, used = fileops.scan(str(root), on_bad_name=bad.append)
    assert set(files) == {"d/f.txt", "sparse.bin"}
    assert files["sparse.bin"][0] == 1 << 40
    assert used < 1 << 20  # the terabyte is sparse: it takes (almost) no blocks
    assert bad == [b"bad\xff"]


def test_settle_cuts_or_extends_a_file_and_sets_its_tail(root: Path) -> None:
    target = root / "d" / "f.txt"
    fileops.settle("d/f.txt", 3, b"", str(root))
    assert target.read_bytes() == b"hel"
    fileops.settle("d/f.txt", 6, b"XY", str(root))
    assert target.read_bytes() == b"hel\0XY"
    fileops.settle("d/f.txt", 2, b"ab", str(root))
    assert target.read_bytes() == b"ab"
    with pytest.raises(fileops.Refused, match="shorter than its tail"):
        fileops.settle("d/f.txt", 1, b"ab", str(root))


def test_settle_never_follows_a_symlink(root: Path) -> None:
    os.symlink("../secret", root / "link")
    os.symlink("..", root / "dirlink")
    with pytest.raises(fileops.Refused, match="symlink"):
        fileops.settle("link", 0, b"", str(root))
    with pytest.raises(fileops.Refused, match="symlink or not a directory"):
        fileops.settle("dirlink/secret", 0, b"", str(root))
    with pytest.raises(fileops.Refused, match="no longer exists"):
        fileops.settle("d/missing", 0, b"", str(root))
    assert (root.parent / "secret").read_text() == "nope"
