"""Sandboxes: the SandboxRuntime protocol and its drivers. Only runtime/docker.py imports docker."""

from server.runtime.base import (
    EgressPolicy,
    EgressSecret,
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
)

__all__ = [
    "EgressPolicy",
    "EgressSecret",
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
]
