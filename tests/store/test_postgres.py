"""The store on a real PostgreSQL: 64-bit columns, connections the database dropped, start-ups
at once, a database made before the migrations."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from server.domain import ContainerFile, File, PageQuery
from server.store import ContainerFileRepository, Database, FileRepository
from server.store.migrations import head

BIG_FILE = 3 << 30
AFTER_2038 = 4_102_444_800  # 2100-01-01


def terminate_backends(db: Database) -> int:
    """End every other session on db's database, as a restart of the database would."""
    rows = db.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return int(rows[0][0])


def test_the_migrations_make_the_schema_the_tables_describe(postgres_database: str) -> None:
    db = Database(postgres_database)
    assert db.revision() is None
    db.create_tables()
    assert db.revision() == head()
    assert db.schema_differences() == []
    db.create_tables()  # a second start finds nothing to do
    assert db.revision() == head()
    db.close()


def test_sizes_past_2_gib_and_times_past_2038_are_stored(postgres_database: str) -> None:
    db = Database(postgres_database)
    db.create_tables()
    files = ContainerFileRepository(db)
    files.put(
        ContainerFile(
            id="cfile_big",
            container_id="cntr_x",
            path="big.bin",
            bytes=BIG_FILE,
            created_at=AFTER_2038,
            source="assistant",
        )
    )
    page = files.list_page("cntr_x", PageQuery(order="asc", limit=10))
    assert [(f.bytes, f.created_at) for f in page.items] == [(BIG_FILE, AFTER_2038)]
    repo = FileRepository(db)
    repo.add(
        File(
            id="file-late",
            filename="late.txt",
            bytes=BIG_FILE,
            created_at=AFTER_2038,
            purpose="assistants",
            expires_at=AFTER_2038 + 3600,
        )
    )
    assert repo.expired_ids(AFTER_2038 + 3600) == ["file-late"]
    assert repo.total_bytes() == BIG_FILE
    db.close()


def test_connections_the_database_dropped_are_replaced(postgres_database: str) -> None:
    db = Database(postgres_database, pool_size=2)
    db.create_tables()
    repo = FileRepository(db)
    for n in range(2):  # both pooled connections used, then back in the pool
        repo.add(File(id=f"file-{n}", filename="a", bytes=1, created_at=1, purpose="assistants"))
    probe = Database(postgres_database)
    assert terminate_backends(probe) >= 1
    probe.close()
    for _ in range(3):
        assert repo.get("file-0") is not None
    db.close()


def test_servers_starting_at_once_on_an_empty_database_all_migrate(postgres_database: str) -> None:
    """Without the migration lock, concurrent CREATE TABLEs collide (a duplicate type)."""
    starters = 4
    ready = threading.Barrier(starters)

    def start() -> str | None:
        db = Database(postgres_database)
        ready.wait()
        db.create_tables()
        revision = db.revision()
        db.close()
        return revision

    with ThreadPoolExecutor(starters) as pool:
        revisions = list(pool.map(lambda _: start(), range(starters)))
    assert revisions == [head()] * starters


# The schema as localbox made it on PostgreSQL before its migrations (create_all): 32-bit
# integers, and a files table from before files could expire.
OLD_SCHEMA = """
CREATE TABLE containers (
    id VARCHAR NOT NULL PRIMARY KEY, name VARCHAR NOT NULL, created_at INTEGER NOT NULL,
    status VARCHAR NOT NULL, expires_after_minutes INTEGER NOT NULL,
    last_active_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, memory_limit VARCHAR NOT NULL,
    network_policy_type VARCHAR NOT NULL, allowed_domains VARCHAR NOT NULL);
CREATE INDEX ix_containers_name ON containers (name);
CREATE INDEX ix_containers_created_id ON containers (created_at, id);
CREATE TABLE files (
    id VARCHAR NOT NULL PRIMARY KEY, filename VARCHAR NOT NULL, bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL, purpose VARCHAR NOT NULL, status VARCHAR NOT NULL);
CREATE INDEX ix_files_page ON files (created_at, id);
CREATE INDEX ix_files_purpose ON files (purpose);
"""


def test_a_database_from_before_the_migrations_is_upgraded_in_place(
    postgres_database: str,
) -> None:
    db = Database(postgres_database)
    for statement in OLD_SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(
        "INSERT INTO containers VALUES ('cntr_old', 'old', 1, 'running', 20, 2, 1202, '1g', "
        "'disabled', '')"
    )
    db.execute("INSERT INTO files VALUES ('file-old', 'a.txt', 3, 100, 'assistants', 'processed')")
    db.create_tables()
    assert db.revision() == head()
    assert db.schema_differences() == []
    assert db.execute("SELECT id, name, expires_at FROM containers") == [("cntr_old", "old", 1202)]
    old = FileRepository(db).get("file-old")
    assert old is not None
    assert (old.bytes, old.expires_at) == (3, None)
    FileRepository(db).add(
        File(id="file-big", filename="b", bytes=BIG_FILE, created_at=AFTER_2038, purpose="batch")
    )
    db.close()


@pytest.mark.parametrize("url", ["postgresql://", "postgres://"])
def test_a_plain_postgresql_url_means_psycopg(postgres_database: str, url: str) -> None:
    db = Database(postgres_database.replace("postgresql://", url, 1))
    db.ping()
    assert db.dialect == "postgresql"
    db.close()
