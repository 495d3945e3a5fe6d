"""Start-up migrations: a database made by an older localbox gains the newer columns."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from server.domain import File
from server.store import Database, FileRepository

# The files table as localbox created it before files could expire.
OLD_FILES = """
CREATE TABLE files (
    id VARCHAR NOT NULL,
    filename VARCHAR NOT NULL,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    purpose VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_files_page ON files (created_at, id);
CREATE INDEX ix_files_purpose ON files (purpose);
"""


def test_an_old_files_table_gains_expires_at_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_FILES)
        conn.execute(
            "INSERT INTO files VALUES ('file-old', 'a.txt', 3, 100, 'assistants', 'processed')"
        )
    conn.close()

    for _ in range(2):  # idempotent: a second start finds nothing to do
        db = Database(f"sqlite:///{path}")
        db.create_tables()
        repo = FileRepository(db)
        old = repo.get("file-old")
        assert old is not None
        assert old.expires_at is None
        db.close()

    db = Database(f"sqlite:///{path}")
    repo = FileRepository(db)
    repo.add(
        File(id="file-new", filename="b", bytes=1, created_at=200, purpose="batch", expires_at=300)
    )
    assert repo.expired_ids(300, 10) == ["file-new"]
    db.close()
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(files)")}
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(files)")}
    conn.close()
    assert "expires_at" in columns
    assert "ix_files_expires_at" in indexes
