"""The Chat Completions driver: function tools over /chat/completions, which every
OpenAI-compatible server speaks (Ollama, vLLM, llama.cpp's server, LiteLLM, OpenAI)."""

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
    Usage,
)
from server.upstream.openai_client import make_client, request_headers, translated_errors

_REASONS = {"stop": "stop", "tool_calls": "tool_calls", "function_call": "tool_calls"}


def chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """The conversation as Chat Completions messages."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.call_id, "content": m.text})
        elif m.role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": m.text or None}
            if m.tool_calls:
                msg["tool_calls"] = [
                    {
                        "id": c.call_id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in m.tool_calls
                ]
            out.append(msg)
        elif m.role in ("system", "developer"):
            # "developer" is OpenAI's newer name; most other servers know only "system".
            out.append({"role": "system", "content": m.text})
        elif any(isinstance(p, ImagePart) for p in m.content):
            out.append({"role": "user", "content": [_part(p) for p in m.content]})
        else:
            out.append({"role": "user", "content": m.text})
    return out


def _part(part: Any) -> dict[str, Any]:
    if isinstance(part, ImagePart):
        return {"type": "image_url", "image_url": {"url": part.url, "detail": part.detail}}
    return {"type": "text", "text": part.text}


def chat_body(request: ModelRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": chat_messages(request.messages),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    k: v
                    for k, v in (
                        ("name", t.name),
                        ("description", t.description),
                        ("parameters", t.parameters),
                        ("strict", t.strict),
                    )
                    if v is not None
                },
            }
            for t in request.tools
        ]
        choice = request.tool_choice
        body["tool_choice"] = (
            choice
            if choice in ("auto", "none", "required")
            else {"type": "function", "function": {"name": choice}}
        )
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    for key, value in (
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("max_tokens", request.max_output_tokens),
    ):
        if value is not None:
            body[key] = value
    return body


class ChatCompletionsUpstream:
    def __init__(
        self, base_url: str, api_key: str, *, timeout: float = 300.0, max_retries: int = 2
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._client = make_client(base_url, api_key, timeout=timeout, max_retries=max_retries)
        self._headers = request_headers(api_key)

    async def open(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        body = chat_body(request)
        with translated_errors(self.base_url, self.timeout):
            stream = await self._client.chat.completions.create(**body, extra_headers=self._headers)
        return self._events(stream)

    async def _events(self, stream: Any) -> AsyncIterator[ModelEvent]:
        started: dict[int, str] = {}
        reason: str | None = None
        usage = Usage()
        try:
            with translated_errors(self.base_url, self.timeout):
                async for chunk in stream:
                    if chunk.usage is not None:
                        usage = _usage(chunk.usage)
                    for choice in chunk.choices[:1]:
                        delta = choice.delta
                        if delta is not None and delta.content:
                            yield TextDelta(delta.content)
                        for position, call in enumerate((delta and delta.tool_calls) or []):
                            index = call.index if call.index is not None else position
                            fn = call.function
                            if index not in started:
                                call_id = call.id or f"call_{index}"
                                started[index] = call_id
                                yield ToolCallStarted(index, call_id, (fn and fn.name) or "")
                            if fn is not None and fn.arguments:
                                yield ToolCallDelta(index, fn.arguments)
                        if choice.finish_reason:
                            reason = choice.finish_reason
        finally:
            await stream.close()
        final = _REASONS.get(reason or "", reason)
        if final not in ("stop", "tool_calls", "length", "content_filter"):
            final = "tool_calls" if started else "stop"
        yield Finished(final, usage)  # type: ignore[arg-type]

    async def close(self) -> None:
        await self._client.close()


def _usage(u: Any) -> Usage:
    prompt_details = getattr(u, "prompt_tokens_details", None)
    completion_details = getattr(u, "completion_tokens_details", None)
    return Usage(
        input_tokens=u.prompt_tokens or 0,
        output_tokens=u.completion_tokens or 0,
        cached_tokens=(prompt_details and prompt_details.cached_tokens) or 0,
        reasoning_tokens=(completion_details and completion_details.reasoning_tokens) or 0,
    )
