"""Every integer column 64-bit on PostgreSQL: sizes past 2 GiB (a sparse container file) and
times past 2038. SQLite's INTEGER is 64-bit already, so nothing changes there.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

COLUMNS: dict[str, tuple[str, ...]] = {
    "containers": ("created_at", "expires_after_minutes", "last_active_at", "expires_at"),
    "container_files": ("bytes", "created_at"),
    "files": ("bytes", "created_at", "expires_at"),
    "skills": ("created_at", "default_version", "next_version"),
    "skill_versions": ("version", "created_at", "bytes"),
    "responses": ("created_at",),
}


def _retype(to: sa.types.TypeEngine[int], was: sa.types.TypeEngine[int]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=to, existing_type=was)


def upgrade() -> None:
    _retype(sa.BigInteger(), sa.Integer())


def downgrade() -> None:
    _retype(sa.Integer(), sa.BigInteger())
