"""A Channel to a sandbox's agent over Docker's attach stream (stdin in, multiplexed out)."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
from typing import cast

from server.logs import untrusted
from server.runtime.agent import AgentGone

log = logging.getLogger("localbox.runtime")

HEADER = 8  # Docker's stream header: 1 byte stream id, 3 zero bytes, 4 bytes big-endian size
STDOUT, STDERR = 1, 2


READ = 1 << 20


class AttachChannel:
    """Reads Docker's multiplexed frames: stdout payloads are returned, stderr is logged at
    DEBUG. A channel is read either frame by frame (receive) or in bulk (receive_bulk),
    never both."""

    def __init__(self, raw: object, name: str) -> None:
        # docker returns the socket wrapped in a SocketIO, which holds a reference on it:
        # the socket's descriptor is released only once both are closed.
        self._raw = raw
        self._sock = cast(socket.socket, getattr(raw, "_sock", raw))
        self._name = name
        self._buffer = bytearray()
        # receive_bulk's place in the stream: the frame being read and its bytes still due.
        self._stream = STDOUT
        self._due = 0

    def send(self, data: bytes) -> None:
        try:
            self._sock.settimeout(30)
            self._sock.sendall(data)
        except OSError as exc:
            raise AgentGone(str(exc)) from exc

    def receive(self, timeout: float) -> bytes | None:
        while True:
            frame = self._frame()
            if frame is not None:
                stream, payload = frame
                if stream == STDERR:
                    # What the agent says about itself; never logged above DEBUG, and cut
                    # and escaped, because code in the sandbox may try to write there too.
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("%s agent: %s", self._name, untrusted(payload, 300))
                    continue
                return payload
            try:
                self._sock.settimeout(max(timeout, 0.001))
                chunk = self._sock.recv(1 << 20)
            except TimeoutError:
                return None
            except OSError as exc:
                raise AgentGone(str(exc)) from exc
            if not chunk:
                raise AgentGone("the attach stream closed")
            self._buffer += chunk

    def receive_bulk(self, timeout: float, want: int = READ) -> bytes | None:
        """At least `want` bytes of stdout, or less when the stream ends first; None when
        nothing arrived within timeout; AgentGone once the stream has ended and everything
        was returned. For bulk output (a file's bytes): frames are not kept apart, and Docker
        cuts a large output into frames of a few KiB, each joined here rather than handed up
        one by one."""
        out = bytearray()
        while True:
            self._take(out)
            if len(out) >= want:
                return bytes(out)
            try:
                self._sock.settimeout(max(timeout, 0.001))
                chunk = self._sock.recv(READ)
            except TimeoutError:
                return bytes(out) if out else None
            except OSError as exc:
                if out:
                    return bytes(out)
                raise AgentGone(str(exc)) from exc
            if not chunk:
                if out:
                    return bytes(out)
                raise AgentGone("the attach stream closed")
            self._buffer += chunk

    def _take(self, out: bytearray) -> None:
        """Move the stdout payload bytes in the buffer to out, frame headers parsed as met."""
        buffer = self._buffer
        pos, end = 0, len(buffer)
        with memoryview(buffer) as view:
            while pos < end:
                if self._due == 0:
                    if end - pos < HEADER:
                        break
                    self._stream = buffer[pos]
                    self._due = struct.unpack_from(">I", buffer, pos + 4)[0]
                    pos += HEADER
                    continue
                take = min(self._due, end - pos)
                if self._stream == STDOUT:
                    out += view[pos : pos + take]
                elif log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "%s agent: %s", self._name, untrusted(bytes(view[pos : pos + take]), 300)
                    )
                pos += take
                self._due -= take
        del buffer[:pos]

    def _frame(self) -> tuple[int, bytes] | None:
        if len(self._buffer) < HEADER:
            return None
        stream, size = self._buffer[0], struct.unpack(">I", self._buffer[4:8])[0]
        if len(self._buffer) < HEADER + size:
            return None
        payload = bytes(self._buffer[HEADER : HEADER + size])
        del self._buffer[: HEADER + size]
        return stream, payload

    def closed(self) -> bool:
        """Whether the engine closed the stream (it restarted, or the sandbox stopped), found
        without blocking: the socket is readable and has nothing left to read."""
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
            return bool(readable) and self._sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        close = getattr(self._raw, "close", None)
        if close is not None and self._raw is not self._sock:
            with contextlib.suppress(OSError):
                close()
