"""Sandboxes: the SandboxRuntime protocol and its drivers. Only runtime/docker.py imports docker."""

from server.runtime.base import (
    ExecDone,
    ExecError,
    ExecEvent,
    ExecRequest,
    ImageOutput,
    OutputChunk,
    RuntimeUnavailable,
    SandboxFile,
    SandboxFileNotFound,
    SandboxInfo,
    SandboxNotFound,
    SandboxRuntime,
    SandboxRuntimeError,
    SandboxSpec,
    SpareInfo,
)

__all__ = [
    "ExecDone",
    "ExecError",
    "ExecEvent",
    "ExecRequest",
    "ImageOutput",
    "OutputChunk",
    "RuntimeUnavailable",
    "SandboxFile",
    "SandboxFileNotFound",
    "SandboxInfo",
    "SandboxNotFound",
    "SandboxRuntime",
    "SandboxRuntimeError",
    "SandboxSpec",
    "SpareInfo",
]
