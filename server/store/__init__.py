"""Persistence: SQLModel tables and repositories. The only package that imports sqlmodel."""

from server.store.container_files import ContainerFileRepository
from server.store.containers import DELETING, ContainerRepository
from server.store.database import Database
from server.store.deployment import DatabaseInUse, Deployment
from server.store.files import BlobStore, FileRepository
from server.store.leases import LeaseRepository, Taken
from server.store.responses import ResponseRepository, StoredResponse
from server.store.skills import SkillBundleStore, SkillRepository
from server.store.space import DiskReserve, StorageFull, no_room

__all__ = [
    "DELETING",
    "BlobStore",
    "ContainerFileRepository",
    "ContainerRepository",
    "Database",
    "DatabaseInUse",
    "Deployment",
    "DiskReserve",
    "FileRepository",
    "LeaseRepository",
    "ResponseRepository",
    "SkillBundleStore",
    "SkillRepository",
    "StorageFull",
    "StoredResponse",
    "Taken",
    "no_room",
]
