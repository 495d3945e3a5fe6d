"""POST /v1/containers/{container_id}/exec: run code in the sandbox (a localbox extension)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from server.api.deps import Execution
from server.api.schemas import Exec, ExecBody, ImageOutputOut
from server.runtime import ImageOutput, OutputChunk
from server.services.execution import ExecCall

router = APIRouter(prefix="/containers/{container_id}/exec", tags=["execution"])

KEEPALIVE_SECONDS = 15.0


async def sse(call: ExecCall) -> AsyncIterator[str]:
    """Server-sent events: stdout/stderr chunks and images as produced, then `done`; a
    comment line when nothing happened for a while, so dead connections are noticed."""
    async for event in call.events(idle=KEEPALIVE_SECONDS):
        data: dict[str, object]
        if event is None:
            yield ": keepalive\n\n"
            continue
        if isinstance(event, OutputChunk):
            data = {"type": event.stream, "text": event.text}
        elif isinstance(event, ImageOutput):
            data = ImageOutputOut(media_type=event.media_type, data=event.data).model_dump()
        else:
            data = {**Exec.of(event.result).model_dump(), "type": "done"}
        yield f"event: {data['type']}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class EventStream(StreamingResponse):
    """Streams while listening for the client's disconnect, whatever the server's ASGI
    version: a disconnect cancels the stream, and with it the call."""

    def __init__(self, call: ExecCall) -> None:
        super().__init__(
            sse(call), media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )
        self.call = call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def stream() -> None:
                await self.stream_response(send)
                group.cancel_scope.cancel()

            group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()
        self.call.cancel()  # a no-op once it has finished


@router.post("", response_model=Exec)
async def exec_code(container_id: str, body: ExecBody, service: Execution) -> Response:
    call = await service.start(
        container_id, body.code, body.language, body.timeout, streaming=body.stream
    )
    if body.stream:
        return EventStream(call)
    # Serialised once here: this is the hot path of the exec round trip.
    result = await call.result()
    return Response(Exec.of(result).model_dump_json(), media_type="application/json")
