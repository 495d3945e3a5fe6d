"""The Chat Completions driver: function tools over /chat/completions, which every
OpenAI-compatible server speaks (Ollama, vLLM, llama.cpp's server, LiteLLM, OpenAI)."""

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
    Usage,
)
from server.upstream.http import HttpDriver, sampling, tool_fields

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
    tools = [
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
    body.update(
        tool_fields(request, tools, lambda name: {"type": "function", "function": {"name": name}})
    )
    body.update(sampling(request, "max_tokens"))
    return body


class ChatCompletionsUpstream(HttpDriver):
    path = "/chat/completions"

    def body(self, request: ModelRequest) -> dict[str, Any]:
        return chat_body(request)

    async def _events(self, chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[ModelEvent]:
        started: dict[int, str] = {}
        reason: str | None = None
        usage = Usage()
        async with aclosing(chunks):  # type: ignore[type-var]
            async for chunk in chunks:
                if chunk.get("object") == "chat.completion":
                    chunk = _as_chunk(chunk)  # a server that ignored "stream"
                if isinstance(chunk.get("usage"), dict):
                    usage = _usage(chunk["usage"])
                for choice in (chunk.get("choices") or [])[:1]:
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        yield TextDelta(str(delta["content"]))
                    for position, call in enumerate(delta.get("tool_calls") or []):
                        index = call.get("index")
                        index = index if isinstance(index, int) else position
                        fn = call.get("function") or {}
                        if index not in started:
                            call_id = call.get("id") or f"call_{index}"
                            started[index] = call_id
                            yield ToolCallStarted(index, call_id, str(fn.get("name") or ""))
                        if fn.get("arguments"):
                            yield ToolCallDelta(index, str(fn["arguments"]))
                    if choice.get("finish_reason"):
                        reason = choice["finish_reason"]
        final = _REASONS.get(reason or "", reason)
        if final not in ("stop", "tool_calls", "length", "content_filter"):
            final = "tool_calls" if started else "stop"
        yield Finished(final, usage)  # type: ignore[arg-type]


def _as_chunk(completion: dict[str, Any]) -> dict[str, Any]:
    """A whole chat.completion as the one chunk that says the same."""
    choices = []
    for choice in completion.get("choices") or []:
        message = choice.get("message") or {}
        calls = [{**c, "index": i} for i, c in enumerate(message.get("tool_calls") or [])]
        delta = {"content": message.get("content"), "tool_calls": calls}
        choices.append({"delta": delta, "finish_reason": choice.get("finish_reason")})
    return {"choices": choices, "usage": completion.get("usage")}


def _usage(u: dict[str, Any]) -> Usage:
    prompt_details = u.get("prompt_tokens_details") or {}
    completion_details = u.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(u.get("prompt_tokens") or 0),
        output_tokens=int(u.get("completion_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )
