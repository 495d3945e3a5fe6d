"""ContainerRepository: containers in and out of the database as domain objects."""

from __future__ import annotations

from sqlmodel import col, func, select, update

from server.domain import Container, Page, PageQuery
from server.store.database import frees_space
from server.store.repository import Repository
from server.store.tables import ContainerRecord


def _container(rec: ContainerRecord) -> Container:
    return Container(
        id=rec.id,
        name=rec.name,
        created_at=rec.created_at,
        status=rec.status,  # type: ignore[arg-type]
        expires_after_minutes=rec.expires_after_minutes,
        last_active_at=rec.last_active_at,
        memory_limit=rec.memory_limit,
        network_policy_type=rec.network_policy_type,
        allowed_domains=[d for d in rec.allowed_domains.split("\n") if d],
    )


def _container_record(c: Container) -> ContainerRecord:
    return ContainerRecord(
        id=c.id,
        name=c.name,
        created_at=c.created_at,
        status=c.status,
        expires_after_minutes=c.expires_after_minutes,
        last_active_at=c.last_active_at,
        expires_at=c.expires_at,
        memory_limit=c.memory_limit,
        network_policy_type=c.network_policy_type,
        allowed_domains="\n".join(c.allowed_domains),
    )


DELETING = "deleting"
"""The status of a container whose delete has begun: it is gone for the API, and reconcile
finishes the delete (sandbox, volumes, record) if it was cut short."""


class ContainerRepository(Repository[ContainerRecord, Container]):
    record = ContainerRecord

    def to_domain(self, rec: ContainerRecord) -> Container:
        return _container(rec)

    def to_record(self, item: Container) -> ContainerRecord:
        return _container_record(item)

    def touch(
        self, container_id: str, now: int, *, past_deadline: bool = False
    ) -> Container | None:
        """Set last_active_at (and so the deadline) of a running container before its
        deadline, and return it; None for an unknown container or one being deleted. A
        container past its deadline is left as it is (it has expired, whether or not the sweep
        has marked it yet) unless past_deadline says it was in use all along (running code)."""
        with self._db.session() as s:
            rec = s.get(ContainerRecord, container_id)
            if rec is None or rec.status == DELETING:
                return None
            if (
                rec.status == "running"
                and rec.last_active_at < now
                and (rec.expires_at > now or past_deadline)
            ):
                rec.last_active_at = now
                rec.expires_at = now + 60 * rec.expires_after_minutes
                s.add(rec)
                s.commit()
            return _container(rec)

    @frees_space
    def mark_deleting(self, container_id: str) -> bool:
        """Record that the container is being deleted (before its sandbox is removed), so a
        delete cut short is finished at the next reconcile; False if there is no such record."""
        with self._db.session() as s:
            result = s.exec(
                update(ContainerRecord)
                .where(col(ContainerRecord.id) == container_id)
                .values(status=DELETING)
            )
            s.commit()
            return bool(result.rowcount)

    @frees_space
    def set_status(self, container_id: str, status: str) -> None:
        """Change the status; a container being deleted keeps that status."""
        with self._db.session() as s:
            rec = s.get(ContainerRecord, container_id)
            if rec is not None and rec.status != DELETING:
                rec.status = status
                s.add(rec)
                s.commit()

    def list_page(self, query: PageQuery, name: str | None = None) -> Page[Container]:
        stmt = select(ContainerRecord).where(col(ContainerRecord.status) != DELETING)
        if name is not None:
            stmt = stmt.where(ContainerRecord.name == name)
        return self._page(stmt, query)

    def due_ids(self, now: int) -> list[str]:
        """Running containers whose deadline has passed (one indexed range query)."""
        with self._db.session() as s:
            stmt = select(ContainerRecord.id).where(
                col(ContainerRecord.status) == "running", col(ContainerRecord.expires_at) <= now
            )
            return list(s.exec(stmt).all())

    @frees_space
    def expire_if_due(self, container_id: str, now: int) -> bool:
        """Mark the container expired if it is still running and past its deadline."""
        with self._db.session() as s:
            result = s.exec(
                update(ContainerRecord)
                .where(
                    col(ContainerRecord.id) == container_id,
                    col(ContainerRecord.status) == "running",
                    col(ContainerRecord.expires_at) <= now,
                )
                .values(status="expired")
            )
            s.commit()
            return bool(result.rowcount)

    def ids_with_status(self, status: str) -> list[str]:
        with self._db.session() as s:
            stmt = select(ContainerRecord.id).where(col(ContainerRecord.status) == status)
            return list(s.exec(stmt).all())

    def running_allowlisted_ids(self) -> list[str]:
        """Running containers whose sandbox reaches the outside through the egress proxy."""
        with self._db.session() as s:
            stmt = select(ContainerRecord.id).where(
                col(ContainerRecord.status) == "running",
                col(ContainerRecord.network_policy_type) == "allowlist",
            )
            return list(s.exec(stmt).all())

    def count_by_status(self) -> dict[str, int]:
        with self._db.session() as s:
            stmt = select(ContainerRecord.status, func.count()).group_by(ContainerRecord.status)
            return {status: int(n) for status, n in s.exec(stmt).all()}

    def running_memory_limits(self) -> dict[str, int]:
        """How many running containers have each memory limit ("1g": 3, ...)."""
        with self._db.session() as s:
            stmt = (
                select(ContainerRecord.memory_limit, func.count())
                .where(col(ContainerRecord.status) == "running")
                .group_by(ContainerRecord.memory_limit)
            )
            return {limit: int(n) for limit, n in s.exec(stmt).all()}
