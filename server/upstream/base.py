"""The model upstream's seam: a conversation with function tools goes out, text and tool
calls stream back. Drivers translate it to one upstream dialect each (chat.py, responses.py);
the Responses tool loop (services/responses/) knows only these types."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

# ---- the conversation -------------------------------------------------------------------


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    url: str
    """An http(s) or data: URL."""
    detail: str = "auto"


Part = TextPart | ImagePart


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str
    """The JSON text of the arguments, as the model wrote it."""


@dataclass
class Message:
    """One turn of the conversation. Tool results are role "tool" with call_id set."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: list[Part] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    call_id: str | None = None

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(frozen=True)
class FunctionTool:
    name: str
    description: str | None
    parameters: dict[str, Any]
    strict: bool | None = None


ToolChoice = Literal["auto", "none", "required"] | str
"""auto, none, required, or the name of the one function the model must call."""


@dataclass(frozen=True)
class ModelRequest:
    model: str
    messages: list[Message]
    tools: list[FunctionTool]
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None


# ---- what streams back ------------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    index: int
    call_id: str
    name: str


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    arguments: str
    """The next piece of the call's JSON arguments."""


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_tokens + other.cached_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


@dataclass(frozen=True)
class Finished:
    """The last event of a stream."""

    reason: Literal["stop", "tool_calls", "length", "content_filter"]
    usage: Usage


ModelEvent = TextDelta | ToolCallStarted | ToolCallDelta | Finished


AUTH = frozenset({401, 403, 407})


class UpstreamError(Exception):
    """The upstream answered with an error status (status) or could not be used (status None:
    unreachable, timed out, a broken stream). The message never holds the upstream's key."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    @property
    def passes_through(self) -> bool:
        """A client error (unknown model, bad request) the caller should see as it is; the
        upstream refusing localbox's own key (401, 403) is the operator's to fix, not the
        client's, and is reported as a failure."""
        return self.status is not None and 400 <= self.status < 500 and self.status not in AUTH


class ModelUpstream(Protocol):
    """One OpenAI-compatible model server."""

    async def open(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Send the request and return its events once the upstream has accepted it: an
        error status raises UpstreamError here, before any event. The iterator ends with
        Finished, or raises UpstreamError; closing it (aclose) ends the upstream request."""
        ...

    async def close(self) -> None: ...
