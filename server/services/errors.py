"""Shared by the services: runtime and storage failures as API errors, and the
running-container guard."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from server.domain import Container
from server.errors import (
    ApiError,
    ContainerExpired,
    ContainerNotFound,
    DiskFull,
    SandboxFailure,
    ServiceUnavailable,
)
from server.runtime import (
    RuntimeUnavailable,
    SandboxFileNotFound,
    SandboxRuntime,
    SandboxRuntimeError,
)
from server.store import ContainerRepository

log = logging.getLogger("localbox.services")


@contextmanager
def runtime_errors(action: str) -> Iterator[None]:
    """Answer runtime failures as API errors: 503 while the engine is down, 500 otherwise."""
    try:
        yield
    except RuntimeUnavailable as exc:
        log.warning("%s: %s", action, exc)
        raise engine_unavailable() from exc
    except SandboxFileNotFound:
        raise
    except SandboxRuntimeError as exc:
        log.error("%s: %s", action, exc)
        raise SandboxFailure(f"Could not {action}.") from exc


def engine_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("The sandbox engine (Docker) is not answering; try again shortly.")


class OutageCheck:
    """Tells an outage from a sandbox's own failure, once a call to a sandbox has failed
    (SandboxFailure, a 500). A call cut off by an engine going away, or made while the
    container's sandbox is not running (the engine restarted and has not started it again
    yet, say), fails in ways the runtime cannot tell from a real failure; asked afterwards,
    the engine can: if it does not answer, or the sandbox is stopped, the failure is passing
    and is answered 503, which the SDKs retry (a stopped sandbox is started again, as the
    reconcile would). Runs only on that error path."""

    def __init__(self, runtime: SandboxRuntime) -> None:
        self._runtime = runtime

    def answer(self, failure: Exception, params: Mapping[str, str]) -> ApiError:
        assert isinstance(failure, ApiError)
        container_id = params.get("container_id")
        try:
            self._runtime.ping()
            stopped = container_id is not None and any(
                s.container_id == container_id and s.state == "stopped"
                for s in self._runtime.list_sandboxes()
            )
            if stopped:
                assert container_id is not None
                log.warning("the sandbox of %s is not running; starting it", container_id)
                self._runtime.start(container_id)
        except SandboxRuntimeError as exc:
            log.warning("the sandbox engine does not answer: %s", exc)
            return engine_unavailable()
        if stopped:
            return ServiceUnavailable(
                "The container's sandbox was not running (the sandbox engine restarted, say); "
                "it is being started again. Try again shortly."
            )
        return failure


def disk_full(exc: Exception, _: Mapping[str, str] | None = None) -> DiskFull:
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
