"""Replicas and leases: several servers on one database share the work.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", BIG, nullable=False),
        sa.Column("started_at", BIG, nullable=False),
        sa.Column("seen_at_ms", BIG, nullable=False),
    )
    op.create_index("ix_replicas_seen_at_ms", "replicas", ["seen_at_ms"])
    op.create_table(
        "leases",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("expires_at_ms", BIG, nullable=False),
    )
    op.create_index("ix_leases_holder", "leases", ["holder"])


def downgrade() -> None:
    op.drop_index("ix_leases_holder", table_name="leases")
    op.drop_table("leases")
    op.drop_index("ix_replicas_seen_at_ms", table_name="replicas")
    op.drop_table("replicas")
