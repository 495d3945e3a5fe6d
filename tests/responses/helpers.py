"""What the Responses tests share: tool parameters and scripted calls."""

from __future__ import annotations

import json
from typing import Any

from tests.responses.scripted_upstream import ToolCall

MODEL = "scripted-model"
CI_AUTO: dict[str, Any] = {"type": "code_interpreter", "container": {"type": "auto"}}
SHELL_AUTO: dict[str, Any] = {"type": "shell", "environment": {"type": "container_auto"}}
OUTPUTS = ["code_interpreter_call.outputs"]
WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
"""A client's own function tool, in the Responses shape."""


def python(code: str, call_id: str | None = None) -> ToolCall:
    return ToolCall("python", json.dumps({"code": code}), call_id)


def shell(*commands: str, **extra: Any) -> ToolCall:
    return ToolCall("shell", json.dumps({"commands": list(commands), **extra}))


def chat_tools(body: dict[str, Any]) -> list[str]:
    """The function names an upstream chat request offered."""
    return [t["function"]["name"] for t in body.get("tools", [])]
