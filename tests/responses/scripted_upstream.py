"""A stand-in upstream model: a real OpenAI-compatible HTTP server that answers from a script.

No model runs on the test machines, so the tests point localbox (or the openai SDK) at this
server instead. Each POST to ``/v1/chat/completions`` or ``/v1/responses`` takes the next
step of the script and answers it in OpenAI's shapes, streamed (``"stream": true``) or not:

* ``Turn`` - an assistant answer: text and/or function calls, with usage and finish reason;
* ``Fail`` - an HTTP error with OpenAI's error body;
* ``Hang`` - a stall (after the headers and the first event, for streams), then an empty turn;
* a callable - given the ``Received`` request, it returns one of the above.

Every POST is recorded in ``received``; answers whose client went away before their end
(mostly streams, and stalls the client gave up on) are counted in ``disconnects``. Standard
library only.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeAlias, cast

MODEL_ID = "scripted-model"
CHAT_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"
MODELS_PATH = "/v1/models"

_POLL = 0.02
"""How often a stall looks for the client closing the connection (and for stop())."""


@dataclass(frozen=True)
class ToolCall:
    """One function call the assistant makes."""

    name: str
    arguments: str
    """The JSON text of the arguments, sent as-is (it may be invalid JSON on purpose)."""
    call_id: str | None = None
    """Defaults to ``call_<n>``, n counting the calls this server has answered with."""


@dataclass(frozen=True)
class Turn:
    """An assistant answer."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: tuple[int, int] = (10, 5)
    """(prompt/input tokens, completion/output tokens)."""
    finish_reason: str | None = None
    """Defaults to "tool_calls" when there are tool calls, else "stop"; "length" is allowed."""


@dataclass(frozen=True)
class Fail:
    """An HTTP error answer with OpenAI's error body (before any streamed byte)."""

    status: int
    message: str = "scripted failure"


@dataclass(frozen=True)
class Hang:
    """Accept the request, send the headers and first event (for streams), then stall.

    After ``seconds`` the answer goes on as an empty-text ``Turn``. A client that closes the
    connection meanwhile is counted in ``ScriptedUpstream.disconnects``."""

    seconds: float = 60.0


def _parts_text(content: Any) -> str:
    """A message content as text: a string as-is, a list of parts as their texts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "".join(texts)
    return str(content)


@dataclass
class Received:
    """One POST the server received."""

    path: str
    """"/v1/chat/completions" or "/v1/responses" (or whatever path was posted to)."""
    headers: dict[str, str]
    """Lower-cased names."""
    body: dict[str, Any]
    """The parsed JSON request ({} when it was not a JSON object)."""

    def _items(self) -> list[dict[str, Any]]:
        key = "messages" if self.path == CHAT_PATH else "input"
        items = self.body.get(key)
        if not isinstance(items, list):
            return []
        return [item for item in items if isinstance(item, dict)]

    def tool_outputs(self) -> list[str]:
        """The tool results the request carries, in order: the contents of role "tool"
        messages (Chat Completions) or the outputs of function_call_output items (Responses)."""
        if self.path == CHAT_PATH:
            return [_parts_text(m.get("content")) for m in self._items() if m.get("role") == "tool"]
        return [
            _parts_text(item.get("output"))
            for item in self._items()
            if item.get("type") == "function_call_output"
        ]

    def last_user_text(self) -> str:
        """The text of the last user message ("" when there is none)."""
        if self.path != CHAT_PATH and isinstance(self.body.get("input"), str):
            return cast(str, self.body["input"])
        for item in reversed(self._items()):
            if item.get("role") == "user" and item.get("type", "message") == "message":
                return _parts_text(item.get("content"))
        return ""


Outcome: TypeAlias = Turn | Fail | Hang
Step: TypeAlias = Turn | Fail | Hang | Callable[[Received], Outcome]


def _error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


class _Server(ThreadingHTTPServer):
    """Serves each connection in a daemon thread, and keeps the threads (and their sockets) so
    that closing can cut the connections still open and join the threads."""

    daemon_threads = True

    def __init__(self, upstream: ScriptedUpstream) -> None:
        self.upstream = upstream
        self.workers: list[threading.Thread] = []
        self.open_requests: set[socket.socket] = set()
        self.workers_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        worker = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="scripted-upstream-request",
            daemon=True,
        )
        with self.workers_lock:
            self.workers = [w for w in self.workers if w.is_alive()]
            self.workers.append(worker)
            self.open_requests.add(request)
        worker.start()

    def shutdown_request(self, request: Any) -> None:
        with self.workers_lock:
            self.open_requests.discard(request)
        super().shutdown_request(request)

    def close_workers(self, timeout: float) -> None:
        """Cut the connections still open (a client that never sends its request would keep
        its thread reading), then join the threads."""
        with self.workers_lock:
            workers = list(self.workers)
            self.workers.clear()
            requests = list(self.open_requests)
        for request in requests:
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))


class _ClientGone(Exception):
    """The client closed the connection before the answer's end."""


class _Stopped(Exception):
    """The server is stopping: the answer is abandoned."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ScriptedUpstream/1"
    timeout = 30

    @property
    def upstream(self) -> ScriptedUpstream:
        return cast(_Server, self.server).upstream

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- plumbing -------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            raise _ClientGone from None

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            raise _ClientGone from None
        self._write(data)

    def _send_error(self, status: int, message: str, code: str | None = None) -> None:
        self._send_json(status, _error_body(status, message, code))

    def _start_stream(self) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            raise _ClientGone from None

    def _stall(self, seconds: float) -> None:
        """Wait ``seconds``, watching the socket for the client closing it."""
        deadline = time.monotonic() + seconds
        stopping = self.upstream._stopping
        sock = self.connection
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if stopping.is_set():
                raise _Stopped
            readable, _, _ = select.select([sock], [], [], min(_POLL, left))
            if not readable:
                continue
            try:
                peeked = sock.recv(1, socket.MSG_PEEK)
            except (ConnectionResetError, ConnectionAbortedError, TimeoutError, BlockingIOError):
                raise _ClientGone from None
            if not peeked:
                raise _ClientGone
            # The client sent more bytes (nothing it should do): not a close, keep waiting.
            time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))

    # --- requests -------------------------------------------------------------------------

    def _authorized(self) -> bool:
        key = self.upstream.api_key
        if key is None or self.headers.get("Authorization", "") == f"Bearer {key}":
            return True
        self._send_error(401, "Incorrect API key provided.", "invalid_api_key")
        return False

    def do_GET(self) -> None:
        try:
            if not self._authorized():
                return
            if self.path.split("?")[0] == MODELS_PATH:
                model = {
                    "id": MODEL_ID,
                    "object": "model",
                    "created": 0,
                    "owned_by": "localbox-tests",
                }
                self._send_json(200, {"object": "list", "data": [model]})
            else:
                self._send_error(404, f"Unknown path: GET {self.path}")
        except _ClientGone:
            pass

    def do_POST(self) -> None:
        upstream = self.upstream
        path = self.path.split("?")[0]
        try:
            raw = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            with contextlib.suppress(_ClientGone):
                self._send_error(400, "The request body could not be read.")
            return
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = None
        body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        headers = {name.lower(): value for name, value in self.headers.items()}
        received = Received(path=path, headers=headers, body=body)
        upstream._record(received)
        try:
            if not self._authorized():
                return
            if path not in (CHAT_PATH, RESPONSES_PATH):
                self._send_error(404, f"Unknown path: POST {path}")
                return
            if not isinstance(parsed, dict):
                self._send_error(400, "The request body is not a JSON object.")
                return
            step = upstream._next_step()
            if step is None:
                self._send_error(500, "script exhausted", "script_exhausted")
                return
            if callable(step):
                try:
                    step = step(received)
                except Exception as exc:
                    self._send_error(500, f"scripted step raised {exc!r}", "script_error")
                    return
            if upstream.delay > 0:
                self._stall(upstream.delay)
            self._answer(received, step)
        except _ClientGone:
            if not upstream._stopping.is_set():
                upstream._count_disconnect()
        except _Stopped:
            pass
        finally:
            self.close_connection = True

    def _answer(self, received: Received, step: Outcome) -> None:
        if isinstance(step, Fail):
            self._send_error(step.status, step.message)
            return
        hang = step.seconds if isinstance(step, Hang) else None
        turn = step if isinstance(step, Turn) else Turn()
        upstream = self.upstream
        calls = tuple(
            call if call.call_id else ToolCall(call.name, call.arguments, upstream._call_id())
            for call in turn.tool_calls
        )
        turn = Turn(turn.text, calls, turn.usage, turn.finish_reason)
        chat = received.path == CHAT_PATH
        if not received.body.get("stream"):
            if hang is not None:
                self._stall(hang)
            if chat:
                self._send_json(200, _chat_completion(received.body, turn))
            else:
                self._send_json(200, _response(received.body, turn)[0])
            return
        if chat:
            frames = _chat_stream(received.body, turn, upstream.chunk_size)
        else:
            frames = _responses_stream(received.body, turn, upstream.chunk_size)
        self._start_stream()
        for i, frame in enumerate(frames):
            self._write(frame)
            if i == 0 and hang is not None:
                self._stall(hang)


# --- answers in OpenAI's shapes ---------------------------------------------------------------


def _finish_reason(turn: Turn) -> str:
    if turn.finish_reason:
        return turn.finish_reason
    return "tool_calls" if turn.tool_calls else "stop"


def _chat_usage(turn: Turn) -> dict[str, int]:
    prompt, completion = turn.usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chat_completion(request: dict[str, Any], turn: Turn) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": turn.text or None,
        "refusal": None,
    }
    if turn.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in turn.tool_calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", MODEL_ID),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish_reason(turn),
                "logprobs": None,
            }
        ],
        "usage": _chat_usage(turn),
    }


def _chat_stream(request: dict[str, Any], turn: Turn, chunk_size: int) -> Iterator[bytes]:
    ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    model = request.get("model", MODEL_ID)
    options = request.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        data: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            ],
        }
        if include_usage:
            data["usage"] = None
        return _sse(data)

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(turn.text, chunk_size):
        yield chunk({"content": piece})
    for index, call in enumerate(turn.tool_calls):
        first = {
            "index": index,
            "id": call.call_id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        yield chunk({"tool_calls": [first]})
        for piece in _pieces(call.arguments, chunk_size):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, _finish_reason(turn))
    if include_usage:
        usage = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _chat_usage(turn),
        }
        yield _sse(usage)
    yield b"data: [DONE]\n\n"


@dataclass
class _Items:
    """The output items of a Responses answer, with their ids fixed once."""

    message_id: str = field(default_factory=lambda: f"msg_{uuid.uuid4().hex[:24]}")
    call_ids: list[str] = field(default_factory=list)


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(ident: str, text: str, status: str) -> dict[str, Any]:
    content = [_text_part(text)] if status == "completed" else []
    return {
        "type": "message",
        "id": ident,
        "role": "assistant",
        "status": status,
        "content": content,
    }


def _call_item(ident: str, call: ToolCall, arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": ident,
        "call_id": call.call_id,
        "name": call.name,
        "arguments": arguments,
        "status": status,
    }


def _response(
    request: dict[str, Any], turn: Turn, ident: str | None = None
) -> tuple[dict[str, Any], _Items]:
    """The final Response object (and the ids its items got)."""
    items = _Items(call_ids=[f"fc_{uuid.uuid4().hex[:24]}" for _ in turn.tool_calls])
    output: list[dict[str, Any]] = []
    if turn.text:
        output.append(_message_item(items.message_id, turn.text, "completed"))
    for call_ident, call in zip(items.call_ids, turn.tool_calls, strict=True):
        output.append(_call_item(call_ident, call, call.arguments, "completed"))
    incomplete = _finish_reason(turn) == "length"
    input_tokens, output_tokens = turn.usage
    response = _response_shell(request, ident)
    response.update(
        status="incomplete" if incomplete else "completed",
        output=output,
        incomplete_details={"reason": "max_output_tokens"} if incomplete else None,
        usage={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    )
    return response, items


def _response_shell(request: dict[str, Any], ident: str | None = None) -> dict[str, Any]:
    """A Response object in progress: no output, no usage yet."""
    tools = request.get("tools")
    return {
        "id": ident or f"resp_{uuid.uuid4().hex[:24]}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "model": request.get("model", MODEL_ID),
        "output": [],
        "usage": None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "tools": tools if isinstance(tools, list) else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "temperature": None,
        "top_p": None,
        "metadata": {},
    }


def _responses_stream(request: dict[str, Any], turn: Turn, chunk_size: int) -> Iterator[bytes]:
    shell = _response_shell(request)
    final, items = _response(request, turn, ident=shell["id"])
    final["created_at"] = shell["created_at"]
    sequence = 0

    def event(kind: str, **data: Any) -> bytes:
        nonlocal sequence
        payload = {"type": kind, "sequence_number": sequence, **data}
        sequence += 1
        return _sse(payload, kind)

    yield event("response.created", response=shell)
    yield event("response.in_progress", response=shell)
    index = 0
    if turn.text:
        item_id = items.message_id
        yield event(
            "response.output_item.added",
            output_index=index,
            item=_message_item(item_id, "", "in_progress"),
        )
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        yield event("response.content_part.added", **where, part=_text_part(""))
        for piece in _pieces(turn.text, chunk_size):
            yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
        yield event("response.output_text.done", **where, text=turn.text, logprobs=[])
        yield event("response.content_part.done", **where, part=_text_part(turn.text))
        yield event(
            "response.output_item.done",
            output_index=index,
            item=_message_item(item_id, turn.text, "completed"),
        )
        index += 1
    for call_ident, call in zip(items.call_ids, turn.tool_calls, strict=True):
        yield event(
            "response.output_item.added",
            output_index=index,
            item=_call_item(call_ident, call, "", "in_progress"),
        )
        for piece in _pieces(call.arguments, chunk_size):
            yield event(
                "response.function_call_arguments.delta",
                item_id=call_ident,
                output_index=index,
                delta=piece,
            )
        yield event(
            "response.function_call_arguments.done",
            item_id=call_ident,
            output_index=index,
            name=call.name,
            arguments=call.arguments,
        )
        yield event(
            "response.output_item.done",
            output_index=index,
            item=_call_item(call_ident, call, call.arguments, "completed"),
        )
        index += 1
    yield event("response.completed", response=final)


# --- the server -------------------------------------------------------------------------------


class ScriptedUpstream:
    """An OpenAI-compatible model server on 127.0.0.1 that answers from a script.

    ``chunk_size``: streamed text and tool-call arguments come in pieces of at most this many
    characters. ``delay``: seconds to wait before the first byte of every POST's answer.
    ``api_key``: when set, requests without ``Authorization: Bearer <api_key>`` get a 401."""

    def __init__(
        self, *, chunk_size: int = 7, delay: float = 0.0, api_key: str | None = None
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.chunk_size = chunk_size
        self.delay = delay
        self.api_key = api_key
        self.received: list[Received] = []
        self.disconnects = 0
        self._steps: deque[Step] = deque()
        self._lock = threading.Lock()
        self._calls = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> ScriptedUpstream:
        if self._server is not None:
            raise RuntimeError("the scripted upstream is already serving")
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="scripted-upstream",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        if thread is not None:
            thread.join()
        server.close_workers(timeout=10.0)
        server.server_close()
        self._server = None
        self._thread = None

    def __enter__(self) -> ScriptedUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the scripted upstream is not serving: call start() first")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- the script -----------------------------------------------------------------------

    def script(self, *steps: Step) -> None:
        """Replace the queue of steps: each POST takes the next one."""
        with self._lock:
            self._steps = deque(steps)

    def add(self, *steps: Step) -> None:
        """Append steps to the queue."""
        with self._lock:
            self._steps.extend(steps)

    def remaining(self) -> int:
        """How many steps are not consumed yet."""
        with self._lock:
            return len(self._steps)

    # --- used by the handler ----------------------------------------------------------------

    def _next_step(self) -> Step | None:
        with self._lock:
            return self._steps.popleft() if self._steps else None

    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def _count_disconnect(self) -> None:
        with self._lock:
            self.disconnects += 1

    def _call_id(self) -> str:
        with self._lock:
            self._calls += 1
            return f"call_{self._calls}"


__all__ = [
    "Fail",
    "Hang",
    "Received",
    "ScriptedUpstream",
    "Step",
    "ToolCall",
    "Turn",
]
