"""Pure ASGI middleware: the request's id, context, log line and metrics; the no-key guard."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import metrics
from server.errors import ApiError, HostNotAllowed, OriginNotAllowed, internal_error_body
from server.ids import new_request_id
from server.logs import request_context

log = logging.getLogger("localbox")
access_log = logging.getLogger("localbox.access")

UPLOAD_ROUTES = frozenset({"/v1/files", "/v1/containers/{container_id}/files"})
QUIET_ROUTES = frozenset({"/health", "/metrics"})
_CONTAINER_IN_PATH = re.compile(r"^/v1/containers/(cntr_[0-9a-f]{1,64})(?:/|$)")


async def send_error(send: Send, status: int, body: dict[str, object], **headers: str) -> None:
    """Answer with a JSON error body, without the app."""
    payload = json.dumps(body).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class RequestMiddleware:
    """Every request gets an id (x-request-id), a context for its log records, one access log
    line and its metrics; an unexpected exception becomes a generic 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        context = {"request_id": request_id}
        match = _CONTAINER_IN_PATH.match(scope["path"])
        if match:
            context["container_id"] = match.group(1)
        token = request_context.set(context)
        status = 0
        received = sent = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, send_with_id)
        except Exception:
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if status:
                raise
            await send_error(send_with_id, 500, internal_error_body())
        finally:
            request_context.reset(token)
            route = route_template(scope)
            seconds = time.perf_counter() - started_at
            self._record(scope["method"], route, status or 499, seconds, received, sent, context)

    @staticmethod
    def _record(
        method: str,
        route: str,
        status: int,
        seconds: float,
        received: int,
        sent: int,
        context: dict[str, str],
    ) -> None:
        metrics.observe_http(method, route, status, seconds)
        if method == "POST" and route in UPLOAD_ROUTES:
            metrics.count_upload(route, received)
        if route.endswith("/content") and status == 200:
            metrics.count_download(route, sent)
        level = logging.DEBUG if route in QUIET_ROUTES and status < 400 else logging.INFO
        if access_log.isEnabledFor(level):
            duration_ms = round(seconds * 1000, 1)
            access_log.log(
                level,
                "%s %s %s %.1f ms",
                method,
                route,
                status,
                duration_ms,
                extra={
                    **context,
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                },
            )


def route_template(scope: Scope) -> str:
    """The path template of the route that served the request ("/v1/containers/{container_id}"),
    never the raw path: metric labels stay few. "unmatched" when no route took it."""
    # FastAPI 0.1xx keeps included routers nested: the full template is in its route context.
    context = scope.get("fastapi", {}).get("effective_route_context")
    for source in (context, scope.get("route")):
        template = getattr(source, "path_format", None) or getattr(source, "path", None)
        if isinstance(template, str) and template:
            return template
    return "unmatched"


def hostname(host_header: str) -> str:
    """The host name of a Host header value: no port, no brackets, lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class LoopbackGuardMiddleware:
    """Without API keys, answer only requests addressed to this machine by name (no DNS
    rebinding) and not sent by a web page of another site (no cross-site posts)."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed = frozenset(allowed_hosts)

    def _allowed(self, name: str) -> bool:
        return is_loopback_name(name) or name in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal: ApiError | None = None
        host = headers.get("host")
        origin = headers.get("origin")
        if host is not None and not self._allowed(hostname(host)):
            refusal = HostNotAllowed(hostname(host))
        elif origin is not None and not self._allowed((urlsplit(origin).hostname or "").lower()):
            refusal = OriginNotAllowed(origin)
        if refusal is not None:
            await send_error(send, refusal.status, refusal.body())
            return
        await self.app(scope, receive, send)
