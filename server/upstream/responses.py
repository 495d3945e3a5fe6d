"""The Responses driver: function tools over an upstream's own /responses (OpenAI, or a
server that implements it). The conversation is sent whole each time (store: false)."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
from server.upstream.openai_client import make_client, request_headers, translated_errors


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
    if request.tools:
        body["tools"] = [
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
        choice = request.tool_choice
        body["tool_choice"] = (
            choice
            if choice in ("auto", "none", "required")
            else {"type": "function", "name": choice}
        )
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    for key, value in (
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("max_output_tokens", request.max_output_tokens),
    ):
        if value is not None:
            body[key] = value
    return body


class ResponsesUpstream:
    def __init__(
        self, base_url: str, api_key: str, *, timeout: float = 300.0, max_retries: int = 2
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._client = make_client(base_url, api_key, timeout=timeout, max_retries=max_retries)
        self._headers = request_headers(api_key)

    async def open(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        body = responses_body(request)
        with translated_errors(self.base_url, self.timeout):
            stream = await self._client.responses.create(**body, extra_headers=self._headers)
        return self._events(stream)

    async def _events(self, stream: Any) -> AsyncIterator[ModelEvent]:
        calls: dict[int, str] = {}  # output_index -> the arguments seen so far
        usage = Usage()
        reason = "stop"
        ended = False
        try:
            with translated_errors(self.base_url, self.timeout):
                async for event in stream:
                    kind = event.type
                    if kind == "response.output_text.delta":
                        yield TextDelta(event.delta)
                    elif kind in ("response.output_item.added", "response.output_item.done"):
                        item = event.item
                        if item.type != "function_call":
                            continue
                        index = event.output_index
                        if index not in calls:
                            calls[index] = ""
                            yield ToolCallStarted(index, item.call_id, item.name)
                        rest = (item.arguments or "")[len(calls[index]) :]
                        if kind.endswith(".done") and rest:
                            calls[index] += rest
                            yield ToolCallDelta(index, rest)
                    elif kind == "response.function_call_arguments.delta":
                        calls[event.output_index] = calls.get(event.output_index, "") + event.delta
                        yield ToolCallDelta(event.output_index, event.delta)
                    elif kind in ("response.completed", "response.incomplete"):
                        ended = True
                        response = event.response
                        usage = _usage(response.usage)
                        details = response.incomplete_details
                        if details is not None and details.reason == "max_output_tokens":
                            reason = "length"
                        elif details is not None and details.reason == "content_filter":
                            reason = "content_filter"
                    elif kind == "response.failed":
                        error = event.response.error
                        raise UpstreamError(
                            f"the model upstream failed: {error.message if error else 'unknown'}"
                        )
        finally:
            await stream.close()
        if not ended:
            raise UpstreamError("the model upstream's stream ended before response.completed")
        if calls and reason == "stop":
            reason = "tool_calls"
        yield Finished(reason, usage)  # type: ignore[arg-type]

    async def close(self) -> None:
        await self._client.close()


def _usage(u: Any) -> Usage:
    if u is None:
        return Usage()
    input_details = getattr(u, "input_tokens_details", None)
    output_details = getattr(u, "output_tokens_details", None)
    return Usage(
        input_tokens=u.input_tokens or 0,
        output_tokens=u.output_tokens or 0,
        cached_tokens=(input_details and input_details.cached_tokens) or 0,
        reasoning_tokens=(output_details and output_details.reasoning_tokens) or 0,
    )
