"""The database engine: SQLite by default (WAL, busy timeout), any SQLAlchemy URL otherwise."""

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
from sqlmodel import Session, SQLModel, create_engine

from server.store import tables as _tables  # noqa: F401  (registers the tables)
from server.store.migrations import migrate
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

    def __init__(self, url: str, reserve: DiskReserve | None = None) -> None:
        connect_args: dict[str, Any] = {}
        self._dir: Path | None = None
        if url.startswith("sqlite:///"):
            self._dir = Path(url.removeprefix("sqlite:///")).parent
            self._dir.mkdir(parents=True, exist_ok=True)
            connect_args = {"check_same_thread": False, "timeout": 30}
        self.engine: Engine = create_engine(url, connect_args=connect_args)
        self._reserve = reserve
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "handle_error", self._full_disk)

    def create_tables(self) -> None:
        """Create missing tables, then add columns that older databases lack. The first use
        of the database at start-up: on a full disk it may take the reserve's room."""

        def create() -> None:
            SQLModel.metadata.create_all(self.engine)
            migrate(self.engine)

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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
