"""The LiteLLM SDK's Responses API against localbox (its openai provider sends /v1/responses
as-is), sync and async, unstreamed and streamed; run by tests/responses/test_clients.py with
the LiteLLM virtualenv's python, after scripting localbox's upstream model: every call is a
python tool call running SCRIPTED_CODE, then the answer SCRIPTED_ANSWER. Prints one line per
completed call."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import litellm

BASE = os.environ["LOCALBOX_BASE_URL"]
KEY = os.environ["LOCALBOX_API_KEY"]
CODE = os.environ["SCRIPTED_CODE"]
ANSWER = os.environ["SCRIPTED_ANSWER"]
REQUEST: dict[str, Any] = {
    "model": "openai/scripted-model",
    "api_base": BASE,
    "api_key": KEY,
    "input": "What is the sum of the squares of 1 to 10? Use python.",
    "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
    "include": ["code_interpreter_call.outputs"],
}


def field(item: Any, name: str) -> Any:
    """An output item's field: LiteLLM gives some items as objects, others as dicts."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def check(response: Any) -> None:
    assert field(response, "status") == "completed", response
    output = field(response, "output")
    assert [field(item, "type") for item in output] == ["code_interpreter_call", "message"], output
    call = output[0]
    assert field(call, "code") == CODE, call
    assert field(call, "status") == "completed", call
    logs = [field(o, "logs") for o in field(call, "outputs") or []]
    assert logs == ["385\n"], call
    texts = [
        field(part, "text")
        for part in field(output[1], "content")
        if field(part, "type") == "output_text"
    ]
    assert "".join(texts) == ANSWER, output[1]


def sync_call() -> None:
    response = litellm.responses(**REQUEST)
    check(response)
    assert response.output_text == ANSWER
    print("responses ok")


async def async_calls() -> None:
    response = await litellm.aresponses(**REQUEST)
    check(response)
    assert response.output_text == ANSWER
    print("aresponses ok")

    stream = await litellm.aresponses(**REQUEST, stream=True)
    types: list[str] = []
    text = ""
    completed: Any = None
    async for event in stream:
        kind = str(getattr(event.type, "value", event.type))
        types.append(kind)
        if kind == "response.output_text.delta":
            text += event.delta
        elif kind == "response.completed":
            completed = event.response
    assert types[0] == "response.created", types
    assert types[-1] == "response.completed", types
    assert text == ANSWER, (text, types)
    check(completed)
    print("aresponses stream ok")


if __name__ == "__main__":
    sync_call()
    asyncio.run(async_calls())
