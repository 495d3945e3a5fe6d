"""Domain objects shared by the store, the services and the API layer."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

ContainerStatus = Literal["running", "expired", "deleting", "deleted"]
Order = Literal["asc", "desc"]

MEMORY_LIMITS: dict[str, int] = {
    "1g": 1 << 30,
    "4g": 4 << 30,
    "16g": 16 << 30,
    "64g": 64 << 30,
}


@dataclass(frozen=True)
class Cursor:
    """A position in a listing: (created_at, id), the sort key with ties broken by id."""

    created_at: int
    id: str


class Listed:
    """Anything listed in pages: ordered by created_at, ties broken by id."""

    id: str
    created_at: int

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.created_at, self.id)


@dataclass
class Container(Listed):
    id: str
    name: str
    created_at: int
    status: ContainerStatus
    expires_after_minutes: int
    last_active_at: int
    memory_limit: str
    network_policy_type: str = "disabled"
    allowed_domains: list[str] = field(default_factory=list)

    @property
    def expires_at(self) -> int:
        return self.last_active_at + 60 * self.expires_after_minutes

    def as_of(self, now: float) -> Container:
        """The container as it stands at now: a running one past its deadline has expired,
        whether or not the sweep has removed its sandbox yet."""
        if self.status == "running" and self.expires_at <= now:
            return replace(self, status="expired")
        return self


@dataclass
class ContainerFile(Listed):
    id: str
    container_id: str
    path: str
    """Relative to the sandbox's data directory (/mnt/data)."""
    bytes: int
    created_at: int
    source: Literal["user", "assistant"]
    mtime: float = 0.0


@dataclass
class File(Listed):
    """A Files-API file: bytes kept on the host, referred to by file_ids and file_id."""

    id: str
    filename: str
    bytes: int
    created_at: int
    purpose: str
    status: str = "processed"
    expires_at: int | None = None
    """Unix seconds after which the file is gone; None when it does not expire."""

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class PageQuery:
    order: Order = "desc"
    limit: int = 20
    after: Cursor | None = None
    before: Cursor | None = None


@dataclass
class Page(Generic[T]):
    items: list[T]
    has_more: bool


@dataclass
class SkillVersion:
    """One immutable version of a skill: its bundle is kept as a zip on the host."""

    id: str
    skill_id: str
    version: int
    created_at: int
    name: str
    description: str
    folder: str
    """The bundle's top-level folder, as uploaded."""
    bytes: int
    """Unpacked size of the bundle's files."""


@dataclass
class Skill(Listed):
    """A versioned skill; name and description are those of its default version."""

    id: str
    created_at: int
    default_version: int
    latest_version: int
    name: str
    description: str
