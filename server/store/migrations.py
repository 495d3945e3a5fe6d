"""Start-up migrations: Alembic's revisions (server/store/alembic) up to the newest, under a lock.

Every server runs them when it starts, so two starting at once must not both create the
tables: PostgreSQL serialises them with a transaction-level advisory lock, SQLite with a file
lock beside the database. A database made before the migrations (tables, no alembic_version)
is first completed to the baseline revision, with the columns older servers added in place, and
stamped with it; the later revisions then run as on any other database.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, func, inspect, select, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from server.store import tables as _tables  # noqa: F401  (registers the tables)

log = logging.getLogger("localbox.store")

SCRIPTS = Path(__file__).with_name("alembic")
BASELINE = "0001"
LOCK_KEY = int.from_bytes(b"localbox", "big")
"""The advisory lock every localbox takes on PostgreSQL while it migrates (a fixed key)."""

# Columns older servers added in place to tables create_all had made before them:
# (table, column, SQL type), in the order they were introduced.
LEGACY_COLUMNS: tuple[tuple[str, str, str], ...] = (("files", "expires_at", "INTEGER"),)


def upgrade(engine: Engine, then: Callable[[Connection], None] | None = None) -> None:
    """Bring the schema to the newest revision, then run `then` (in the same transaction and
    under the same lock, so it sees the migrated schema and no other server's half-start)."""
    with _locked(engine) as conn:
        config = _config(conn)
        _adopt(conn, config)
        command.upgrade(config, "head")
        if then is not None:
            then(conn)


def head() -> str:
    """The newest revision."""
    revision = ScriptDirectory.from_config(_config(None)).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None before the migrations."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        version: str | None = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return version


def differences(engine: Engine) -> list[str]:
    """How the database's schema differs from what the tables describe; empty when the
    migrations made exactly that schema."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [repr(diff) for diff in compare_metadata(context, SQLModel.metadata)]


def _config(conn: Connection | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = conn
    return config


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that no other localbox migrates beside."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            # Released when the transaction ends, whichever way it ends.
            conn.execute(select(func.pg_advisory_xact_lock(LOCK_KEY)))
            yield conn
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        with engine.begin() as conn:
            yield conn
        return
    with Path(f"{database}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with engine.begin() as conn:
                yield conn
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _adopt(conn: Connection, config: Config) -> None:
    """Stamp a database made before the migrations with the baseline, once it matches it."""
    baseline = _baseline(config)
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables or not tables & set(baseline.tables):
        return
    log.info("database from before the migrations: completing it to revision %s", BASELINE)
    for name, column, sql_type in LEGACY_COLUMNS:
        if name in tables and column not in {c["name"] for c in inspect(conn).get_columns(name)}:
            log.info("adding column %s.%s", name, column)
            conn.execute(text(f"ALTER TABLE {name} ADD COLUMN {column} {sql_type}"))
    # Tables and indexes an older server had not made yet (create_all made missing tables at
    # every start, but never an index added to a table that existed).
    baseline.create_all(conn, checkfirst=True)
    for table in baseline.sorted_tables:
        present = {i["name"] for i in inspect(conn).get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in present:
                index.create(conn)
    command.stamp(config, BASELINE)


def _baseline(config: Config) -> MetaData:
    """The baseline revision's tables, as its module describes them."""
    script = ScriptDirectory.from_config(config).get_revision(BASELINE)
    assert script is not None
    schema: MetaData = script.module.schema()
    return schema
