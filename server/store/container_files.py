"""ContainerFileRepository: container-file metadata; the bytes live in the sandbox."""

from __future__ import annotations

from sqlalchemy import Table, bindparam, insert, update
from sqlmodel import col, delete, select

from server.domain import ContainerFile, Page, PageQuery
from server.store.database import Database, frees_space
from server.store.repository import load_page
from server.store.tables import ContainerFileRecord

TABLE: Table = ContainerFileRecord.__table__  # type: ignore[attr-defined]
CHUNK = 500  # ids per DELETE ... IN (...), well under any engine's parameter limit


def _to_domain(rec: ContainerFileRecord) -> ContainerFile:
    return ContainerFile(
        id=rec.id,
        container_id=rec.container_id,
        path=rec.path,
        bytes=rec.bytes,
        created_at=rec.created_at,
        source=rec.source,  # type: ignore[arg-type]
        mtime=rec.mtime,
    )


class ContainerFileRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, container_id: str, file_id: str) -> ContainerFile | None:
        with self._db.session() as s:
            rec = s.get(ContainerFileRecord, file_id)
            if rec is None or rec.container_id != container_id:
                return None
            return _to_domain(rec)

    def put(self, file: ContainerFile) -> None:
        """Record a file, replacing any record for the same path in the same container."""
        with self._db.session() as s:
            s.exec(
                delete(ContainerFileRecord).where(
                    col(ContainerFileRecord.container_id) == file.container_id,
                    col(ContainerFileRecord.path) == file.path,
                )
            )
            s.add(ContainerFileRecord(**vars(file)))
            s.commit()

    @frees_space
    def delete(self, file_id: str) -> None:
        with self._db.session() as s:
            s.exec(delete(ContainerFileRecord).where(col(ContainerFileRecord.id) == file_id))
            s.commit()

    @frees_space
    def delete_all(self, container_id: str) -> None:
        with self._db.session() as s:
            s.exec(
                delete(ContainerFileRecord).where(
                    col(ContainerFileRecord.container_id) == container_id
                )
            )
            s.commit()

    def all_for(self, container_id: str) -> dict[str, ContainerFile]:
        """Every record of the container's files, by path: read as plain rows (no ORM
        objects), since a sandbox may hold tens of thousands of files."""
        stmt = TABLE.select().where(TABLE.c.container_id == container_id)
        with self._db.session() as s:
            rows = s.connection().execute(stmt).all()
        return {
            r.path: ContainerFile(
                id=r.id,
                container_id=r.container_id,
                path=r.path,
                bytes=r.bytes,
                created_at=r.created_at,
                source=r.source,
                mtime=r.mtime,
            )
            for r in rows
        }

    def apply(
        self, added: list[ContainerFile], changed: list[ContainerFile], removed: list[str]
    ) -> None:
        """Apply the differences found between the sandbox and the records in one
        transaction, each kind as one batched statement."""
        with self._db.session() as s:
            conn = s.connection()
            for start in range(0, len(removed), CHUNK):
                conn.execute(TABLE.delete().where(TABLE.c.id.in_(removed[start : start + CHUNK])))
            if changed:
                conn.execute(
                    update(TABLE)
                    .where(TABLE.c.id == bindparam("file_id"))
                    .values(bytes=bindparam("new_bytes"), mtime=bindparam("new_mtime")),
                    [
                        {"file_id": f.id, "new_bytes": f.bytes, "new_mtime": f.mtime}
                        for f in changed
                    ],
                )
            if added:
                conn.execute(insert(TABLE), [vars(f) for f in added])
            s.commit()

    def list_page(self, container_id: str, query: PageQuery) -> Page[ContainerFile]:
        stmt = select(ContainerFileRecord).where(
            col(ContainerFileRecord.container_id) == container_id
        )
        return load_page(self._db, ContainerFileRecord, stmt, query, _to_domain)
