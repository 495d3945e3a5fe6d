"""The Streamable HTTP door: /mcp on the app, behind the same API keys as /v1.

The no-key rules (loopback Host, no cross-site Origin) and the body limit are the app's own
middleware, which wraps /mcp like every route; the SDK's DNS-rebinding check is therefore
off here, so one set of rules answers at every door.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from server.api_keys import check_bearer
from server.errors import ApiError
from server.middleware import send_error

PATH = "/mcp"


async def sessions_first(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Answer server/discover with the handshake versions only, as stateful servers do: a
    client that probes falls back to the initialize handshake and gets a session (whose
    container its calls share); the 2026-07-28 era has no sessions. A client pinned to that
    era is still served, each call without container_id in a container of its own."""
    result = await call_next(ctx)
    if ctx.method == "server/discover" and isinstance(result, Mapping):
        return {**result, "supportedVersions": list(HANDSHAKE_PROTOCOL_VERSIONS)}
    return result


class StreamableHttp:
    """The ASGI endpoint for /mcp, and the session manager whose run() the app's lifespan
    holds open."""

    def __init__(self, server: MCPServer, *, api_keys: list[str], max_body_bytes: int) -> None:
        server.middleware.append(sessions_first)
        server.streamable_http_app(
            streamable_http_path=PATH,
            max_request_body_size=max_body_bytes,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.session_manager = server.session_manager
        self._handler = StreamableHTTPASGIApp(self.session_manager)
        self._keys = api_keys

    def run(self) -> AbstractAsyncContextManager[None]:
        return self.session_manager.run()

    def route(self) -> Route:
        """The app's route to this endpoint."""
        return _NamedRoute(PATH, self, methods=["GET", "POST", "DELETE"], include_in_schema=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            check_bearer(self._keys, Headers(scope=scope).get("authorization"))
        except ApiError as exc:
            await send_error(send, exc.status, exc.body(), **exc.headers())
            return
        await self._handler(scope, receive, send)


class _NamedRoute(Route):
    """A route that names itself in the scope, as FastAPI's own do, so the access log and
    the metrics label requests with its path rather than "unmatched"."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope
