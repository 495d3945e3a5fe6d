"""The deployment table: which data directory (and so which sandboxes) the database belongs to.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("instance_id", sa.String(), nullable=False),
        sa.Column("data_dir", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column(
            "created_at", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
    )


def downgrade() -> None:
    op.drop_table("deployment")
