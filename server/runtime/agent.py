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

    def fileno(self) -> int:
        """A descriptor that polls readable when there is something to receive."""

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
        self._reading = threading.Lock()
        """Held by whoever reads the channel: a call, a ping, or drain()."""

    def execute(self, request: ExecRequest) -> Iterator[ExecEvent]:
        with self._reading:
            yield from self._execute(request)

    def _execute(self, request: ExecRequest) -> Iterator[ExecEvent]:
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
        with self._reading:
            self._send({"op": "ping", "id": request_id})
            deadline = time.monotonic() + timeout
            while self._next(deadline).get("id") != request_id:
                pass

    def reading(self) -> bool:
        """Whether a call (or a ping) reads the channel now."""
        return self._reading.locked()

    def drain(self) -> bool:
        """Read and drop what arrived while no call of this client reads: the answers to
        calls another server process sent over its own channel to the same agent (every
        channel hears every answer). Left unread, they would fill the channel until the
        engine stopped passing the agent's output on, to that process too. False once the
        channel has ended."""
        if not self._reading.acquire(blocking=False):
            return True
        try:
            while (chunk := self.channel.receive(0)) is not None:
                self._reader.feed(chunk)
            self._reader.discard_complete()
            return True
        except AgentGone:
            return False
        finally:
            self._reading.release()

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
