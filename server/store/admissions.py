"""AdmissionRepository: container admissions in flight, kept in the database so that servers
sharing a PostgreSQL database admit one at a time against the same count.

An admission is decided in one transaction under a transaction-scoped advisory lock: count the
running containers and the admissions in flight (rows of every server), check, write this one's
row, commit. The row goes when the container's record is written (under the same lock, so no
admission counts both) or when the create gives up. A row also stops counting once it expires,
so that a server that died mid-create does not hold its admissions forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlmodel import Session, col, delete, func, select

from server.store.database import Database
from server.store.tables import AdmissionRecord, ContainerRecord

LOCK_KEY = int.from_bytes(b"lbadmits", "big")
"""The advisory lock admissions take on PostgreSQL (a fixed key, apart from the migrations')."""


@dataclass(frozen=True)
class Occupancy:
    """What an admission is decided on: the running containers and the admissions in flight,
    every server's."""

    running: dict[str, int]
    """How many running containers have each memory limit ("1g": 3, ...)."""
    admitting: int
    """Admissions in flight (admitted, their containers not recorded yet)."""
    admitting_memory: int
    """Their memory limits' sum, in bytes."""


class AdmissionRepository:
    """Admissions in flight as rows of the admissions table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def shared(self) -> bool:
        """Whether admissions should go through the database: on PostgreSQL, which servers
        may share. A SQLite database has one server, which counts them in memory."""
        return self._db.dialect == "postgresql"

    def admit(
        self,
        admission_id: str,
        memory: int,
        now: int,
        expires_at: int,
        check: Callable[[Occupancy], None],
    ) -> None:
        """Decide an admission: check(occupancy) raises to refuse it; otherwise its row
        (counted until expires_at) is written. One transaction, under the admission lock."""
        with self._locked() as s:
            s.exec(delete(AdmissionRecord).where(col(AdmissionRecord.expires_at) <= now))
            check(_occupancy(s, now))
            s.add(AdmissionRecord(id=admission_id, memory_bytes=memory, expires_at=expires_at))
            s.commit()

    def recorded(self, admission_id: str, write: Callable[[], None]) -> None:
        """write() (the admitted container's record, committed on a connection of its own),
        then the admission's row deleted, both under the admission lock: an admission beside
        it counts either the row or the container, never both, never neither."""
        with self._locked() as s:
            write()
            s.exec(delete(AdmissionRecord).where(col(AdmissionRecord.id) == admission_id))
            s.commit()

    def release(self, admission_id: str) -> None:
        """Stop counting the admission (its create is over, or failed); idempotent."""
        with self._db.session() as s:
            s.exec(delete(AdmissionRecord).where(col(AdmissionRecord.id) == admission_id))
            s.commit()

    def in_flight(self, now: int) -> int:
        """How many admissions count now."""
        with self._db.session() as s:
            return _occupancy(s, now).admitting

    @contextmanager
    def _locked(self) -> Iterator[Session]:
        """A session whose transaction holds the admission lock (PostgreSQL's advisory lock,
        released when the transaction ends, however it ends)."""
        with self._db.session() as s:
            if self.shared:
                # The statements after this one see what the previous holder committed: each
                # statement of a READ COMMITTED transaction reads afresh.
                s.exec(select(func.pg_advisory_xact_lock(LOCK_KEY)))
            yield s


def _occupancy(s: Session, now: int) -> Occupancy:
    running = s.exec(
        select(ContainerRecord.memory_limit, func.count())
        .where(col(ContainerRecord.status) == "running")
        .group_by(ContainerRecord.memory_limit)
    ).all()
    count, memory = s.exec(
        select(func.count(), func.coalesce(func.sum(AdmissionRecord.memory_bytes), 0)).where(
            col(AdmissionRecord.expires_at) > now
        )
    ).one()
    return Occupancy(
        running={limit: int(n) for limit, n in running},
        admitting=int(count),
        admitting_memory=int(memory),
    )
