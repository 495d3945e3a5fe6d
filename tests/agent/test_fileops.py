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


def _staged(root: Path, path: str, data: bytes) -> str:
    """What the server does first: the bytes under a temporary name beside path."""
    temp = fileops.temporary_beside(path)
    fd = fileops.create_new(temp, str(root))
    os.write(fd, data)
    os.close(fd)
    return temp


def test_temporaries_have_reserved_hidden_names_beside_their_file() -> None:
    temp = fileops.temporary_beside("d/e/f.txt")
    head, _, name = temp.rpartition("/")
    assert head == "d/e"
    assert name.startswith(".localbox-upload-")
    assert fileops.is_temporary(name)
    assert fileops.is_temporary(name.encode())
    assert fileops.temporary_beside("f.txt") != fileops.temporary_beside("f.txt")
    for other in [".localbox-upload-", ".localbox-upload-xyz", name + "0", name.upper(), "f"]:
        assert not fileops.is_temporary(other)


def test_scan_never_lists_temporaries_but_counts_their_blocks(root: Path) -> None:
    temp = _staged(root, "d/new.bin", b"x" * 100_000)
    (root / ".localbox-upload-lookalike").write_text("listed: not a reserved name")
    files, used = fileops.scan(str(root))
    assert set(files) == {"d/f.txt", ".localbox-upload-lookalike"}
    assert (root / temp).exists()
    assert used >= 100_000


def test_place_renames_a_checked_temporary_over_the_old_file(root: Path) -> None:
    temp = _staged(root, "d/f.txt", b"new bytes")
    assert (root / "d" / "f.txt").read_bytes() == b"hello"  # the old bytes, until placed
    fileops.place(temp, "d/f.txt", 9, None, str(root))
    assert (root / "d" / "f.txt").read_bytes() == b"new bytes"
    assert sorted(os.listdir(root / "d")) == ["f.txt"]


def test_place_refuses_an_incomplete_temporary_and_keeps_the_old_file(root: Path) -> None:
    temp = _staged(root, "d/f.txt", b"part")
    with pytest.raises(fileops.Refused, match="holds 4 bytes, not 9"):
        fileops.place(temp, "d/f.txt", 9, None, str(root))
    assert (root / "d" / "f.txt").read_bytes() == b"hello"
    assert sorted(os.listdir(root / "d")) == ["f.txt"]  # the temporary went


def test_place_settles_size_and_tail_first(root: Path) -> None:
    for size, tail, want in [(3, b"", b"new"), (8, b"XY", b"new b\0XY"), (2, b"ab", b"ab")]:
        temp = _staged(root, "d/g.bin", b"new b")
        fileops.place(temp, "d/g.bin", size, tail, str(root))
        assert (root / "d" / "g.bin").read_bytes() == want
    temp = _staged(root, "d/g.bin", b"new b")
    with pytest.raises(fileops.Refused, match="shorter than its tail"):
        fileops.place(temp, "d/g.bin", 1, b"ab", str(root))


def test_place_refuses_what_is_not_a_temporary_beside_the_file(root: Path) -> None:
    temp = _staged(root, "d/f.txt", b"new")
    (root / "e").mkdir()
    with pytest.raises(fileops.Refused, match="not a temporary beside"):
        fileops.place(temp, "e/f.txt", 3, None, str(root))
    with pytest.raises(fileops.Refused, match="not a temporary beside"):
        fileops.place("d/f.txt", "d/x.txt", 5, None, str(root))
    with pytest.raises(fileops.Refused, match="a temporary's name"):
        fileops.place(temp, "d/" + fileops.temporary_name(), 3, None, str(root))
    assert (root / "d" / "f.txt").read_bytes() == b"hello"


def test_place_never_follows_a_symlink_swapped_in(root: Path) -> None:
    # Sandbox code can see the temporary and swap it for a symlink or a FIFO before the
    # rename: nothing outside is read or written, and nothing is placed.
    temp = _staged(root, "d/f.txt", b"new")
    os.unlink(root / temp)
    os.symlink(root.parent / "secret", root / temp)
    with pytest.raises(fileops.Refused, match="not a regular file"):
        fileops.place(temp, "d/f.txt", 4, b"", str(root))
    assert (root.parent / "secret").read_text() == "nope"
    assert not os.path.lexists(root / temp)
    temp = _staged(root, "d/f.txt", b"new")
    os.unlink(root / temp)
    os.mkfifo(root / temp)
    with pytest.raises(fileops.Refused, match="not a regular file"):
        fileops.place(temp, "d/f.txt", 3, None, str(root))
    # A directory swapped in for the file's directory: refused on the way.
    temp = _staged(root, "d/f.txt", b"new")
    os.rename(root / "d", root / "real")
    os.symlink(root / "real", root / "d")
    with pytest.raises(fileops.Refused, match="symlink or not a directory"):
        fileops.place(temp, "d/f.txt", 3, None, str(root))
    assert (root / "real" / "f.txt").read_bytes() == b"hello"


def test_place_refuses_a_directory_in_the_way(root: Path) -> None:
    (root / "d" / "sub").mkdir()
    temp = _staged(root, "d/sub", b"new")
    with pytest.raises(fileops.Refused, match="directory is in the way"):
        fileops.place(temp, "d/sub", 3, None, str(root))
    assert (root / "d" / "sub").is_dir()
    assert not (root / temp).exists()


def test_place_of_a_vanished_temporary_is_refused(root: Path) -> None:
    temp = _staged(root, "d/f.txt", b"new")
    os.unlink(root / temp)
    with pytest.raises(fileops.Refused, match="gone"):
        fileops.place(temp, "d/f.txt", 3, None, str(root))
    assert (root / "d" / "f.txt").read_bytes() == b"hello"


def test_create_new_never_opens_what_is_there(root: Path) -> None:
    with pytest.raises(fileops.Refused, match="in the way"):
        fileops.create_new("d/f.txt", str(root))
    os.symlink(root.parent / "secret", root / "d" / "link")
    with pytest.raises(fileops.Refused, match="in the way"):
        fileops.create_new("d/link", str(root))
    assert (root.parent / "secret").read_text() == "nope"


def test_sweep_removes_old_temporaries_only(root: Path) -> None:
    old = _staged(root, "d/old.bin", b"left by a crash")
    kept = _staged(root, "d/busy.bin", b"being written")
    young = _staged(root, "top.bin", b"just now")
    for path in (old, kept):
        os.utime(root / path, (1, 1))
    (root / "d" / ".localbox-upload-lookalike").write_text("not reserved")
    assert fileops.sweep(60, {kept}, str(root)) == (1, 1)
    assert not (root / old).exists()
    assert (root / kept).exists()
    assert (root / young).exists()
    assert fileops.sweep(0, {kept}, str(root)) == (1, 0)
    assert not (root / young).exists()
    assert (root / kept).exists()
    assert (root / "d" / ".localbox-upload-lookalike").exists()
    assert (root / "d" / "f.txt").exists()


def test_sweep_leaves_reserved_names_outside_the_root_alone(root: Path) -> None:
    outside = root.parent / fileops.temporary_name()
    outside.write_text("not ours")
    os.utime(outside, (1, 1))
    os.symlink(root.parent, root / "up")
    os.symlink(outside, root / "d" / fileops.temporary_name())  # a symlink named like one
    assert fileops.sweep(0, (), str(root)) == (1, 0)  # the link itself goes
    assert outside.read_text() == "not ours"


def test_the_server_and_the_helper_agree_on_reserved_names() -> None:
    from server.runtime import is_reserved_name
    from server.runtime.base import RESERVED_PREFIX

    assert RESERVED_PREFIX == fileops.TEMP_PREFIX
    name = fileops.temporary_name()
    assert is_reserved_name(name)
    for other in [name[:-1], name + "a", name.upper(), name[:-1] + "g", "x"]:
        assert is_reserved_name(other) == fileops.is_temporary(other) is False
