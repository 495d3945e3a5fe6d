"""POST /v1/containers/{container_id}/exec: run code in the sandbox (a localbox extension)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from server.api.deps import Execution
from server.api.schemas import Exec, ExecBody, ImageOutputOut
from server.runtime import ImageOutput, OutputChunk
from server.services.execution import StreamEvent

router = APIRouter(prefix="/containers/{container_id}/exec", tags=["execution"])


def sse(events: Iterator[StreamEvent]) -> Iterator[str]:
    """Server-sent events: stdout/stderr chunks and images as produced, then `done`."""
    for event in events:
        data: dict[str, object]
        if isinstance(event, OutputChunk):
            data = {"type": event.stream, "text": event.text}
        elif isinstance(event, ImageOutput):
            data = ImageOutputOut(media_type=event.media_type, data=event.data).model_dump()
        else:
            data = {**Exec.of(event.result).model_dump(), "type": "done"}
        yield f"event: {data['type']}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.post("", response_model=Exec)
async def exec_code(container_id: str, body: ExecBody, service: Execution) -> Response:
    if body.stream:
        events = await run_in_threadpool(
            service.start, container_id, body.code, body.language, body.timeout
        )
        return StreamingResponse(
            sse(events), media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )
    result = await run_in_threadpool(
        service.run, container_id, body.code, body.language, body.timeout
    )
    # Serialised once here: this is the hot path of the exec round trip.
    return Response(Exec.of(result).model_dump_json(), media_type="application/json")
