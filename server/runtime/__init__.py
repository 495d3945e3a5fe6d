"""Sandboxes: the SandboxRuntime protocol and its drivers. Only runtime/docker.py imports docker."""

from server.runtime.base import (
    RuntimeUnavailable,
    SandboxFile,
    SandboxFileNotFound,
    SandboxInfo,
    SandboxNotFound,
    SandboxRuntime,
    SandboxRuntimeError,
    SandboxSpec,
)

__all__ = [
    "RuntimeUnavailable",
    "SandboxFile",
    "SandboxFileNotFound",
    "SandboxInfo",
    "SandboxNotFound",
    "SandboxRuntime",
    "SandboxRuntimeError",
    "SandboxSpec",
]
