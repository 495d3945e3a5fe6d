"""The SandboxRuntime protocol: everything the services need from a sandbox, and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

SandboxState = Literal["running", "stopped", "missing"]


class SandboxRuntimeError(Exception):
    """A sandbox operation failed."""


class RuntimeUnavailable(SandboxRuntimeError):
    """The engine behind the runtime (the Docker daemon) does not answer."""


class SandboxNotFound(SandboxRuntimeError):
    """The sandbox does not exist (any more)."""


@dataclass(frozen=True)
class SandboxSpec:
    container_id: str
    memory_bytes: int


@dataclass(frozen=True)
class SandboxInfo:
    container_id: str
    state: SandboxState
    created_at: float


class SandboxRuntime(Protocol):
    """A place to run one sandbox per API container. Methods block; call them off the loop."""

    def ping(self) -> None:
        """Return when the engine answers; raise RuntimeUnavailable otherwise."""

    def create(self, spec: SandboxSpec) -> None:
        """Create and start the sandbox with its own /mnt/data storage."""

    def destroy(self, container_id: str) -> None:
        """Remove the sandbox and its storage; a missing sandbox is not an error."""

    def start(self, container_id: str) -> None:
        """Start a stopped sandbox again."""

    def list_sandboxes(self) -> list[SandboxInfo]:
        """Every sandbox this server instance manages."""
