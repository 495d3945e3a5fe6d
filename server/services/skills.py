"""SkillService: the Skills API (versioned skill bundles kept on the host), and the skills a
new container asks for, checked and made ready to install before any sandbox exists."""

from __future__ import annotations

import base64
import binascii
import builtins
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from server.domain import Order, Page, PageQuery, Skill, SkillVersion
from server.errors import (
    DefaultSkillVersion,
    InvalidRequest,
    InvalidSkill,
    SkillNotFound,
    SkillVersionNotFound,
)
from server.ids import Clock, new_skill_id, new_skill_version_id
from server.services.skill_bundle import (
    Bundle,
    BundleLimits,
    Installed,
    Part,
    check_description,
    check_name,
    open_zip,
    read_parts,
    read_zip,
    write_zip,
)
from server.store.skills import SkillBundleStore, SkillRepository, VersionRemoval

log = logging.getLogger("localbox.skills")

LATEST = "latest"


@dataclass(frozen=True)
class SkillUpload:
    """What POST /skills and POST /skills/{id}/versions carry: one zip, or the files of a
    directory upload named by their relative paths."""

    zip: BinaryIO | None = None
    parts: list[Part] = field(default_factory=list)


@dataclass(frozen=True)
class SkillReference:
    """A container's skill by id; version None means the skill's default version."""

    skill_id: str
    version: str | None = None


@dataclass(frozen=True)
class InlineSkill:
    """A container's skill sent with the request: a base64 zip bundle."""

    name: str
    description: str
    data: str


ContainerSkill = SkillReference | InlineSkill


def parse_version(version: str, param: str) -> int | None:
    """A version number, or None for "latest"; InvalidRequest for anything else."""
    if version == LATEST:
        return None
    if not (version.isascii() and version.isdigit()) or int(version) < 1 or len(version) > 18:
        raise InvalidRequest(
            f"Invalid version {version[:40]!r}: use a positive integer or 'latest'.", param
        )
    return int(version)


class SkillService:
    def __init__(
        self,
        repo: SkillRepository,
        bundles: SkillBundleStore,
        clock: Clock,
        *,
        limits: BundleLimits,
    ) -> None:
        self._repo = repo
        self._bundles = bundles
        self._clock = clock
        self.limits = limits
        # Default pointers and deletes are checked, then written: one at a time here (across
        # servers, the repository does each under the skill row's lock).
        self._lock = threading.Lock()

    def _now(self) -> int:
        return int(self._clock())

    @contextmanager
    def _written(self, upload: SkillUpload) -> Iterator[tuple[Bundle, Path]]:
        """Check the upload and write its normalised zip to a scratch file, removed at the
        end unless it was moved into place."""
        with self._bundles.scratch() as scratch:
            if upload.zip is not None:
                with open_zip(upload.zip, self.limits) as archive:
                    bundle = read_zip(archive, self.limits)
                    write_zip(bundle, scratch)
            else:
                bundle = read_parts(upload.parts, self.limits)
                write_zip(bundle, scratch)
            yield bundle, scratch

    def create(self, upload: SkillUpload) -> Skill:
        """A new skill whose version "1" (default and latest) is the upload."""
        with self._written(upload) as (bundle, scratch):
            skill_id = new_skill_id()
            now = self._now()
            first = _version_of(bundle, skill_id, new_skill_version_id(), 1, now)
            self._bundles.keep(scratch, skill_id, first.id)
            try:
                skill = self._repo.create(skill_id, now, first)
            except Exception:
                self._bundles.remove_skill(skill_id)
                raise
        log.info("created skill %s (%s)", skill_id, bundle.name)
        return skill

    def create_version(
        self, skill_id: str, upload: SkillUpload, make_default: bool
    ) -> SkillVersion:
        """A new immutable version, numbered after every version the skill ever had.

        The database gives the number as it records the version, so servers sharing it may
        add versions of one skill at once; the bundle is in place before, under the version's
        id, which is this create's alone."""
        self.retrieve(skill_id)
        with self._written(upload) as (bundle, scratch):
            now = self._now()
            version_id = new_skill_version_id()
            self._bundles.keep(scratch, skill_id, version_id)
            try:
                version = self._repo.add_version(
                    skill_id,
                    lambda number: _version_of(bundle, skill_id, version_id, number, now),
                    make_default,
                )
            except BaseException:
                self._bundles.discard(skill_id, version_id)
                raise
        if version is None:
            self._bundles.discard(skill_id, version_id)
            raise SkillNotFound(skill_id)
        return version

    def retrieve(self, skill_id: str) -> Skill:
        skill = self._repo.get(skill_id)
        if skill is None:
            raise SkillNotFound(skill_id)
        return skill

    def list(self, *, order: Order, limit: int, after: str | None) -> Page[Skill]:
        cursor = None
        if after is not None:
            anchor = self._repo.get(after)
            if anchor is None:
                raise InvalidRequest(f"No skill found with id '{after}' for 'after'.", "after")
            cursor = anchor.cursor
        return self._repo.list_page(PageQuery(order=order, limit=limit, after=cursor))

    def set_default(self, skill_id: str, version: str) -> Skill:
        """Point the skill's default at another existing version."""
        with self._lock:
            found = self._version(skill_id, version, "default_version")
            if not self._repo.set_default(skill_id, found.version):
                raise SkillVersionNotFound(skill_id, version, "default_version")
            return self.retrieve(skill_id)

    def delete(self, skill_id: str) -> None:
        """Delete the skill, its versions and their bundles; containers keep their copies."""
        with self._lock:
            if not self._repo.delete(skill_id):
                raise SkillNotFound(skill_id)
            self._bundles.remove_skill(skill_id)
        log.info("deleted skill %s", skill_id)

    def _version(self, skill_id: str, version: str, param: str) -> SkillVersion:
        skill = self.retrieve(skill_id)
        number = parse_version(version, param)
        found = self._repo.get_version(skill_id, skill.latest_version if number is None else number)
        if found is None:
            raise SkillVersionNotFound(skill_id, version, param)
        return found

    def retrieve_version(self, skill_id: str, version: str) -> SkillVersion:
        return self._version(skill_id, version, "version")

    def list_versions(
        self, skill_id: str, *, order: Order, limit: int, after: str | None
    ) -> Page[SkillVersion]:
        """Versions by number; after is a version id (or a version number)."""
        self.retrieve(skill_id)
        number = None
        if after is not None:
            anchor = (
                self._repo.get_version(skill_id, int(after))
                if after.isascii() and after.isdigit() and len(after) <= 18
                else self._repo.get_version_by_id(after)
            )
            if anchor is None or anchor.skill_id != skill_id:
                raise InvalidRequest(
                    f"No version of skill '{skill_id}' found with id '{after}' for 'after'.",
                    "after",
                )
            number = anchor.version
        return self._repo.list_versions(skill_id, order=order, limit=limit, after=number)

    def delete_version(self, skill_id: str, version: str) -> SkillVersion:
        """Delete a version that is not the default. The default can go only when it is the
        last version, and then the skill goes with it."""
        with self._lock:
            found = self._version(skill_id, version, "version")
            removal = self._repo.delete_version(skill_id, found.version)
            if removal is VersionRemoval.DEFAULT:
                raise DefaultSkillVersion(skill_id, str(found.version))
            if removal is VersionRemoval.MISSING:
                raise SkillVersionNotFound(skill_id, version, "version")
            if removal is VersionRemoval.SKILL:
                self._bundles.remove_skill(skill_id)
                log.info("deleted skill %s with its last version", skill_id)
                return found
            self._bundles.remove(found)
        return found

    def content(self, skill_id: str, version: str | None = None) -> tuple[SkillVersion, Path]:
        """A version's zip (the default version when version is None)."""
        if version is None:
            version = str(self.retrieve(skill_id).default_version)
        found = self._version(skill_id, version, "version")
        return found, self._bundles.path(found)

    @contextmanager
    def prepared(self, skills: Sequence[ContainerSkill]) -> Iterator[builtins.list[Installed]]:
        """Resolve and check a new container's skills: 404 for an unknown skill or version,
        400 for a bad inline bundle or two skills of one name. Yields them ready to install,
        their bundles open until the block ends."""
        with ExitStack() as stack:
            ready: builtins.list[Installed] = []
            for i, skill in enumerate(skills):
                param = f"skills.{i}"
                if isinstance(skill, SkillReference):
                    item = self._referenced(stack, skill, param)
                else:
                    item = self._inline(stack, skill, param)
                if any(r.name == item.name for r in ready):
                    raise InvalidRequest(
                        f"Two skills are named '{item.name}'; each skill of a container needs a "
                        "name of its own (it is its folder under /mnt/skills).",
                        param,
                    )
                ready.append(item)
            yield ready

    def _referenced(self, stack: ExitStack, ref: SkillReference, param: str) -> Installed:
        skill = self._repo.get(ref.skill_id)
        if skill is None:
            raise SkillNotFound(ref.skill_id, f"{param}.skill_id")
        version = ref.version if ref.version is not None else str(skill.default_version)
        found = self._version(ref.skill_id, version, f"{param}.version")
        file = stack.enter_context(self._bundles.path(found).open("rb"))
        archive = stack.enter_context(open_zip(file, self.limits))
        bundle = read_zip(archive, self.limits)
        return Installed(found.name, found.description, bundle)

    def _inline(self, stack: ExitStack, skill: InlineSkill, param: str) -> Installed:
        name = check_name(skill.name, f"{param}.name", f"{param}.name")
        description = check_description(
            skill.description, f"{param}.description", f"{param}.description"
        )
        try:
            data = base64.b64decode("".join(skill.data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidSkill(
                f"{param}.source.data is not valid base64.", f"{param}.source.data"
            ) from None
        # Checked and normalised like an upload, so the sandbox is made only for a good one.
        scratch = stack.enter_context(self._bundles.scratch())
        try:
            with open_zip(data, self.limits) as archive:
                write_zip(read_zip(archive, self.limits), scratch)
        except InvalidSkill as exc:
            raise type(exc)(f"Inline skill '{name}': {exc.message}", param) from None
        archive = stack.enter_context(
            open_zip(stack.enter_context(scratch.open("rb")), self.limits)
        )
        return Installed(name, description, read_zip(archive, self.limits))


def _version_of(
    bundle: Bundle, skill_id: str, version_id: str, number: int, now: int
) -> SkillVersion:
    return SkillVersion(
        id=version_id,
        skill_id=skill_id,
        version=number,
        created_at=now,
        name=bundle.name,
        description=bundle.description,
        folder=bundle.folder,
        bytes=bundle.bytes,
    )
