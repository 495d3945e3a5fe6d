"""The HTTP edge: what uvicorn leaves to us against slow and numerous clients.

uvicorn (httptools) never times out a request whose headers are still arriving, and accepts
connections until the process runs out of file descriptors. This protocol adds, per server:

- a header deadline: a connection that has not sent a request's complete headers within
  `header_timeout` seconds of its first byte (or of connecting) is closed;
- a connection cap below the descriptor limit: at the cap, a new connection pushes out the
  oldest connection that is not serving a request (one still sending headers, or idle between
  requests), so a slowloris cannot crowd real clients out; only when every connection is
  serving a request is the new one refused with a 503 and closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server import metrics
from server.errors import error_body

log = logging.getLogger("localbox.edge")

DESCRIPTOR_RESERVE = 512
"""Descriptors kept for everything but client connections: database, Docker, spooled uploads."""
DEFAULT_MAX_CONNECTIONS = 4096
WARN_EVERY_SECONDS = 10.0
LINGER_SECONDS = 1.0
MAX_LINGERING = 64


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %s to %s: %s", soft, target, exc)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(configured: int, descriptors: int) -> int:
    """The connection cap: the setting (0 = 4096), never closer than the reserve to the limit."""
    wanted = configured or DEFAULT_MAX_CONNECTIONS
    return max(16, min(wanted, descriptors - DESCRIPTOR_RESERVE))


def _refusal_response() -> bytes:
    body = json.dumps(
        error_body(
            "The server is at its connection limit and every connection is busy; retry shortly.",
            "server_error",
            None,
            "too_many_connections",
        )
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


REFUSAL = _refusal_response()


class Edge:
    """The state every connection of one server shares."""

    def __init__(self, max_connections: int, header_timeout: float, body_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.open = 0
        self.lingering = 0
        self.idle: dict[EdgeProtocol, None] = {}
        """Connections not serving a request, oldest first: the ones pushed out at the cap."""
        self.pushed_out = 0
        self.timed_out = 0
        self.refused = 0
        self._warned_at = 0.0

    def warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning(
                "%s (connection limit %d; so far %d pushed out, %d header timeouts, %d refused)",
                what,
                self.max_connections,
                self.pushed_out,
                self.timed_out,
                self.refused,
            )


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines and a connection cap."""

    edge: ClassVar[Edge]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_seen_at = 0.0
        self._counted = False
        self._refused = False

    @classmethod
    def bound_to(cls, edge: Edge) -> type[EdgeProtocol]:
        """A protocol class for one server, sharing `edge` among its connections."""
        return type("EdgeProtocol", (cls,), {"edge": edge})

    # Connections: counted, capped, pushed out.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        edge = self.edge
        if edge.open >= edge.max_connections and not self._push_out_oldest_idle():
            self._refuse()
            return
        edge.open += 1
        metrics.connection_opened()
        self._counted = True
        self._become_idle()
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        if self._refused:
            self.edge.lingering -= 1
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the 503 is out; what the client still sends is dropped
        super().data_received(data)

    def _refuse(self) -> None:
        edge = self.edge
        edge.refused += 1
        metrics.connection_closed("refused")
        edge.warn("connection refused: every connection is serving a request")
        self._refused = True
        edge.lingering += 1
        self.transport.write(REFUSAL)
        if edge.lingering > MAX_LINGERING or not self.transport.can_write_eof():
            self.transport.close()
            return
        # Let the client send its request and read the answer before the socket goes.
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _push_out_oldest_idle(self) -> bool:
        edge = self.edge
        while edge.idle:
            oldest = next(iter(edge.idle))
            edge.idle.pop(oldest)
            if oldest.transport.is_closing():
                continue
            edge.pushed_out += 1
            metrics.connection_closed("pushed_out")
            edge.warn("at the connection limit: closing connections not serving a request")
            oldest._close()
            return True
        return False

    def _become_idle(self) -> None:
        self.edge.idle[self] = None

    def _close(self) -> None:
        self._forget()
        self.transport.close()

    def _forget(self) -> None:
        """Stop counting this connection (once), whoever closes it."""
        self._cancel_timers()
        self.edge.idle.pop(self, None)
        if self._counted:
            self._counted = False
            self.edge.open -= 1
            metrics.connection_gone()

    # Requests: a deadline for the headers, an idle limit for the body.

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()  # a request on a kept-alive connection has a deadline too

    def on_headers_complete(self) -> None:
        self._cancel_timers()
        self.edge.idle.pop(self, None)
        super().on_headers_complete()
        self._body_seen_at = self.loop.time()
        self._body_timer = self.loop.call_later(self.edge.body_timeout, self._body_deadline)

    def on_body(self, body: bytes) -> None:
        self._body_seen_at = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Kept alive with nothing to do (no pipelined request started): idle again.
        if self.timeout_keep_alive_task is not None and not self.transport.is_closing():
            self._become_idle()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None and self._counted:
            self._header_timer = self.loop.call_later(
                self.edge.header_timeout, self._header_deadline
            )

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.edge.timed_out += 1
            metrics.connection_closed("header_timeout")
            self.edge.warn("closed a connection that did not send its headers in time")
            self._close()

    def _body_deadline(self) -> None:
        """Close a connection whose body stopped arriving (unless we stopped reading it)."""
        self._body_timer = None
        if self.transport.is_closing():
            return
        silent = self.loop.time() - self._body_seen_at
        if silent >= self.edge.body_timeout and not self.flow.read_paused:
            self.edge.timed_out += 1
            metrics.connection_closed("body_timeout")
            self.edge.warn("closed a connection whose request body stopped arriving")
            self._close()
            return
        wait = self.edge.body_timeout - silent if silent < self.edge.body_timeout else 1.0
        self._body_timer = self.loop.call_later(wait, self._body_deadline)
