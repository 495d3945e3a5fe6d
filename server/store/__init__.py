"""Persistence: SQLModel tables and repositories. The only package that imports sqlmodel."""

from server.store.container_files import ContainerFileRepository
from server.store.containers import ContainerRepository
from server.store.database import Database
from server.store.files import BlobStore, FileRepository
from server.store.responses import ResponseRepository, StoredResponse
from server.store.skills import SkillBundleStore, SkillRepository

__all__ = [
    "BlobStore",
    "ContainerFileRepository",
    "ContainerRepository",
    "Database",
    "FileRepository",
    "ResponseRepository",
    "SkillBundleStore",
    "SkillRepository",
    "StoredResponse",
]
