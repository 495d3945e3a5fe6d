"""OpenAI's shapes for what a turn returns: the Response object and its output items."""

from __future__ import annotations

import copy
from typing import Any

from server.services.responses.request import INCLUDE_CI_OUTPUTS, CreateResponse
from server.upstream import Usage

Item = dict[str, Any]


def response_object(
    response_id: str, req: CreateResponse, created_at: int, status: str = "in_progress"
) -> dict[str, Any]:
    """A Response with every field the SDKs read; output and usage are filled in later.

    Fields follow the spec's Response schema: the required ones always (null where it allows),
    the optional ones only with a value (usage once the turn ends, user when given)."""
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": req.max_tool_calls,
        "model": req.model,
        "output": [],
        "parallel_tool_calls": req.parallel_tool_calls,
        "previous_response_id": req.previous_response_id,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": req.tool_choice,
        "tools": [echoed_tool(t) for t in req.tools],
        "top_logprobs": 0,
        "top_p": 1.0 if req.top_p is None else req.top_p,
        "truncation": "disabled",
        "metadata": req.metadata,
    }
    if req.user is not None:
        response["user"] = req.user
    return response


def echoed_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A request's tool as the Response lists it: a function tool has the fields the spec
    requires there (parameters and strict: null when the request left them out)."""
    if tool.get("type") == "function":
        return {**tool, "parameters": tool.get("parameters"), "strict": tool.get("strict")}
    return tool


UPSTREAM_ERROR = "upstream_error"
"""The code of a response that failed upstream: not in the spec's enum of codes (which knows
no upstream), on purpose, so that a client can tell the model's server from localbox."""


def upstream_error(message: str) -> dict[str, Any]:
    """A Response's error for a failed upstream."""
    return {"code": UPSTREAM_ERROR, "message": message}


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        # The spec requires cache_write_tokens; no upstream localbox speaks reports them.
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def message_item(item_id: str, status: str = "in_progress") -> Item:
    return {"id": item_id, "type": "message", "status": status, "content": [], "role": "assistant"}


def output_text(text: str = "", annotations: list[dict[str, Any]] | None = None) -> Item:
    return {"type": "output_text", "annotations": annotations or [], "logprobs": [], "text": text}


def code_interpreter_item(item_id: str, container_id: str) -> Item:
    return {
        "id": item_id,
        "type": "code_interpreter_call",
        "status": "in_progress",
        "code": "",
        "container_id": container_id,
        "outputs": None,
    }


def shell_call_item(item_id: str, call_id: str, container_id: str) -> Item:
    return {
        "id": item_id,
        "type": "shell_call",
        "call_id": call_id,
        "action": {"commands": [], "timeout_ms": None, "max_output_length": None},
        "status": "in_progress",
        "environment": {"type": "container_reference", "container_id": container_id},
    }


def shell_output_item(item_id: str, call_id: str, max_output_length: int | None) -> Item:
    return {
        "id": item_id,
        "type": "shell_call_output",
        "call_id": call_id,
        "status": "in_progress",
        "output": [],
        "max_output_length": max_output_length,
    }


def function_call_item(item_id: str, call_id: str, name: str) -> Item:
    return {
        "id": item_id,
        "type": "function_call",
        "status": "in_progress",
        "arguments": "",
        "call_id": call_id,
        "name": name,
    }


def container_file_citation(
    container_id: str, file_id: str, filename: str, start: int, end: int
) -> dict[str, Any]:
    return {
        "type": "container_file_citation",
        "container_id": container_id,
        "file_id": file_id,
        "filename": filename,
        "start_index": start,
        "end_index": end,
    }


STATUS_REQUIRED = frozenset(
    {
        "code_interpreter_call",
        "computer_call",
        "computer_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
        "function_call",
        "function_call_output",
        "shell_call",
        "shell_call_output",
    }
)
"""Item types whose listed (resource) form requires a status, which input items may lack."""
NULLABLE_REQUIRED = {
    "code_interpreter_call": ("code", "outputs"),
    "shell_call": ("environment",),
    "shell_call_output": ("max_output_length",),
}
"""Fields the spec requires but allows null, which input items may lack."""


def shown_item(item: Item, include: list[str]) -> Item:
    """The item as the client asked to see it: code interpreter outputs only when included.

    Items localbox made are complete already; items a client sent as input are completed to
    the spec's resource form (a status, the required fields that may be null, the parts of an
    assistant message's text), as the input items list shows them."""
    kind = item.get("type")
    if isinstance(kind, str) and _incomplete(item, kind):
        item = _completed_input(item, kind)
    if kind == "code_interpreter_call" and INCLUDE_CI_OUTPUTS not in include:
        return {**item, "outputs": None}
    return item


def _incomplete(item: Item, kind: str) -> bool:
    if kind in STATUS_REQUIRED and "status" not in item:
        return True
    if any(key not in item for key in NULLABLE_REQUIRED.get(kind, ())):
        return True
    return kind == "message" and any(
        isinstance(part, dict)
        and (
            (part.get("type") == "output_text" and not {"annotations", "logprobs"} <= set(part))
            or (part.get("type") == "input_image" and "detail" not in part)
        )
        for part in item.get("content") or []
    )


def _completed_input(item: Item, kind: str) -> Item:
    done = dict(item)
    if kind in STATUS_REQUIRED:
        done.setdefault("status", "completed")
    for key in NULLABLE_REQUIRED.get(kind, ()):
        done.setdefault(key, None)
    if kind == "message" and isinstance(done.get("content"), list):
        done["content"] = [_completed_part(part) for part in done["content"]]
    return done


def _completed_part(part: Any) -> Any:
    if not isinstance(part, dict):
        return part
    if part.get("type") == "output_text":
        return {"annotations": [], "logprobs": [], **part}
    if part.get("type") == "input_image":
        return {"detail": "auto", **part}
    return part


OPTIONAL_NOT_NULL = ("usage", "user")
"""Response fields the spec makes optional but not nullable: left out when they are null."""
NOT_IN_SPEC = ("store",)
"""Fields responses stored by earlier versions carry that the spec's Response does not have."""


def shown_response(response: dict[str, Any], include: list[str]) -> dict[str, Any]:
    shown = {
        k: v
        for k, v in response.items()
        if k not in NOT_IN_SPEC and not (v is None and k in OPTIONAL_NOT_NULL)
    }
    shown["output"] = [shown_item(i, include) for i in response["output"]]
    shown["tools"] = [echoed_tool(t) for t in response["tools"]]
    usage = shown.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("input_tokens_details"), dict):
        details = usage["input_tokens_details"]
        if "cache_write_tokens" not in details:
            shown["usage"] = {**usage, "input_tokens_details": {**details, "cache_write_tokens": 0}}
    return shown


def snapshot(value: Any) -> Any:
    """A copy that later changes to the turn's state do not reach (events are sent later)."""
    return copy.deepcopy(value)
