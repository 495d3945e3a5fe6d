"""SQLModel table definitions (*Record). A change here needs a revision in alembic/versions."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer
from sqlmodel import Field, SQLModel

BIG = BigInteger().with_variant(Integer(), "sqlite")
"""Every integer column: 64-bit on PostgreSQL (sizes past 2 GiB, times past 2038); SQLite's
INTEGER is 64-bit already."""


class ContainerRecord(SQLModel, table=True):
    __tablename__ = "containers"
    __table_args__ = (
        Index("ix_containers_created_id", "created_at", "id"),
        Index("ix_containers_status_expires", "status", "expires_at"),
    )

    id: str = Field(primary_key=True)
    name: str = Field(index=True)
    created_at: int = Field(sa_type=BIG)
    status: str
    expires_after_minutes: int = Field(sa_type=BIG)
    last_active_at: int = Field(sa_type=BIG)
    expires_at: int = Field(sa_type=BIG)
    memory_limit: str
    network_policy_type: str = "disabled"
    allowed_domains: str = ""


class ContainerFileRecord(SQLModel, table=True):
    __tablename__ = "container_files"
    __table_args__ = (
        Index("ix_container_files_page", "container_id", "created_at", "id"),
        Index("ix_container_files_path", "container_id", "path", unique=True),
    )

    id: str = Field(primary_key=True)
    container_id: str
    path: str
    bytes: int = Field(sa_type=BIG)
    created_at: int = Field(sa_type=BIG)
    source: str
    mtime: float = 0.0


class FileRecord(SQLModel, table=True):
    __tablename__ = "files"
    __table_args__ = (Index("ix_files_page", "created_at", "id"),)

    id: str = Field(primary_key=True)
    filename: str
    bytes: int = Field(sa_type=BIG)
    created_at: int = Field(sa_type=BIG)
    purpose: str = Field(index=True)
    status: str = "processed"
    expires_at: int | None = Field(default=None, sa_type=BIG, index=True)


class SkillRecord(SQLModel, table=True):
    __tablename__ = "skills"
    __table_args__ = (Index("ix_skills_page", "created_at", "id"),)

    id: str = Field(primary_key=True)
    created_at: int = Field(sa_type=BIG)
    default_version: int = Field(sa_type=BIG)
    next_version: int = Field(default=2, sa_type=BIG)
    """Version numbers are never reused, even after a version is deleted."""


class SkillVersionRecord(SQLModel, table=True):
    __tablename__ = "skill_versions"
    __table_args__ = (Index("ix_skill_versions_number", "skill_id", "version", unique=True),)

    id: str = Field(primary_key=True)
    skill_id: str
    version: int = Field(sa_type=BIG)
    created_at: int = Field(sa_type=BIG)
    name: str
    description: str
    folder: str
    bytes: int = Field(sa_type=BIG)


class ResponseRecord(SQLModel, table=True):
    """A stored Responses-API response: the response object and the input items it was
    made from (the whole context: earlier responses' items, then its own input)."""

    __tablename__ = "responses"

    id: str = Field(primary_key=True)
    created_at: int = Field(sa_type=BIG, index=True)
    status: str
    body: str
    """The response object as JSON, with every output in full."""
    input_items: str
    """JSON list of the context's input items, each with an id."""


class ResponseItemRecord(SQLModel, table=True):
    """Which response holds an item, for `item_reference` inputs."""

    __tablename__ = "response_items"

    id: str = Field(primary_key=True)
    response_id: str = Field(index=True)


class DeploymentRecord(SQLModel, table=True):
    """The one localbox (its data directory) this database belongs to: one row, id 1."""

    __tablename__ = "deployment"

    id: int = Field(primary_key=True, sa_type=Integer, sa_column_kwargs={"autoincrement": False})
    instance_id: str
    data_dir: str
    host: str
    created_at: int = Field(sa_type=BIG)


class ReplicaRecord(SQLModel, table=True):
    """A server process sharing the database (and the data dir) with others: what it says of
    itself, renewed every few seconds while it lives."""

    __tablename__ = "replicas"

    id: str = Field(primary_key=True)
    host: str
    pid: int = Field(sa_type=BIG)
    started_at: int = Field(sa_type=BIG)
    seen_at_ms: int = Field(sa_type=BIG, index=True)


class LeaseRecord(SQLModel, table=True):
    """A lease on a key (a container's calls, its files, the sweeper's role) held by one
    replica until expires_at_ms unless it renews it; released by deleting the row."""

    __tablename__ = "leases"

    key: str = Field(primary_key=True)
    holder: str = Field(index=True)
    expires_at_ms: int = Field(sa_type=BIG)


class AdmissionRecord(SQLModel, table=True):
    """A container admitted and not recorded yet, counted against the limits by every server
    sharing the database until its record is written, its create fails, or expires_at."""

    __tablename__ = "admissions"

    id: str = Field(primary_key=True)
    memory_bytes: int = Field(sa_type=BIG)
    expires_at: int = Field(sa_type=BIG)
