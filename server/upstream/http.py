"""The HTTP side both drivers share: one pooled httpx client per upstream, requests whose
answer streams back as server-sent events (httpx-sse reads them), retries of what an
OpenAI-compatible server means to be retried, and every failure as an UpstreamError."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from httpx_sse import EventSource

from server.upstream.base import ModelEvent, ModelRequest, UpstreamError

RETRIED = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_ERROR_BODY = 64 << 10


def shown_url(base_url: str) -> str:
    """The base URL without any user:password part, for messages and logs."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _error_message(status: int, raw: bytes) -> tuple[str, str | None]:
    """OpenAI's {"error": {"message", "code"}}, or what other servers put in its place."""
    try:
        body: Any = json.loads(raw)
    except ValueError:
        text = raw.decode(errors="replace").strip()[:500]
        return text or f"HTTP {status}", None
    inner = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(inner, dict):
        message = inner.get("message") or inner.get("detail")
        code = inner.get("code")
        if isinstance(message, str) and message:
            return message, code if isinstance(code, str) else None
    if isinstance(inner, str) and inner:
        return inner, None
    return f"HTTP {status}", None


class UpstreamHttp:
    """POSTs to one upstream; the answers' events are parsed JSON objects."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float, max_retries: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        headers = {"accept": "text/event-stream"}
        if api_key:  # servers such as Ollama need none: then no Authorization header at all
            headers["authorization"] = f"Bearer {api_key}"
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,
            trust_env=False,
        )

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Send the request; once the upstream has accepted it, its events. An error status
        raises here, before any event."""
        response = await self._send(path, body)
        return self._events(response)

    async def _send(self, path: str, body: dict[str, Any]) -> httpx.Response:
        url = f"{self.base_url}{path}"
        content = json.dumps(body, ensure_ascii=False).encode()
        attempt = 0
        while True:
            try:
                request = self._client.build_request(
                    "POST", url, content=content, headers={"content-type": "application/json"}
                )
                response = await self._client.send(request, stream=True)
            except httpx.TimeoutException:
                error = UpstreamError(f"the model upstream timed out after {self.timeout:g} s")
            except httpx.HTTPError:
                error = UpstreamError(
                    f"the model upstream at {shown_url(self.base_url)} could not be reached"
                )
            else:
                if response.status_code < 400:
                    return response
                raw = await _read_capped(response)
                message, code = _error_message(response.status_code, raw)
                error = UpstreamError(message, response.status_code, code)
            if attempt >= self.max_retries or (
                error.status is not None and error.status not in RETRIED
            ):
                raise error
            await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
            attempt += 1

    async def _events(self, response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
        try:
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                # A server that ignored "stream": its whole answer as the one event.
                yield _json_object(await _read_capped(response, 64 << 20))
                return
            async for sse in EventSource(response).aiter_sse():
                if sse.data == "[DONE]":
                    return
                if not sse.data:
                    continue
                data = _json_object(sse.data.encode())
                error = data if "error" in (sse.event, data.get("type")) else data.get("error")
                if error:  # an error in the middle of the stream (both dialects' shapes)
                    message = error.get("message") if isinstance(error, dict) else str(error)
                    raise UpstreamError(f"the model upstream failed: {message}")
                yield data
        except httpx.TimeoutException:
            raise UpstreamError(f"the model upstream timed out after {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the model upstream's answer broke off: {exc}") from None
        finally:
            await response.aclose()

    async def close(self) -> None:
        await self._client.aclose()


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise UpstreamError("the model upstream sent something that is not JSON") from None
    if not isinstance(data, dict):
        raise UpstreamError("the model upstream sent JSON that is not an object")
    return data


async def _read_capped(response: httpx.Response, limit: int = MAX_ERROR_BODY) -> bytes:
    data = b""
    try:
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > limit:
                break
    except httpx.HTTPError:
        pass
    finally:
        await response.aclose()
    return data[:limit]


class HttpDriver:
    """What both dialects' drivers share: one UpstreamHttp, a path and a body per request."""

    path: str

    def __init__(
        self, base_url: str, api_key: str, *, timeout: float = 300.0, max_retries: int = 2
    ) -> None:
        self._http = UpstreamHttp(base_url, api_key, timeout=timeout, max_retries=max_retries)

    def body(self, request: ModelRequest) -> dict[str, Any]:
        raise NotImplementedError

    async def open(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        return self._events(await self._http.stream(self.path, self.body(request)))

    def _events(self, answer: AsyncIterator[dict[str, Any]]) -> AsyncIterator[ModelEvent]:
        raise NotImplementedError

    async def close(self) -> None:
        await self._http.close()


def sampling(request: ModelRequest, max_tokens_key: str) -> dict[str, Any]:
    """The request's sampling settings that were given, under the dialect's names."""
    given = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        max_tokens_key: request.max_output_tokens,
    }
    return {k: v for k, v in given.items() if v is not None}


def tool_fields(
    request: ModelRequest, tools: list[dict[str, Any]], named: Callable[[str], dict[str, Any]]
) -> dict[str, Any]:
    """tools, tool_choice (named: the dialect's way to name the one function to call) and
    parallel_tool_calls, when there are tools."""
    if not tools:
        return {}
    choice = request.tool_choice
    fields: dict[str, Any] = {
        "tools": tools,
        "tool_choice": choice if choice in ("auto", "none", "required") else named(choice),
    }
    if request.parallel_tool_calls is not None:
        fields["parallel_tool_calls"] = request.parallel_tool_calls
    return fields
