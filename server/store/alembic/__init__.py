"""Alembic's migration scripts for the store (env.py and versions/), run at start-up by
server.store.migrations; no alembic.ini is needed.

A schema change is a new file in versions/ whose down_revision is the last one's: a change to
tables.py without one fails tests/store/test_migrations.py (the schema the migrations make must
be the one the tables describe).
"""
