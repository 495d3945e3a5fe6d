"""Persistence: SQLModel tables and repositories. The only package that imports sqlmodel."""

from server.store.containers import ContainerRepository
from server.store.database import Database

__all__ = ["ContainerRepository", "Database"]
