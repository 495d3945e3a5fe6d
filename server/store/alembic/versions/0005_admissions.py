"""The admissions table: container admissions in flight, counted by every server sharing the
database.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "admissions",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("memory_bytes", BIG, nullable=False),
        sa.Column("expires_at", BIG, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("admissions")
