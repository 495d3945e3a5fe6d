"""A Channel to a sandbox's agent over Docker's attach stream (stdin in, multiplexed out)."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct

from server.logs import untrusted
from server.runtime.agent import AgentGone

log = logging.getLogger("localbox.runtime")

HEADER = 8  # Docker's stream header: 1 byte stream id, 3 zero bytes, 4 bytes big-endian size
STDOUT, STDERR = 1, 2


class AttachChannel:
    """Reads Docker's multiplexed frames: stdout payloads are returned, stderr is logged at
    DEBUG."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self._sock = sock
        self._name = name
        self._buffer = bytearray()

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

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
