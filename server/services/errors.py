"""Shared by the services: runtime and storage failures as API errors, and the
running-container guard."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from server.domain import Container
from server.errors import (
    ContainerExpired,
    ContainerNotFound,
    DiskFull,
    SandboxFailure,
    ServiceUnavailable,
)
from server.runtime import RuntimeUnavailable, SandboxFileNotFound, SandboxRuntimeError
from server.store import ContainerRepository

log = logging.getLogger("localbox.services")


@contextmanager
def runtime_errors(action: str) -> Iterator[None]:
    """Answer runtime failures as API errors: 503 while the engine is down, 500 otherwise."""
    try:
        yield
    except RuntimeUnavailable as exc:
        log.warning("%s: %s", action, exc)
        raise ServiceUnavailable(
            "The sandbox engine (Docker) is not answering; try again shortly."
        ) from exc
    except SandboxFileNotFound:
        raise
    except SandboxRuntimeError as exc:
        log.error("%s: %s", action, exc)
        raise SandboxFailure(f"Could not {action}.") from exc


def disk_full(exc: Exception) -> DiskFull:
    """A write that found the data disk full (StorageFull), as the API answers it."""
    log.warning("refused for lack of disk space: %s", exc)
    return DiskFull(
        "The disk that holds localbox's data is full. Uploads, new containers and other "
        "writes are refused until space is freed; deletes still work (delete files or "
        "containers you no longer need)."
    )


def touch_running(repo: ContainerRepository, container_id: str, now: int) -> Container:
    """The container, marked active; 404 when unknown, 400 "Container is expired." when it
    is past its deadline (marked expired by the sweep or not: it is never revived)."""
    container = repo.touch(container_id, now)
    if container is None:
        raise ContainerNotFound(container_id)
    if container.as_of(now).status != "running":
        raise ContainerExpired()
    return container
