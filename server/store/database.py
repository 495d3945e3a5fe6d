"""The database engine: SQLite by default (WAL, busy timeout); PostgreSQL (psycopg 3) with a
sized pool whose connections are checked before use."""

from __future__ import annotations

import functools
import logging
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, ExceptionContext
from sqlmodel import Session, create_engine

from server.store import tables as _tables  # noqa: F401  (registers the tables)
from server.store.deployment import Deployment, claim
from server.store.migrations import current, differences, upgrade
from server.store.space import DiskReserve, StorageFull

log = logging.getLogger("localbox.store")

T = TypeVar("T")
P = ParamSpec("P")

SQLITE_IOERR, SQLITE_FULL = 10, 13
LOW_DISK = 1 << 20
"""Below this many free bytes, SQLite's I/O errors (its shared-memory file could not grow,
a write failed) are taken for a full disk."""


class Database:
    """Owns the engine; hands out short sessions to the repositories.

    A write that finds the disk full raises StorageFull; with_room() runs a delete so that it
    still succeeds then, with the room the reserve gives back.
    """

    def __init__(
        self,
        url: str,
        reserve: DiskReserve | None = None,
        *,
        pool_size: int = 10,
        max_overflow: int = 20,
        pool_timeout: float = 30.0,
    ) -> None:
        url = driver_url(url)
        self._dir: Path | None = None
        if url.startswith("sqlite"):
            connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": 30}
            if url.startswith("sqlite:///"):
                self._dir = Path(url.removeprefix("sqlite:///")).parent
                self._dir.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(url, connect_args=connect_args)
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "handle_error", self._full_disk)
        else:
            # A server's connections outlive the database's restarts and idle cut-offs:
            # each is checked as it leaves the pool, and a dead one replaced.
            self.engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,
            )
        self._reserve = reserve

    @property
    def dialect(self) -> str:
        """The database's kind: "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    def create_tables(self, owner: Deployment | None = None) -> None:
        """Migrate the schema to the newest revision and, given an owner, claim the database
        for it (DatabaseInUse if another data dir has). The first use of the database at
        start-up: on a full disk it may take the reserve's room."""

        def create() -> None:
            upgrade(self.engine, None if owner is None else lambda conn: claim(conn, owner))

        self.with_room(create)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def with_room(self, work: Callable[[], T]) -> T:
        """Run work (a delete, or a change that leads to one); if the disk is full, give the
        reserve's room back and run it once more."""
        try:
            return work()
        except StorageFull:
            if self._reserve is None or not self._reserve.release():
                raise
        return work()

    def revision(self) -> str | None:
        """The schema revision the database is at (None before the migrations)."""
        return current(self.engine)

    def schema_differences(self) -> list[str]:
        """How the schema differs from the tables' description (empty when it matches)."""
        return differences(self.engine)

    def execute(self, sql: str, **params: object) -> list[tuple[Any, ...]]:
        """Run one SQL statement (with :named parameters) and commit; the rows it returns.
        For tools and tests that reach into a server's database from outside it."""
        with self.engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()

    def _full_disk(self, context: ExceptionContext) -> None:
        """Raise StorageFull in place of SQLite's errors that mean the disk has no room."""
        exc = context.original_exception
        if not isinstance(exc, sqlite3.Error):
            return
        primary = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if primary == SQLITE_FULL or (primary == SQLITE_IOERR and self._low_disk()):
            raise StorageFull(f"the database's disk is full ({exc})") from exc

    def _low_disk(self) -> bool:
        if self._dir is None:
            return False
        try:
            return shutil.disk_usage(self._dir).free < LOW_DISK
        except OSError:
            return False


class _Stored(Protocol):
    _db: Database


S = TypeVar("S", bound=_Stored)


def frees_space(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """Mark a repository's write that frees space or leads to freeing it (a delete, a
    container's status on its way out): it still succeeds on a full disk (Database.with_room)."""

    @functools.wraps(method)
    def run(store: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return store._db.with_room(lambda: method(store, *args, **kwargs))

    return run


def driver_url(url: str) -> str:
    """The URL with its driver: a plain postgresql:// (or postgres://) URL means psycopg 3."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url.removeprefix(plain)
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
