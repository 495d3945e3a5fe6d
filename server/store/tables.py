"""SQLModel table definitions (*Record)."""

from __future__ import annotations

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class ContainerRecord(SQLModel, table=True):
    __tablename__ = "containers"
    __table_args__ = (
        Index("ix_containers_created_id", "created_at", "id"),
        Index("ix_containers_status_expires", "status", "expires_at"),
    )

    id: str = Field(primary_key=True)
    name: str = Field(index=True)
    created_at: int
    status: str
    expires_after_minutes: int
    last_active_at: int
    expires_at: int
    memory_limit: str
    network_policy_type: str = "disabled"
    allowed_domains: str = ""
