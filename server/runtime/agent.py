"""The client side of the in-sandbox agent's protocol (JSON lines), independent of transport.

A driver supplies a byte channel to the agent's stdin and stdout — Docker's attach stream
today, Kubernetes' exec stream later — and AgentClient speaks the protocol over it.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any, Protocol

from server.runtime.base import (
    ExecDone,
    ExecError,
    ExecEvent,
    ExecRequest,
    ImageOutput,
    OutputChunk,
    SandboxFile,
)

# How long past the requested timeout the agent may take to interrupt, restart its
# interpreter and report, before the sandbox counts as wedged.
AGENT_GRACE_SECONDS = 20.0


class AgentGone(Exception):
    """The channel closed: the agent (or its sandbox) stopped."""


class AgentWedged(Exception):
    """The agent did not report within the timeout and its grace."""


class Channel(Protocol):
    def send(self, data: bytes) -> None:
        """Write bytes to the agent's stdin; raise AgentGone if the channel is closed."""

    def receive(self, timeout: float) -> bytes | None:
        """The next bytes of the agent's stdout, None after timeout; AgentGone at the end."""

    def close(self) -> None: ...


class AgentClient:
    """One conversation with one sandbox's agent; callers take turns (one request at a time)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._buffer = b""

    def execute(self, request: ExecRequest) -> Iterator[ExecEvent]:
        request_id = secrets.token_hex(8)
        self._send(
            {
                "op": "exec",
                "id": request_id,
                "code": request.code,
                "language": request.language,
                "timeout": request.timeout,
                "max_output": request.max_output,
                "disk_limit": request.disk_limit,
            }
        )
        deadline = time.monotonic() + request.timeout + AGENT_GRACE_SECONDS
        while True:
            event = self._next(deadline)
            if event.get("id") != request_id:
                continue  # left over from a call whose caller went away
            parsed = parse_event(event)
            if parsed is not None:
                yield parsed
                if isinstance(parsed, ExecDone):
                    return

    def ping(self, timeout: float = 5.0) -> None:
        request_id = secrets.token_hex(8)
        self._send({"op": "ping", "id": request_id})
        deadline = time.monotonic() + timeout
        while self._next(deadline).get("id") != request_id:
            pass

    def close(self) -> None:
        self.channel.close()

    def _send(self, message: dict[str, Any]) -> None:
        self.channel.send(json.dumps(message).encode() + b"\n")

    def _next(self, deadline: float) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AgentWedged("the agent did not answer in time")
            chunk = self.channel.receive(min(remaining, 1.0))
            if chunk:
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            event: dict[str, Any] = json.loads(line)
        except ValueError:
            return {}
        return event


def parse_event(event: dict[str, Any]) -> ExecEvent | None:
    kind = event.get("type")
    if kind == "stream":
        if event.get("name") == "stderr":
            return OutputChunk(stream="stderr", text=str(event.get("text", "")))
        return OutputChunk(stream="stdout", text=str(event.get("text", "")))
    if kind == "image":
        return ImageOutput(media_type=str(event["media_type"]), data=str(event["data"]))
    if kind == "done":
        err = event.get("error")
        return ExecDone(
            status=event.get("status", "error"),
            error=ExecError(
                str(err.get("name", "Error")),
                str(err.get("value", "")),
                str(err.get("traceback", "")),
            )
            if isinstance(err, dict)
            else None,
            state_preserved=bool(event.get("state_preserved", False)),
            files=[
                SandboxFile(path=str(f["path"]), bytes=int(f["bytes"]), mtime=float(f["mtime"]))
                for f in event.get("files", [])
            ],
            removed=[str(p) for p in event.get("removed", [])],
            truncated={str(k): int(v) for k, v in (event.get("truncated") or {}).items()},
            exit_code=event.get("exit_code"),
            duration_ms=int(event.get("duration_ms", 0)),
        )
    return None
