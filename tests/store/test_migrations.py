"""Start-up migrations: a database made by an older localbox is upgraded in place, and a
database belongs to one data dir."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from server.domain import File
from server.store import (
    ContainerFileRepository,
    ContainerRepository,
    Database,
    DatabaseInUse,
    Deployment,
    FileRepository,
)
from server.store.migrations import head

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


# A database as an older localbox left it: tables made by create_all before skills and
# responses existed, the files table from before files could expire, the containers table
# from before its status index.
OLDER_SCHEMA = (
    OLD_FILES
    + """
CREATE TABLE containers (
    id VARCHAR NOT NULL, name VARCHAR NOT NULL, created_at INTEGER NOT NULL,
    status VARCHAR NOT NULL, expires_after_minutes INTEGER NOT NULL,
    last_active_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, memory_limit VARCHAR NOT NULL,
    network_policy_type VARCHAR NOT NULL, allowed_domains VARCHAR NOT NULL, PRIMARY KEY (id)
);
CREATE INDEX ix_containers_name ON containers (name);
CREATE INDEX ix_containers_created_id ON containers (created_at, id);
CREATE TABLE container_files (
    id VARCHAR NOT NULL, container_id VARCHAR NOT NULL, path VARCHAR NOT NULL,
    bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, source VARCHAR NOT NULL,
    mtime FLOAT NOT NULL, PRIMARY KEY (id)
);
CREATE INDEX ix_container_files_page ON container_files (container_id, created_at, id);
CREATE UNIQUE INDEX ix_container_files_path ON container_files (container_id, path);
INSERT INTO containers VALUES
    ('cntr_old', 'old', 1, 'running', 20, 2, 1202, '1g', 'disabled', '');
INSERT INTO container_files VALUES
    ('cfile_old', 'cntr_old', 'notes.txt', 4, 3, 'user', 0.0);
INSERT INTO files VALUES ('file-old', 'a.txt', 3, 100, 'assistants', 'processed');
"""
)


def test_a_database_from_before_the_migrations_is_upgraded_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "localbox.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLDER_SCHEMA)
    conn.close()
    db = Database(f"sqlite:///{path}")
    assert db.revision() is None
    db.create_tables()
    assert db.revision() == head()
    assert db.schema_differences() == []
    container = ContainerRepository(db).get("cntr_old")
    assert container is not None
    assert (container.name, container.status, container.expires_at) == ("old", "running", 1202)
    cfile = ContainerFileRepository(db).get("cntr_old", "cfile_old")
    assert cfile is not None
    assert (cfile.path, cfile.bytes) == ("notes.txt", 4)
    old = FileRepository(db).get("file-old")
    assert old is not None
    assert old.expires_at is None
    assert ContainerRepository(db).due_ids(2000) == ["cntr_old"]  # the new status index serves
    db.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


def owner(instance_id: str, data_dir: str, host: str = "box") -> Deployment:
    return Deployment(instance_id=instance_id, data_dir=data_dir, host=host, created_at=1)


def test_a_server_with_another_data_dir_is_refused_the_database(database_url: str) -> None:
    db = Database(database_url)
    db.create_tables(owner("aaaaaaaaaaaaaaaa", "/srv/a"))
    db.create_tables(owner("aaaaaaaaaaaaaaaa", "/srv/a"))  # the same server, restarted
    with pytest.raises(DatabaseInUse) as info:
        db.create_tables(owner("bbbbbbbbbbbbbbbb", "/srv/b", host="other"))
    message = str(info.value)
    assert "/srv/a on host box" in message
    assert "this server's data dir is /srv/b on host other" in message
    assert "LOCALBOX_DATA_DIR=/srv/a" in message
    assert "LOCALBOX_DATABASE_URL" in message
    assert db.execute("SELECT instance_id, data_dir FROM deployment") == [
        ("aaaaaaaaaaaaaaaa", "/srv/a")
    ]
    # The way out the message names, for a data dir that is gone for good.
    assert "DELETE FROM deployment" in message
    db.execute("DELETE FROM deployment")
    db.create_tables(owner("bbbbbbbbbbbbbbbb", "/srv/b", host="other"))
    assert db.execute("SELECT instance_id, data_dir FROM deployment") == [
        ("bbbbbbbbbbbbbbbb", "/srv/b")
    ]
    db.close()


def test_a_data_dir_that_moved_keeps_its_database(database_url: str) -> None:
    db = Database(database_url)
    db.create_tables(owner("aaaaaaaaaaaaaaaa", "/srv/a"))
    db.create_tables(owner("aaaaaaaaaaaaaaaa", "/mnt/a", host="new"))
    assert db.execute("SELECT data_dir, host FROM deployment") == [("/mnt/a", "new")]
    db.close()
