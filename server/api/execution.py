"""POST /v1/containers/{container_id}/exec: run code in the sandbox (a localbox extension)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import Response

from server.api.deps import Execution
from server.api.schemas import Exec, ExecBody, ImageOutputOut
from server.api.sse import EventStream, sse_event
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
        yield sse_event(data)


@router.post("", response_model=Exec)
async def exec_code(container_id: str, body: ExecBody, service: Execution) -> Response:
    call = await service.start(
        container_id, body.code, body.language, body.timeout, streaming=body.stream
    )
    if body.stream:
        return EventStream(sse(call), on_close=call.cancel)  # a no-op once it has finished
    # Serialised once here: this is the hot path of the exec round trip.
    result = await call.result()
    return Response(Exec.of(result).model_dump_json(), media_type="application/json")
