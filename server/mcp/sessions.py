"""The container an MCP session uses when a call names none: made on its first need."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from server.api.schemas import ContainerCreateBody
from server.errors import ApiError
from server.mcp.backend import Backend

MAX_SESSIONS = 10_000
"""Sessions remembered at once (the oldest are forgotten; their containers expire as usual)."""

CONTAINER_NAME = "mcp-session"


@dataclass(frozen=True)
class SessionContainer:
    container_id: str
    created: bool
    """True when this call started it (the first call of the session, or the previous one
    had expired or was deleted)."""
    replaced: str | None = None
    """The session's previous container, when it had one that is gone."""


class SessionContainers:
    """Maps a session key (the transport's session id; one fixed key per stdio process) to
    its container. A session without a key gets a new container on every call."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self._by_session: OrderedDict[str, str] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._max = max_sessions

    async def container_for(self, backend: Backend, session: str | None) -> SessionContainer:
        if session is None:
            created = await backend.create_container(ContainerCreateBody(name=CONTAINER_NAME))
            return SessionContainer(created.id, created=True)
        lock = self._locks.setdefault(session, asyncio.Lock())
        async with lock:
            known = self._by_session.get(session)
            if known is not None:
                try:
                    container = await backend.retrieve_container(known)
                except ApiError as exc:
                    if getattr(exc, "remote_status", exc.status) != 404:
                        raise
                else:
                    if container.status == "running":
                        self._by_session.move_to_end(session)
                        return SessionContainer(known, created=False)
            created = await backend.create_container(ContainerCreateBody(name=CONTAINER_NAME))
            self._by_session[session] = created.id
            self._by_session.move_to_end(session)
            while len(self._by_session) > self._max:
                gone, _ = self._by_session.popitem(last=False)
                self._locks.pop(gone, None)
            return SessionContainer(created.id, created=True, replaced=known)
