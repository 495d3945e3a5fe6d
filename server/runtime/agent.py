"""The client side of the in-sandbox agent's protocol (JSON lines), independent of transport.

A driver supplies a byte channel to the agent's stdin and stdout — Docker's attach stream
today, Kubernetes' exec stream later — and AgentClient speaks the protocol over it. What
comes back is read and checked by runtime/frames.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

from server.runtime.base import ExecDone, ExecEvent, ExecRequest
from server.runtime.frames import FrameParser, LineReader, decode

# How long past the requested timeout the agent may take to interrupt, restart its
# interpreter and report, before the sandbox counts as wedged.
AGENT_GRACE_SECONDS = 20.0
FRAME_SLACK = 4 << 20


class AgentGone(Exception):
    """The channel closed: the agent (or its sandbox) stopped."""


class AgentWedged(Exception):
    """The agent did not report within the timeout and its grace."""


class Channel(Protocol):
    def send(self, data: bytes) -> None:
        """Write bytes to the agent's stdin; raise AgentGone if the channel is closed."""

    def receive(self, timeout: float) -> bytes | None:
        """The next bytes of the agent's stdout, None after timeout; AgentGone at the end."""

    def closed(self) -> bool:
        """Whether the other end closed the channel (known without blocking)."""

    def close(self) -> None: ...


def max_frame(request: ExecRequest) -> int:
    """The longest line a well-behaved agent sends for this request (an image, or a done
    frame with its bounded file list and error), with room to spare."""
    return request.max_image_bytes + 8 * request.max_error_bytes + FRAME_SLACK


class AgentClient:
    """One conversation with one sandbox's agent. One call at a time reads; cancel() may be
    sent from any thread meanwhile."""

    def __init__(self, channel: Channel, name: str = "") -> None:
        self.channel = channel
        self._reader = LineReader(FRAME_SLACK)
        self._parser = FrameParser(name)
        self._send_lock = threading.Lock()

    def execute(self, request: ExecRequest) -> Iterator[ExecEvent]:
        self._reader.max_line = max_frame(request)
        message: dict[str, Any] = {
            "op": "exec",
            "id": request.id,
            "code": request.code,
            "language": request.language,
            "timeout": request.timeout,
            "max_output": request.max_output,
            "max_image_bytes": request.max_image_bytes,
            "max_error_bytes": request.max_error_bytes,
            "disk_limit": request.disk_limit,
        }
        if request.silent:
            message["silent"] = True
        self._send(message)
        deadline = time.monotonic() + request.timeout + AGENT_GRACE_SECONDS
        while True:
            frame = self._next(deadline)
            if frame.get("id") != request.id:
                continue  # left over from a call whose caller went away
            event = self._parser.event(frame)
            if event is not None:
                yield event
                if isinstance(event, ExecDone):
                    return

    def cancel(self, request_id: str) -> None:
        self._send({"op": "cancel", "id": request_id})

    def stop_strays(self) -> None:
        """Tell the agent to stop every call sent to it before now, running or queued: sent
        first on a new channel, since a call still running there was started by a caller that
        is gone (a server process that died, or a channel that broke mid-call), and the next
        call would wait behind it. The interpreter is interrupted, not restarted, so its state
        is kept when the code stops on an interrupt. The agent's answer ("stopped") is not
        waited for: whatever is sent next is read after it."""
        self._send({"op": "stop", "id": f"stop-{time.monotonic_ns()}"})

    def ping(self, timeout: float = 5.0) -> None:
        request_id = f"ping-{time.monotonic_ns()}"
        self._send({"op": "ping", "id": request_id})
        deadline = time.monotonic() + timeout
        while self._next(deadline).get("id") != request_id:
            pass

    def close(self) -> None:
        self.channel.close()

    def stale(self) -> bool:
        """The channel was closed by the other end while idle (an engine restart, say)."""
        return self.channel.closed()

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        with self._send_lock:
            self.channel.send(data)

    def _next(self, deadline: float) -> dict[str, Any]:
        while True:
            line = self._reader.next_line()
            if line is not None:
                frame = decode(line)
                if frame is not None:
                    return frame
                self._parser.warn_once("a line that is not a JSON object")
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AgentWedged("the agent did not answer in time")
            chunk = self.channel.receive(min(remaining, 1.0))
            if chunk:
                self._reader.feed(chunk)
