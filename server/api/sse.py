"""Server-sent events: a streamed answer that ends when the client goes away."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


def sse_event(data: dict[str, Any]) -> str:
    """One event: its `type` as the event name, the JSON as data."""
    return f"event: {data['type']}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class EventStream(StreamingResponse):
    """Streams while listening for the client's disconnect, whatever the server's ASGI
    version: a disconnect cancels the stream (and what produces it), then on_close runs."""

    def __init__(
        self, body: AsyncIterator[str], on_close: Callable[[], None] | None = None
    ) -> None:
        super().__init__(
            body,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def stream() -> None:
                await self.stream_response(send)
                group.cancel_scope.cancel()

            group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()
        if self._on_close is not None:
            self._on_close()
