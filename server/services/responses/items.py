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
    """A Response with every field the SDKs read; output and usage are filled in later."""
    return {
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
        "store": req.store,
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": req.tool_choice,
        "tools": req.tools,
        "top_logprobs": 0,
        "top_p": 1.0 if req.top_p is None else req.top_p,
        "truncation": "disabled",
        "usage": None,
        "user": req.user,
        "metadata": req.metadata,
    }


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
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


def shown_item(item: Item, include: list[str]) -> Item:
    """The item as the client asked to see it: code interpreter outputs only when included."""
    if item.get("type") == "code_interpreter_call" and INCLUDE_CI_OUTPUTS not in include:
        return {**item, "outputs": None}
    return item


def shown_response(response: dict[str, Any], include: list[str]) -> dict[str, Any]:
    shown = dict(response)
    shown["output"] = [shown_item(i, include) for i in response["output"]]
    return shown


def snapshot(value: Any) -> Any:
    """A copy that later changes to the turn's state do not reach (events are sent later)."""
    return copy.deepcopy(value)
