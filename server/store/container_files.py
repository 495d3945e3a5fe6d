"""ContainerFileRepository: container-file metadata; the bytes live in the sandbox."""

from __future__ import annotations

from sqlmodel import col, delete, select

from server.domain import ContainerFile, Page, PageQuery
from server.store.database import Database
from server.store.repository import load_page
from server.store.tables import ContainerFileRecord


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

    def delete(self, file_id: str) -> None:
        with self._db.session() as s:
            s.exec(delete(ContainerFileRecord).where(col(ContainerFileRecord.id) == file_id))
            s.commit()

    def delete_all(self, container_id: str) -> None:
        with self._db.session() as s:
            s.exec(
                delete(ContainerFileRecord).where(
                    col(ContainerFileRecord.container_id) == container_id
                )
            )
            s.commit()

    def all_for(self, container_id: str) -> list[ContainerFile]:
        with self._db.session() as s:
            stmt = select(ContainerFileRecord).where(
                col(ContainerFileRecord.container_id) == container_id
            )
            return [_to_domain(r) for r in s.exec(stmt).all()]

    def apply(
        self, added: list[ContainerFile], changed: list[ContainerFile], removed: list[str]
    ) -> None:
        """Apply the differences found between the sandbox and the records in one transaction."""
        with self._db.session() as s:
            if removed:
                s.exec(delete(ContainerFileRecord).where(col(ContainerFileRecord.id).in_(removed)))
            for f in changed:
                rec = s.get(ContainerFileRecord, f.id)
                if rec is not None:
                    rec.bytes, rec.mtime = f.bytes, f.mtime
                    s.add(rec)
            for f in added:
                s.add(ContainerFileRecord(**vars(f)))
            s.commit()

    def list_page(self, container_id: str, query: PageQuery) -> Page[ContainerFile]:
        stmt = select(ContainerFileRecord).where(
            col(ContainerFileRecord.container_id) == container_id
        )
        return load_page(self._db, ContainerFileRecord, stmt, query, _to_domain)
