"""FileService.reconcile on a real directory and SQLite: what killed uploads leave goes, what
uploads under way write stays, and temporaries are never files."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from server.services.files import FileService
from server.store import BlobStore, Database, FileRepository
from tests.services.clock import Clock


@pytest.fixture
def parts(tmp_path: Path) -> tuple[FileService, Path]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.create_tables()
    blobs = tmp_path / "files"
    files = FileService(FileRepository(db), BlobStore(blobs), Clock(), max_bytes=1 << 30)
    return files, blobs


def read(files: FileService, file_id: str) -> bytes:
    with files.open(file_id)[1] as f:
        return f.read()


def test_leftovers_of_killed_uploads_go(parts: tuple[FileService, Path]) -> None:
    files, blobs = parts
    kept = files.upload("kept.txt", "assistants", io.BytesIO(b"kept"), 4)
    (blobs / ".incoming" / "file-killedwhilewriting").write_bytes(b"x" * 1000)
    (blobs / "file-writtenbutneverrecorded").write_bytes(b"y" * 500)

    assert files.reconcile() == 1500

    assert sorted(p.name for p in blobs.iterdir()) == [".incoming", kept.id]
    assert list((blobs / ".incoming").iterdir()) == []
    assert read(files, kept.id) == b"kept"
    assert files.reconcile() == 0


class Gate(io.RawIOBase):
    """A source that hands out some bytes, then waits until it is let go."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.go = threading.Event()
        self.sent = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.sent == 0:
            self.sent = 3
            buffer[:3] = b"abc"
            return 3
        self.reached.set()
        self.go.wait(10)
        return 0


def test_an_upload_under_way_is_left_alone(parts: tuple[FileService, Path]) -> None:
    files, blobs = parts
    gate = Gate()
    result: list[str] = []
    upload = threading.Thread(
        target=lambda: result.append(files.upload("a.txt", "assistants", gate, 3).id)  # type: ignore[arg-type]
    )
    upload.start()
    assert gate.reached.wait(10)
    assert len(list((blobs / ".incoming").iterdir())) == 1
    assert files.reconcile() == 0
    gate.go.set()
    upload.join(10)
    assert read(files, result[0]) == b"abc"
    assert list((blobs / ".incoming").iterdir()) == []


def test_a_stored_file_is_whole_or_absent(parts: tuple[FileService, Path]) -> None:
    files, blobs = parts

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            raise OSError("the client went away")

    with pytest.raises(OSError, match="went away"):
        files.upload("a.txt", "assistants", Broken(), 10)  # type: ignore[arg-type]
    assert sorted(p.name for p in blobs.iterdir()) == [".incoming"]
    assert list((blobs / ".incoming").iterdir()) == []
    assert files.list(order="desc", limit=10, after=None, purpose=None).items == []
