"""SkillRepository and SkillBundleStore: skill metadata in the database, bundles on the host."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from sqlmodel import Session, col, func, select

from server.domain import Order, Page, PageQuery, Skill, SkillVersion
from server.store.database import Database, frees_space
from server.store.repository import load_page
from server.store.tables import SkillRecord, SkillVersionRecord


def _version(rec: SkillVersionRecord) -> SkillVersion:
    return SkillVersion(
        id=rec.id,
        skill_id=rec.skill_id,
        version=rec.version,
        created_at=rec.created_at,
        name=rec.name,
        description=rec.description,
        folder=rec.folder,
        bytes=rec.bytes,
    )


def _version_record(item: SkillVersion) -> SkillVersionRecord:
    return SkillVersionRecord(**vars(item))


class SkillRepository:
    """Skills and their versions. A skill always has at least one version: its default."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _skill(self, s: Session, rec: SkillRecord) -> Skill:
        default = s.exec(
            select(SkillVersionRecord).where(
                SkillVersionRecord.skill_id == rec.id,
                SkillVersionRecord.version == rec.default_version,
            )
        ).one()
        latest = s.exec(
            select(func.max(SkillVersionRecord.version)).where(
                SkillVersionRecord.skill_id == rec.id
            )
        ).one()
        return Skill(
            id=rec.id,
            created_at=rec.created_at,
            default_version=rec.default_version,
            latest_version=int(latest or rec.default_version),
            name=default.name,
            description=default.description,
        )

    def create(self, skill_id: str, created_at: int, first: SkillVersion) -> Skill:
        """Record a new skill with its first version, which is default and latest."""
        with self._db.session() as s:
            rec = SkillRecord(
                id=skill_id,
                created_at=created_at,
                default_version=first.version,
                next_version=first.version + 1,
            )
            s.add(rec)
            s.add(_version_record(first))
            s.commit()
            return self._skill(s, rec)

    def get(self, skill_id: str) -> Skill | None:
        with self._db.session() as s:
            rec = s.get(SkillRecord, skill_id)
            return self._skill(s, rec) if rec else None

    def list_page(self, query: PageQuery) -> Page[Skill]:
        with self._db.session() as s:

            def convert(rec: SkillRecord) -> Skill:
                return self._skill(s, rec)

            return load_page(self._db, SkillRecord, select(SkillRecord), query, convert)

    def add_version(
        self, skill_id: str, make: Callable[[int], SkillVersion], make_default: bool
    ) -> SkillVersion | None:
        """Number the next version, build it with make(number) and record it; None when the
        skill is gone. Callers serialise this per server (numbers come from the skill row)."""
        with self._db.session() as s:
            rec = s.get(SkillRecord, skill_id)
            if rec is None:
                return None
            version = make(rec.next_version)
            rec.next_version += 1
            if make_default:
                rec.default_version = version.version
            s.add(rec)
            s.add(_version_record(version))
            s.commit()
            return version

    def get_version(self, skill_id: str, number: int) -> SkillVersion | None:
        with self._db.session() as s:
            rec = s.exec(
                select(SkillVersionRecord).where(
                    SkillVersionRecord.skill_id == skill_id, SkillVersionRecord.version == number
                )
            ).first()
            return _version(rec) if rec else None

    def get_version_by_id(self, version_id: str) -> SkillVersion | None:
        with self._db.session() as s:
            rec = s.get(SkillVersionRecord, version_id)
            return _version(rec) if rec else None

    def list_versions(
        self, skill_id: str, *, order: Order, limit: int, after: int | None
    ) -> Page[SkillVersion]:
        """Versions by number; after is the number the previous page ended with."""
        stmt = select(SkillVersionRecord).where(SkillVersionRecord.skill_id == skill_id)
        number = col(SkillVersionRecord.version)
        if after is not None:
            stmt = stmt.where(number > after if order == "asc" else number < after)
        stmt = stmt.order_by(number.asc() if order == "asc" else number.desc()).limit(limit + 1)
        with self._db.session() as s:
            rows = list(s.exec(stmt).all())
        return Page(items=[_version(r) for r in rows[:limit]], has_more=len(rows) > limit)

    def version_count(self, skill_id: str) -> int:
        with self._db.session() as s:
            return int(
                s.exec(select(func.count()).where(SkillVersionRecord.skill_id == skill_id)).one()
            )

    def set_default(self, skill_id: str, number: int) -> None:
        with self._db.session() as s:
            rec = s.get(SkillRecord, skill_id)
            if rec is not None:
                rec.default_version = number
                s.add(rec)
                s.commit()

    @frees_space
    def delete_version(self, skill_id: str, number: int) -> bool:
        with self._db.session() as s:
            rec = s.exec(
                select(SkillVersionRecord).where(
                    SkillVersionRecord.skill_id == skill_id, SkillVersionRecord.version == number
                )
            ).first()
            if rec is None:
                return False
            s.delete(rec)
            s.commit()
            return True

    @frees_space
    def delete(self, skill_id: str) -> bool:
        """Remove the skill and every version of it."""
        with self._db.session() as s:
            rec = s.get(SkillRecord, skill_id)
            if rec is None:
                return False
            for version in s.exec(
                select(SkillVersionRecord).where(SkillVersionRecord.skill_id == skill_id)
            ).all():
                s.delete(version)
            s.delete(rec)
            s.commit()
            return True


class SkillBundleStore:
    """Normalised skill zips, one per version: <root>/<skill_id>/<version>.zip."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._incoming = root / ".incoming"
        self._incoming.mkdir(exist_ok=True)

    def scratch(self) -> Path:
        """A new empty file on the store's disk, for a bundle being written; the caller
        keeps it with keep() or removes it."""
        fd, name = tempfile.mkstemp(suffix=".zip", dir=self._incoming)
        os.close(fd)
        return Path(name)

    def path(self, skill_id: str, version: int) -> Path:
        return self.root / skill_id / f"{version}.zip"

    def remove_scratch(self) -> int:
        """Remove every scratch file (bundles a killed server was writing); call it only
        while no bundle is being written, at start-up. Returns how many went."""
        removed = 0
        for entry in self._incoming.iterdir():
            entry.unlink(missing_ok=True)
            removed += 1
        return removed

    def keep(self, scratch: Path, skill_id: str, version: int) -> None:
        """Move a written bundle into place (atomically)."""
        target = self.path(skill_id, version)
        target.parent.mkdir(exist_ok=True)
        os.replace(scratch, target)

    def remove(self, skill_id: str, version: int) -> None:
        self.path(skill_id, version).unlink(missing_ok=True)

    def remove_skill(self, skill_id: str) -> None:
        shutil.rmtree(self.root / skill_id, ignore_errors=True)
