"""Baseline: the schema as localbox made it before its migrations (create_all, then the added
columns of server.store.migrations.LEGACY_COLUMNS).

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def schema() -> sa.MetaData:
    """The baseline tables. Frozen: later changes are later revisions. A database from before
    the migrations is completed to this (missing tables and indexes) and stamped 0001."""
    meta = sa.MetaData()
    text, integer = sa.String(), sa.Integer()
    sa.Table(
        "containers",
        meta,
        sa.Column("id", text, primary_key=True),
        sa.Column("name", text, nullable=False),
        sa.Column("created_at", integer, nullable=False),
        sa.Column("status", text, nullable=False),
        sa.Column("expires_after_minutes", integer, nullable=False),
        sa.Column("last_active_at", integer, nullable=False),
        sa.Column("expires_at", integer, nullable=False),
        sa.Column("memory_limit", text, nullable=False),
        sa.Column("network_policy_type", text, nullable=False),
        sa.Column("allowed_domains", text, nullable=False),
        sa.Index("ix_containers_name", "name"),
        sa.Index("ix_containers_created_id", "created_at", "id"),
        sa.Index("ix_containers_status_expires", "status", "expires_at"),
    )
    sa.Table(
        "container_files",
        meta,
        sa.Column("id", text, primary_key=True),
        sa.Column("container_id", text, nullable=False),
        sa.Column("path", text, nullable=False),
        sa.Column("bytes", integer, nullable=False),
        sa.Column("created_at", integer, nullable=False),
        sa.Column("source", text, nullable=False),
        sa.Column("mtime", sa.Float(), nullable=False),
        sa.Index("ix_container_files_page", "container_id", "created_at", "id"),
        sa.Index("ix_container_files_path", "container_id", "path", unique=True),
    )
    sa.Table(
        "files",
        meta,
        sa.Column("id", text, primary_key=True),
        sa.Column("filename", text, nullable=False),
        sa.Column("bytes", integer, nullable=False),
        sa.Column("created_at", integer, nullable=False),
        sa.Column("purpose", text, nullable=False),
        sa.Column("status", text, nullable=False),
        sa.Column("expires_at", integer, nullable=True),
        sa.Index("ix_files_page", "created_at", "id"),
        sa.Index("ix_files_purpose", "purpose"),
        sa.Index("ix_files_expires_at", "expires_at"),
    )
    sa.Table(
        "skills",
        meta,
        sa.Column("id", text, primary_key=True),
        sa.Column("created_at", integer, nullable=False),
        sa.Column("default_version", integer, nullable=False),
        sa.Column("next_version", integer, nullable=False),
        sa.Index("ix_skills_page", "created_at", "id"),
    )
    sa.Table(
        "skill_versions",
        meta,
        sa.Column("id", text, primary_key=True),
        sa.Column("skill_id", text, nullable=False),
        sa.Column("version", integer, nullable=False),
        sa.Column("created_at", integer, nullable=False),
        sa.Column("name", text, nullable=False),
        sa.Column("description", text, nullable=False),
        sa.Column("folder", text, nullable=False),
        sa.Column("bytes", integer, nullable=False),
        sa.Index("ix_skill_versions_number", "skill_id", "version", unique=True),
    )
    sa.Table(
        "responses",
        meta,
        sa.Column("id", text, primary_key=True),
        sa.Column("created_at", integer, nullable=False),
        sa.Column("status", text, nullable=False),
        sa.Column("body", text, nullable=False),
        sa.Column("input_items", text, nullable=False),
        sa.Index("ix_responses_created_at", "created_at"),
    )
    sa.Table(
        "response_items",
        meta,
        sa.Column("id", text, primary_key=True),
        sa.Column("response_id", text, nullable=False),
        sa.Index("ix_response_items_response_id", "response_id"),
    )
    return meta


def upgrade() -> None:
    schema().create_all(op.get_bind())


def downgrade() -> None:
    schema().drop_all(op.get_bind())
