"""Model upstreams: the protocol the Responses tool loop speaks, and a driver per dialect.
Plain HTTP (httpx, httpx-sse): the answers are read as the JSON they are."""

from server.upstream.base import (
    Finished,
    FunctionTool,
    ImagePart,
    Message,
    ModelEvent,
    ModelRequest,
    ModelUpstream,
    Part,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolCallStarted,
    UpstreamError,
    Usage,
)

__all__ = [
    "Finished",
    "FunctionTool",
    "ImagePart",
    "Message",
    "ModelEvent",
    "ModelRequest",
    "ModelUpstream",
    "Part",
    "TextDelta",
    "TextPart",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallStarted",
    "UpstreamError",
    "Usage",
    "make_upstream",
]


def make_upstream(
    dialect: str, base_url: str, api_key: str, *, timeout: float, max_retries: int
) -> ModelUpstream:
    """The driver for the dialect ("chat" or "responses")."""
    if dialect == "responses":
        from server.upstream.responses import ResponsesUpstream

        return ResponsesUpstream(base_url, api_key, timeout=timeout, max_retries=max_retries)
    from server.upstream.chat import ChatCompletionsUpstream

    return ChatCompletionsUpstream(base_url, api_key, timeout=timeout, max_retries=max_retries)
