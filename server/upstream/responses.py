"""The Responses driver: function tools over an upstream's own /responses (OpenAI, or a
server that implements it). The conversation is sent whole each time (store: false)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from server.upstream.base import (
    Finished,
    ImagePart,
    Message,
    ModelEvent,
    ModelRequest,
    TextDelta,
    ToolCallDelta,
    ToolCallStarted,
    UpstreamError,
    Usage,
)
from server.upstream.http import HttpDriver, sampling, tool_fields


def responses_input(messages: list[Message]) -> list[dict[str, Any]]:
    """The conversation as Responses input items."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"type": "function_call_output", "call_id": m.call_id, "output": m.text})
            continue
        if m.role == "assistant":
            if m.text:
                out.append({"type": "message", "role": "assistant", "content": m.text})
            out.extend(
                {
                    "type": "function_call",
                    "call_id": c.call_id,
                    "name": c.name,
                    "arguments": c.arguments,
                }
                for c in m.tool_calls
            )
            continue
        if m.role != "user":
            out.append({"type": "message", "role": m.role, "content": m.text})
            continue
        out.append(
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_image", "image_url": p.url, "detail": p.detail}
                    if isinstance(p, ImagePart)
                    else {"type": "input_text", "text": p.text}
                    for p in m.content
                ],
            }
        )
    return out


def responses_body(request: ModelRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "input": responses_input(request.messages),
        "stream": True,
        "store": False,
    }
    tools = [
        {
            "type": "function",
            "name": t.name,
            "description": t.description,
            "parameters": t.parameters,
            # Responses makes function tools strict unless told otherwise.
            "strict": bool(t.strict),
        }
        for t in request.tools
    ]
    body.update(tool_fields(request, tools, lambda name: {"type": "function", "name": name}))
    body.update(sampling(request, "max_output_tokens"))
    return body


class ResponsesUpstream(HttpDriver):
    path = "/responses"

    def body(self, request: ModelRequest) -> dict[str, Any]:
        return responses_body(request)

    async def _events(self, events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[ModelEvent]:
        calls: dict[int, str] = {}  # output_index -> the arguments seen so far
        usage = Usage()
        reason = "stop"
        ended = False
        async with aclosing(events):  # type: ignore[type-var]
            async for event in events:
                kind = event.get("type")
                if kind == "response.output_text.delta":
                    yield TextDelta(str(event.get("delta", "")))
                elif kind in ("response.output_item.added", "response.output_item.done"):
                    item = event.get("item") or {}
                    if item.get("type") != "function_call":
                        continue
                    index = int(event.get("output_index", 0))
                    if index not in calls:
                        calls[index] = ""
                        yield ToolCallStarted(
                            index, str(item.get("call_id")), str(item.get("name"))
                        )
                    rest = str(item.get("arguments") or "")[len(calls[index]) :]
                    if kind.endswith(".done") and rest:
                        calls[index] += rest
                        yield ToolCallDelta(index, rest)
                elif kind == "response.function_call_arguments.delta":
                    index = int(event.get("output_index", 0))
                    delta = str(event.get("delta", ""))
                    calls[index] = calls.get(index, "") + delta
                    yield ToolCallDelta(index, delta)
                elif kind in ("response.completed", "response.incomplete"):
                    ended = True
                    response = event.get("response") or {}
                    usage = _usage(response.get("usage"))
                    details = response.get("incomplete_details") or {}
                    if details.get("reason") == "max_output_tokens":
                        reason = "length"
                    elif details.get("reason") == "content_filter":
                        reason = "content_filter"
                elif kind == "response.failed":
                    error = (event.get("response") or {}).get("error") or {}
                    raise UpstreamError(
                        f"the model upstream failed: {error.get('message', 'unknown')}"
                    )
        if not ended:
            raise UpstreamError("the model upstream's stream ended before response.completed")
        if calls and reason == "stop":
            reason = "tool_calls"
        yield Finished(reason, usage)  # type: ignore[arg-type]


def _usage(u: Any) -> Usage:
    if not isinstance(u, dict):
        return Usage()
    input_details = u.get("input_tokens_details") or {}
    output_details = u.get("output_tokens_details") or {}
    return Usage(
        input_tokens=int(u.get("input_tokens") or 0),
        output_tokens=int(u.get("output_tokens") or 0),
        cached_tokens=int(input_details.get("cached_tokens") or 0),
        reasoning_tokens=int(output_details.get("reasoning_tokens") or 0),
    )
