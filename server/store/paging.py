"""Keyset pagination over (created_at, id), shared by every listing."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import and_, or_
from sqlmodel import col
from sqlmodel.sql.expression import SelectOfScalar

from server.domain import Cursor, PageQuery

R = TypeVar("R")


def _beyond(created_at: Any, id_: Any, cursor: Cursor, greater: bool) -> Any:
    if greater:
        return or_(
            created_at > cursor.created_at,
            and_(created_at == cursor.created_at, id_ > cursor.id),
        )
    return or_(
        created_at < cursor.created_at,
        and_(created_at == cursor.created_at, id_ < cursor.id),
    )


def paged(
    stmt: SelectOfScalar[R], created_at: Any, id_: Any, query: PageQuery
) -> tuple[SelectOfScalar[R], bool]:
    """Apply cursors, order and limit+1; returns the statement and whether rows come reversed."""
    asc = query.order == "asc"
    if query.after is not None:
        stmt = stmt.where(_beyond(created_at, id_, query.after, greater=asc))
    if query.before is not None:
        stmt = stmt.where(_beyond(created_at, id_, query.before, greater=not asc))
    reverse = query.before is not None and query.after is None
    walk_asc = asc != reverse
    if walk_asc:
        stmt = stmt.order_by(col(created_at).asc(), col(id_).asc())
    else:
        stmt = stmt.order_by(col(created_at).desc(), col(id_).desc())
    return stmt.limit(query.limit + 1), reverse


def cut(rows: list[R], query: PageQuery, reverse: bool) -> tuple[list[R], bool]:
    has_more = len(rows) > query.limit
    rows = rows[: query.limit]
    if reverse:
        rows.reverse()
    return rows, has_more
