"""Start-up migrations: columns added after a table was first created, added in place.

create_all makes missing tables but never alters existing ones, so a database made by an
older localbox would lack newer columns. Each entry here is idempotent: it looks first.
"""

from __future__ import annotations

import logging

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

log = logging.getLogger("localbox.store")

# (table, column, SQL type, index name or None), in the order they were introduced.
ADDED_COLUMNS: tuple[tuple[str, str, str, str | None], ...] = (
    ("files", "expires_at", "INTEGER", "ix_files_expires_at"),
)


def migrate(engine: Engine) -> None:
    """Add any column in ADDED_COLUMNS its table lacks (and the column's index)."""
    for table, column, sql_type, index in ADDED_COLUMNS:
        inspector = inspect(engine)
        if not inspector.has_table(table):
            continue
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            log.info("adding column %s.%s", table, column)
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
        if index is not None and index not in {
            i["name"] for i in inspect(engine).get_indexes(table)
        }:
            with engine.begin() as conn:
                conn.execute(text(f"CREATE INDEX IF NOT EXISTS {index} ON {table} ({column})"))
