"""Alembic's environment: migrate on the connection server.store.migrations hands over (it holds
the start-up lock), never on a URL of its own."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from server.store import tables as _tables  # noqa: F401  (registers the tables)


def run() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("the store's migrations run from server.store.migrations only")
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        # SQLite alters a table by copying it (batch mode); PostgreSQL alters in place.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run()
