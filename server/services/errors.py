"""Translation of runtime failures into API errors, shared by the services."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from server.errors import SandboxFailure, ServiceUnavailable
from server.runtime import RuntimeUnavailable, SandboxFileNotFound, SandboxRuntimeError

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
