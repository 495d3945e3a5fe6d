"""Repository: what every table's repository does alike (add, get, delete, a page)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from sqlmodel import SQLModel
from sqlmodel.sql.expression import SelectOfScalar

from server.domain import Page, PageQuery
from server.store.database import Database, frees_space
from server.store.paging import cut, paged

R = TypeVar("R", bound=SQLModel)
D = TypeVar("D")


class Repository(Generic[R, D]):
    """Maps one table (records R) to domain objects D; subclasses say how."""

    record: ClassVar[type[Any]]

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def database(self) -> Database:
        """The database this repository keeps its table in."""
        return self._db

    def to_domain(self, rec: R) -> D:
        raise NotImplementedError

    def to_record(self, item: D) -> R:
        raise NotImplementedError

    def add(self, item: D) -> None:
        with self._db.session() as s:
            s.add(self.to_record(item))
            s.commit()

    def get(self, item_id: str) -> D | None:
        with self._db.session() as s:
            rec = s.get(self.record, item_id)
            return self.to_domain(rec) if rec else None

    @frees_space
    def delete(self, item_id: str) -> bool:
        with self._db.session() as s:
            rec = s.get(self.record, item_id)
            if rec is None:
                return False
            s.delete(rec)
            s.commit()
            return True

    def _page(self, stmt: SelectOfScalar[R], query: PageQuery) -> Page[D]:
        return load_page(self._db, self.record, stmt, query, self.to_domain)


def load_page(
    db: Database,
    record: type[Any],
    stmt: SelectOfScalar[R],
    query: PageQuery,
    convert: Callable[[R], D],
) -> Page[D]:
    """One page of stmt's rows, ordered by (created_at, id) as query asks."""
    stmt, reverse = paged(stmt, record.created_at, record.id, query)
    with db.session() as s:
        rows = list(s.exec(stmt).all())
    rows, has_more = cut(rows, query, reverse)
    return Page(items=[convert(r) for r in rows], has_more=has_more)
