"""Leases and replicas in the database: how server processes that share it take turns.

A lease is a row (key, holder, expiry). It is taken when there is none, when its holder is the
taker, or when it has expired (its holder died or stalled); renewed by its holder while it
works; released by deleting it. Times are the hosts' wall clocks in milliseconds: replicas of
one localbox share one engine, so one host (or hosts kept in time).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from server.store.database import Database
from server.store.tables import LeaseRecord, ReplicaRecord

_LEASES = LeaseRecord.__table__  # type: ignore[attr-defined]
_REPLICAS = ReplicaRecord.__table__  # type: ignore[attr-defined]


def _insert(dialect: str) -> Any:
    return pg_insert if dialect == "postgresql" else sqlite_insert


@dataclass(frozen=True)
class Taken:
    """A lease just taken; took_over when it was another holder's that had expired."""

    key: str
    took_over: bool
    previous: str | None


class LeaseRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def take(self, key: str, holder: str, now_ms: int, ttl_ms: int) -> Taken | None:
        """Take the lease, or None while another holder's is valid (or another taker got
        there first)."""
        expires = now_ms + ttl_ms
        with self._db.engine.begin() as conn:
            row = conn.execute(
                select(_LEASES.c.holder, _LEASES.c.expires_at_ms)
                .where(_LEASES.c.key == key)
                .with_for_update()
            ).first()
            if row is None:
                stmt = (
                    _insert(self._db.dialect)(_LEASES)
                    .values(key=key, holder=holder, expires_at_ms=expires)
                    .on_conflict_do_nothing(index_elements=["key"])
                    .returning(_LEASES.c.key)
                )
                return Taken(key, False, None) if conn.execute(stmt).first() else None
            previous, until = row
            if previous != holder and until >= now_ms:
                return None
            conn.execute(
                update(_LEASES)
                .where(_LEASES.c.key == key)
                .values(holder=holder, expires_at_ms=expires)
            )
            return Taken(key, previous != holder, previous)

    def renew(self, holder: str, keys: Collection[str], now_ms: int, ttl_ms: int) -> set[str]:
        """Move the expiry of the holder's leases on; returns the keys it still holds."""
        if not keys:
            return set()
        stmt = (
            update(_LEASES)
            .where(_LEASES.c.holder == holder, _LEASES.c.key.in_(bindparam("keys", expanding=True)))
            .values(expires_at_ms=now_ms + ttl_ms)
            .returning(_LEASES.c.key)
        )
        with self._db.engine.begin() as conn:
            return {r[0] for r in conn.execute(stmt, {"keys": list(keys)})}

    def release(self, key: str, holder: str) -> None:
        with self._db.engine.begin() as conn:
            conn.execute(delete(_LEASES).where(_LEASES.c.key == key, _LEASES.c.holder == holder))

    def holders(self, keys: Collection[str], now_ms: int) -> dict[str, str]:
        """The valid leases among keys, by key: their holders."""
        if not keys:
            return {}
        stmt = select(_LEASES.c.key, _LEASES.c.holder).where(
            _LEASES.c.key.in_(bindparam("keys", expanding=True)),
            _LEASES.c.expires_at_ms >= now_ms,
        )
        with self._db.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(stmt, {"keys": list(keys)})}

    # ---------------------------------------------------------------- replicas

    def heartbeat(self, replica: str, host: str, pid: int, started_at: int, now_ms: int) -> None:
        with self._db.engine.begin() as conn:
            seen = conn.execute(
                update(_REPLICAS).where(_REPLICAS.c.id == replica).values(seen_at_ms=now_ms)
            )
            if seen.rowcount == 0:
                conn.execute(
                    _REPLICAS.insert().values(
                        id=replica, host=host, pid=pid, started_at=started_at, seen_at_ms=now_ms
                    )
                )

    def replicas(self) -> list[tuple[str, str, int]]:
        """(id, host, pid) of every replica on record."""
        with self._db.engine.connect() as conn:
            rows = conn.execute(select(_REPLICAS.c.id, _REPLICAS.c.host, _REPLICAS.c.pid))
            return [(r[0], r[1], int(r[2])) for r in rows]

    def bury(self, replicas: Collection[str]) -> None:
        """Replicas known to be dead: their leases expire now (a taker is told it takes over
        from them) and their records go."""
        if not replicas:
            return
        ids = list(replicas)
        with self._db.engine.begin() as conn:
            conn.execute(update(_LEASES).where(_LEASES.c.holder.in_(ids)).values(expires_at_ms=0))
            conn.execute(delete(_REPLICAS).where(_REPLICAS.c.id.in_(ids)))

    def replicas_seen_since(self, since_ms: int) -> set[str]:
        with self._db.engine.connect() as conn:
            rows = conn.execute(select(_REPLICAS.c.id).where(_REPLICAS.c.seen_at_ms >= since_ms))
            return {r[0] for r in rows}

    def forget_replicas(self, before_ms: int) -> None:
        """Drop the records of replicas not seen since before_ms (their leases have expired)."""
        with self._db.engine.begin() as conn:
            gone = [
                r[0]
                for r in conn.execute(
                    select(_REPLICAS.c.id).where(_REPLICAS.c.seen_at_ms < before_ms)
                )
            ]
            if gone:
                conn.execute(delete(_REPLICAS).where(_REPLICAS.c.id.in_(gone)))

    def leave(self, replica: str) -> None:
        """A replica that stops: its leases and its record go at once."""
        with self._db.engine.begin() as conn:
            conn.execute(delete(_LEASES).where(_LEASES.c.holder == replica))
            conn.execute(delete(_REPLICAS).where(_REPLICAS.c.id == replica))
