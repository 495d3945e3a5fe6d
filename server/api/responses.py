"""Routes for /v1/responses: the Responses API with code_interpreter and shell run here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from server.api.deps import Limit, OrderParam, Responses
from server.api.responses_body import ResponseCreateBody, to_request
from server.api.sse import EventStream, sse_event
from server.services.responses.events import KEEPALIVE, Event

router = APIRouter(prefix="/responses", tags=["responses"])


async def _sse(events: AsyncIterator[Event]) -> AsyncIterator[str]:
    async for event in events:
        yield ": keepalive\n\n" if event["type"] == KEEPALIVE else sse_event(event)


def _include(request: Request) -> list[str]:
    """include as the SDKs send it: include[]=... (openai-python) or include=..."""
    return request.query_params.getlist("include[]") + request.query_params.getlist("include")


@router.post("")
async def create_response(body: ResponseCreateBody, service: Responses) -> Response:
    req = to_request(body)
    if body.stream:
        return EventStream(_sse(await service.stream(req)))
    return JSONResponse(await service.create(req))


@router.get("/{response_id}")
def retrieve_response(response_id: str, request: Request, service: Responses) -> Any:
    return service.retrieve(response_id, _include(request))


@router.delete("/{response_id}")
def delete_response(response_id: str, service: Responses) -> dict[str, Any]:
    service.delete(response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


@router.get("/{response_id}/input_items")
def list_input_items(
    response_id: str,
    request: Request,
    service: Responses,
    after: str | None = None,
    before: str | None = None,
    limit: Limit = 20,
    order: OrderParam = "desc",
) -> dict[str, Any]:
    page = service.input_items(
        response_id,
        include=_include(request),
        limit=limit,
        order=order,
        after=after,
        before=before,
    )
    items = page.items
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": page.has_more,
    }
