"""Input items (the client's, a stored response's, replayed ones) as the upstream's
conversation: messages, function calls and their outputs, and localbox's own tool calls
(`code_interpreter_call`, `shell_call`) as the function calls the model made."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.domain import File
from server.errors import InvalidRequest
from server.upstream import ImagePart, Message, Part, TextPart, ToolCall

PYTHON_TOOL = "python"
SHELL_TOOL = "shell"
MAX_INLINE_FILE_BYTES = 32 << 20

# Items that carry nothing the upstream needs (reasoning is the upstream's own business).
SKIPPED = frozenset({"reasoning", "compaction", "local_shell_call", "local_shell_call_output"})


@dataclass(frozen=True)
class InlineFile:
    filename: str
    data: bytes


@dataclass
class Context:
    """The conversation so far, and what the turn's tools need to know of it."""

    messages: list[Message] = field(default_factory=list)
    files: list[File | InlineFile] = field(default_factory=list)
    """Files in this turn's input, to copy into the container as /mnt/data/<filename>."""
    containers: dict[str, str] = field(default_factory=dict)
    """The container each hosted tool last used in the context ("code_interpreter", "shell")."""


FileLookup = Callable[[str, str], File]
"""(file_id, param) -> the Files-API file; raises FileNotFound naming param."""
ImageReader = Callable[[str, str], str]
"""(file_id, param) -> the file's bytes as a data: URL."""


class HistoryBuilder:
    def __init__(self, files: FileLookup, images: ImageReader) -> None:
        self._files = files
        self._images = images
        self.context = Context()

    def add(self, items: list[dict[str, Any]], param: str, *, this_turn: bool) -> None:
        """Append items; this_turn marks the request's own input (its files are copied in)."""
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidRequest("Each input item must be an object.", f"{param}[{i}]")
            self._add(item, f"{param}[{i}]", this_turn)

    def _add(self, item: dict[str, Any], param: str, this_turn: bool) -> None:
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            self._message(item, param, this_turn)
        elif kind == "function_call":
            self._call(
                ToolCall(
                    _str(item, "call_id", param),
                    _str(item, "name", param),
                    _arguments(item.get("arguments")),
                )
            )
        elif kind == "function_call_output":
            self._result(_str(item, "call_id", param), _output_text(item.get("output")))
        elif kind == "code_interpreter_call":
            call_id = _str(item, "id", param)
            code = item.get("code") or ""
            self._call(ToolCall(call_id, PYTHON_TOOL, json.dumps({"code": code})))
            self._result(call_id, _ci_outputs_text(item.get("outputs")))
            if isinstance(item.get("container_id"), str):
                self.context.containers["code_interpreter"] = item["container_id"]
        elif kind == "shell_call":
            action = item.get("action") if isinstance(item.get("action"), dict) else {}
            self._call(ToolCall(_str(item, "call_id", param), SHELL_TOOL, json.dumps(action)))
            env = item.get("environment")
            if isinstance(env, dict) and isinstance(env.get("container_id"), str):
                self.context.containers["shell"] = env["container_id"]
        elif kind == "shell_call_output":
            self._result(_str(item, "call_id", param), shell_output_text(item.get("output")))
        elif kind in SKIPPED:
            return
        else:
            raise InvalidRequest(
                f"Input items of type '{kind}' are not supported by localbox.", f"{param}.type"
            )

    def _message(self, item: dict[str, Any], param: str, this_turn: bool) -> None:
        role = item.get("role")
        if role not in ("user", "system", "developer", "assistant"):
            raise InvalidRequest(
                "role must be one of 'user', 'system', 'developer' or 'assistant'.",
                f"{param}.role",
            )
        content = item.get("content")
        parts: list[Part] = []
        if isinstance(content, str):
            parts.append(TextPart(content))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                parts.extend(self._part(part, f"{param}.content[{j}]", this_turn))
        else:
            raise InvalidRequest("content must be a string or a list of parts.", f"{param}.content")
        messages = self.context.messages
        if role == "assistant" and messages and messages[-1].role == "assistant":
            messages[-1].content.extend(parts)
            return
        messages.append(Message(role=role, content=parts))

    def _part(self, part: Any, param: str, this_turn: bool) -> list[Part]:
        if not isinstance(part, dict):
            raise InvalidRequest("Each content part must be an object.", param)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text"):
            return [TextPart(_str(part, "text", param))]
        if kind == "refusal":
            return [TextPart(str(part.get("refusal", "")))]
        if kind == "input_image":
            detail = part.get("detail") or "auto"
            if isinstance(part.get("image_url"), str):
                return [ImagePart(part["image_url"], detail)]
            if isinstance(part.get("file_id"), str):
                return [ImagePart(self._images(part["file_id"], f"{param}.file_id"), detail)]
            raise InvalidRequest("input_image needs image_url or file_id.", param)
        if kind == "input_file":
            return [TextPart(self._input_file(part, param, this_turn))]
        raise InvalidRequest(f"Content parts of type '{kind}' are not supported.", f"{param}.type")

    def _input_file(self, part: dict[str, Any], param: str, this_turn: bool) -> str:
        if isinstance(part.get("file_id"), str):
            file = self._files(part["file_id"], f"{param}.file_id")
            if this_turn:
                self.context.files.append(file)
            name = file.filename
        elif isinstance(part.get("file_data"), str):
            name = str(part.get("filename") or "upload.bin")
            if this_turn:
                self.context.files.append(InlineFile(name, _inline_bytes(part, param)))
        elif isinstance(part.get("file_url"), str):
            return f"[A file at {part['file_url']} (not downloaded).]"
        else:
            raise InvalidRequest("input_file needs file_id or file_data.", param)
        return f"[The user attached the file {name}; the tools find it at /mnt/data/{name}.]"

    def _call(self, call: ToolCall) -> None:
        messages = self.context.messages
        if messages and messages[-1].role == "assistant":
            messages[-1].tool_calls.append(call)
        else:
            messages.append(Message(role="assistant", tool_calls=[call]))

    def _result(self, call_id: str, text: str) -> None:
        self.context.messages.append(
            Message(role="tool", content=[TextPart(text)], call_id=call_id)
        )


def _str(item: dict[str, Any], key: str, param: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise InvalidRequest(f"Missing required parameter: '{param}.{key}'.", f"{param}.{key}")
    return value


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value or {})


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(
            str(p.get("text", "")) for p in output if isinstance(p, dict) and "text" in p
        )
    return json.dumps(output)


def _ci_outputs_text(outputs: Any) -> str:
    if not isinstance(outputs, list):
        return "(the output of this call is not in the context)"
    texts = []
    for out in outputs:
        if isinstance(out, dict) and out.get("type") == "logs":
            texts.append(str(out.get("logs", "")))
        elif isinstance(out, dict) and out.get("type") == "image":
            texts.append("[an image was shown to the user]")
    return "\n".join(texts) or "(no output)"


def shell_output_text(output: Any) -> str:
    """A shell call's results, one block per command, as the model reads them."""
    if not isinstance(output, list):
        return "(no output)"
    blocks = []
    for out in output:
        if not isinstance(out, dict):
            continue
        outcome = out.get("outcome")
        outcome = outcome if isinstance(outcome, dict) else {}
        if outcome.get("type") == "timeout":
            status = "timed out"
        else:
            status = f"exit code {outcome.get('exit_code')}"
        block = [f"[{status}]"]
        if out.get("stdout"):
            block.append(f"stdout:\n{out['stdout']}")
        if out.get("stderr"):
            block.append(f"stderr:\n{out['stderr']}")
        blocks.append("\n".join(block))
    return "\n\n".join(blocks) or "(no output)"


def _inline_bytes(part: dict[str, Any], param: str) -> bytes:
    data: str = part["file_data"]
    if data.startswith("data:"):
        data = data.partition(",")[2]
    if len(data) > MAX_INLINE_FILE_BYTES * 4 // 3 + 4:
        raise InvalidRequest("file_data is too large.", f"{param}.file_data")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("file_data must be base64.", f"{param}.file_data") from None
