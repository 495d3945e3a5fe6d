"""SkillRepository and SkillBundleStore: skill metadata in the database, bundles on the host."""

from __future__ import annotations

import enum
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import ColumnElement, and_, case
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select, update

from server.domain import Order, Page, PageQuery, Skill, SkillVersion
from server.store.database import Database, frees_space
from server.store.repository import load_page
from server.store.tables import SkillRecord, SkillVersionRecord

NUMBER_ATTEMPTS = 5
"""How many times a new version is numbered before giving up: the unique index refuses a
number taken meanwhile (rows written by hand, say), and the next try starts past it."""


class VersionRemoval(enum.Enum):
    """What delete_version did."""

    VERSION = "version"
    """The version went."""
    SKILL = "skill"
    """It was the last version (the default): the skill went with it."""
    DEFAULT = "default"
    """Nothing: it is the default and other versions remain."""
    MISSING = "missing"
    """Nothing: no such version (or skill)."""


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


def _past_every_version(skill_id: str) -> ColumnElement[int]:
    """The skill's next_version, or the number after its highest version if that is higher
    (rows written by hand or by an older server): a number no version of it has."""
    highest = (
        select(func.coalesce(func.max(SkillVersionRecord.version), 0) + 1)
        .where(col(SkillVersionRecord.skill_id) == skill_id)
        .scalar_subquery()
    )
    current = col(SkillRecord.next_version)
    return case((current >= highest, current), else_=highest)


class SkillRepository:
    """Skills and their versions. A skill always has at least one version: its default."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _skill(self, s: Session, skill_id: str) -> Skill | None:
        """The skill with its default version's name and its latest number, read in one
        statement (one snapshot: on PostgreSQL a later statement may see another server's
        change of default, or delete, that an earlier one did not); None when it is gone."""
        latest = (
            select(func.max(SkillVersionRecord.version))
            .where(col(SkillVersionRecord.skill_id) == skill_id)
            .scalar_subquery()
        )
        row = s.exec(
            select(SkillRecord, SkillVersionRecord, latest)
            .join(
                SkillVersionRecord,
                and_(
                    col(SkillVersionRecord.skill_id) == col(SkillRecord.id),
                    col(SkillVersionRecord.version) == col(SkillRecord.default_version),
                ),
            )
            .where(col(SkillRecord.id) == skill_id)
        ).first()
        if row is None:
            return None
        rec, default, highest = row
        return Skill(
            id=rec.id,
            created_at=rec.created_at,
            default_version=rec.default_version,
            latest_version=int(highest or rec.default_version),
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
            skill = self._skill(s, skill_id)
            assert skill is not None  # its id is known to no one else yet
            return skill

    def get(self, skill_id: str) -> Skill | None:
        with self._db.session() as s:
            return self._skill(s, skill_id)

    def list_page(self, query: PageQuery) -> Page[Skill]:
        """A page of skills; one deleted while the page is read is left out."""
        with self._db.session() as s:

            def convert(rec: SkillRecord) -> Skill | None:
                return self._skill(s, rec.id)

            page = load_page(self._db, SkillRecord, select(SkillRecord), query, convert)
            return Page(items=[k for k in page.items if k is not None], has_more=page.has_more)

    def add_version(
        self, skill_id: str, make: Callable[[int], SkillVersion], make_default: bool
    ) -> SkillVersion | None:
        """Number the next version, build it with make(number) and record it; None when the
        skill is gone.

        The number comes from the database, so servers sharing it never hand one out twice:
        the skill's next_version is taken and advanced in one UPDATE, whose row lock holds
        back every other numbering (and default change, and delete) of the skill until this
        one commits. Should the number be taken anyway (the unique index on skill and number
        refuses it), the next try starts past the highest number recorded."""
        for _ in range(NUMBER_ATTEMPTS):
            with self._db.session() as s:
                taken = s.exec(
                    update(SkillRecord)
                    .where(col(SkillRecord.id) == skill_id)
                    .values(next_version=_past_every_version(skill_id) + 1)
                    .returning(col(SkillRecord.next_version))
                ).scalar_one_or_none()
                if taken is None:
                    return None
                version = make(int(taken) - 1)
                try:
                    s.add(_version_record(version))
                    if make_default:
                        s.exec(
                            update(SkillRecord)
                            .where(col(SkillRecord.id) == skill_id)
                            .values(default_version=version.version)
                        )
                    s.commit()
                except IntegrityError:
                    s.rollback()
                    continue
                return version
        raise RuntimeError(f"no free version number for skill {skill_id}")

    def get_version(self, skill_id: str, number: int) -> SkillVersion | None:
        with self._db.session() as s:
            rec = _version_row(s, skill_id, number)
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

    def set_default(self, skill_id: str, number: int) -> bool:
        """Point the skill's default at version number; False when that version (or the
        skill) is gone. Checked under the skill row's lock, which a delete of the version on
        another server takes too."""
        with self._db.session() as s:
            rec = s.get(SkillRecord, skill_id, with_for_update=True)
            if rec is None or _version_row(s, skill_id, number) is None:
                return False
            rec.default_version = number
            s.add(rec)
            s.commit()
            return True

    @frees_space
    def delete_version(self, skill_id: str, number: int) -> VersionRemoval:
        """Delete a version that is not the default; the default goes only when it is the
        last version, and the skill goes with it. Decided under the skill row's lock, so a
        default set or a version added meanwhile by another server is seen."""
        with self._db.session() as s:
            rec = s.get(SkillRecord, skill_id, with_for_update=True)
            version = None if rec is None else _version_row(s, skill_id, number)
            if rec is None or version is None:
                return VersionRemoval.MISSING
            if number != rec.default_version:
                s.delete(version)
                s.commit()
                return VersionRemoval.VERSION
            others = s.exec(
                select(func.count()).where(
                    SkillVersionRecord.skill_id == skill_id, SkillVersionRecord.version != number
                )
            ).one()
            if others:
                return VersionRemoval.DEFAULT
            s.delete(version)
            s.delete(rec)
            s.commit()
            return VersionRemoval.SKILL

    @frees_space
    def delete(self, skill_id: str) -> bool:
        """Remove the skill and every version of it (versions being added meanwhile wait
        for the skill row's lock, then find the skill gone)."""
        with self._db.session() as s:
            rec = s.get(SkillRecord, skill_id, with_for_update=True)
            if rec is None:
                return False
            for version in s.exec(
                select(SkillVersionRecord).where(SkillVersionRecord.skill_id == skill_id)
            ).all():
                s.delete(version)
            s.delete(rec)
            s.commit()
            return True


def _version_row(s: Session, skill_id: str, number: int) -> SkillVersionRecord | None:
    return s.exec(
        select(SkillVersionRecord).where(
            SkillVersionRecord.skill_id == skill_id, SkillVersionRecord.version == number
        )
    ).first()


class SkillBundleStore:
    """Normalised skill zips, one per version: <root>/<skill_id>/<version_id>.zip.

    Named by the version's id, not its number: the number is given by the database only as
    the version is recorded, after its bundle is in place, and an id is never another
    server's. Bundles a server from before this naming wrote are <version number>.zip and
    are found by that name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._incoming = root / ".incoming"
        self._incoming.mkdir(exist_ok=True)

    @contextmanager
    def scratch(self) -> Iterator[Path]:
        """A new empty file on the store's disk for a bundle being written; removed at the
        end unless keep() moved it into place. Locked while in use, so that another server
        on this data dir that starts meanwhile (remove_scratch) leaves it alone."""
        fd, name = tempfile.mkstemp(suffix=".zip", dir=self._incoming)
        path = Path(name)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield path
        finally:
            path.unlink(missing_ok=True)
            os.close(fd)

    def path(self, version: SkillVersion) -> Path:
        """Where the version's bundle is."""
        by_id = self._by_id(version.skill_id, version.id)
        if by_id.exists():
            return by_id
        legacy = self._by_number(version.skill_id, version.version)
        return legacy if legacy.exists() else by_id

    def remove_scratch(self) -> int:
        """Remove the scratch files no server is writing (bundles a killed server was
        writing); those in use by a running server are locked and stay. Returns how many
        went."""
        removed = 0
        for entry in self._incoming.iterdir():
            try:
                fd = os.open(entry, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being written
            else:
                entry.unlink(missing_ok=True)
                removed += 1
            finally:
                os.close(fd)
        return removed

    def keep(self, scratch: Path, skill_id: str, version_id: str) -> None:
        """Move a written bundle into place (atomically), named by its version's id."""
        target = self._by_id(skill_id, version_id)
        for attempt in range(2):
            target.parent.mkdir(exist_ok=True)
            try:
                os.replace(scratch, target)
                return
            except FileNotFoundError:
                # The skill's folder went with a delete of the skill meanwhile; the
                # version will find the skill gone when it is recorded.
                if attempt or not scratch.exists():
                    raise

    def discard(self, skill_id: str, version_id: str) -> None:
        """Remove a bundle kept for a version that was not recorded."""
        self._by_id(skill_id, version_id).unlink(missing_ok=True)

    def remove(self, version: SkillVersion) -> None:
        self.discard(version.skill_id, version.id)
        self._by_number(version.skill_id, version.version).unlink(missing_ok=True)

    def remove_skill(self, skill_id: str) -> None:
        shutil.rmtree(self.root / skill_id, ignore_errors=True)

    def _by_id(self, skill_id: str, version_id: str) -> Path:
        return self.root / skill_id / f"{version_id}.zip"

    def _by_number(self, skill_id: str, number: int) -> Path:
        return self.root / skill_id / f"{number}.zip"
