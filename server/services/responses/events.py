"""Stream events in OpenAI's shape, numbered from 0 in the order they are made."""

from __future__ import annotations

from typing import Any

from server.services.responses.items import snapshot

Event = dict[str, Any]


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
