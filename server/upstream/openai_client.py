"""The HTTP client both drivers share (the openai SDK: its SSE parsing, timeouts and
errors), and the translation of its failures into UpstreamError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai

from server.upstream.base import UpstreamError


def make_client(
    base_url: str, api_key: str, *, timeout: float, max_retries: int
) -> openai.AsyncOpenAI:
    # The SDK insists on a key: without one, it gets a stand-in that request_headers() keeps
    # from being sent.
    return openai.AsyncOpenAI(
        base_url=base_url,
        api_key=api_key or "none",
        organization="",
        project="",
        timeout=timeout,
        max_retries=max_retries,
    )


def request_headers(api_key: str) -> dict[str, Any]:
    """Headers for each request: without a key, no Authorization header at all (servers
    such as Ollama need none)."""
    return {} if api_key else {"Authorization": openai.Omit()}


def shown_url(base_url: str) -> str:
    """The base URL without any user:password part, for messages and logs."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _error_message(exc: openai.APIStatusError) -> tuple[str, str | None]:
    body: Any = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            message = inner.get("message") or inner.get("detail")
            code = inner.get("code")
            if isinstance(message, str) and message:
                return message, code if isinstance(code, str) else None
        elif isinstance(inner, str) and inner:
            return inner, None
    text = exc.response.text[:500] if exc.response is not None else ""
    return text or exc.message, None


@contextmanager
def translated_errors(base_url: str, timeout: float) -> Iterator[None]:
    """Any failure of the SDK as UpstreamError: a status answer keeps its status."""
    try:
        yield
    except openai.APIStatusError as exc:
        message, code = _error_message(exc)
        raise UpstreamError(message, exc.status_code, code) from None
    except openai.APITimeoutError:
        raise UpstreamError(f"the model upstream timed out after {timeout:g} s") from None
    except openai.APIConnectionError:
        raise UpstreamError(
            f"the model upstream at {shown_url(base_url)} could not be reached"
        ) from None
    except openai.APIError as exc:  # an error in the middle of a stream
        raise UpstreamError(f"the model upstream failed: {exc.message}") from None
    except Exception as exc:  # a broken or malformed stream (the SDK's transport errors)
        raise UpstreamError(f"the model upstream sent a broken answer: {exc}") from None
