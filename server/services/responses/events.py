"""Stream events in OpenAI's shape, numbered from 0 in the order they are made."""

from __future__ import annotations

from typing import Any

from server.services.responses.items import snapshot

Event = dict[str, Any]
KEEPALIVE = "keepalive"
"""Not one of OpenAI's events: the SSE writer sends it as a comment line."""


class EventMaker:
    """Makes a turn's events; when nobody streams, makes none (the hot path stays cheap)."""

    def __init__(self, streaming: bool) -> None:
        self.streaming = streaming
        self._next = 0

    def __call__(self, type_: str, **fields: Any) -> list[Event]:
        if not self.streaming:
            return []
        event = {"type": type_, **snapshot(fields), "sequence_number": self._next}
        self._next += 1
        return [event]

    def keepalive(self) -> list[Event]:
        """A sign of life while a tool runs quietly (no sequence number: it is no event)."""
        return [{"type": KEEPALIVE}] if self.streaming else []
