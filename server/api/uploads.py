"""Reading uploads: the body-size cap, the three container-file upload shapes, downloads."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import mimetypes
import queue
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar, cast
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.schemas import FileIdBody
from server.errors import (
    ApiError,
    InvalidRequest,
    PayloadTooLarge,
    RequestTooLarge,
    SkillTooLarge,
)

MULTIPART_SLACK = 1 << 20  # room for multipart boundaries and other fields


@dataclass
class Upload:
    """A file part: its client-given name, a readable spooled file and its size."""

    filename: str | None
    file: BinaryIO
    size: int


@dataclass
class FileIdRef:
    file_id: str


UPLOAD_PATH = re.compile(r"^/v1/(?:files|containers/[^/]+/files|skills|skills/[^/]+/versions)/?$")
"""The routes whose multipart bodies carry files: they get the upload cap, all else the JSON cap."""


class BodyLimitMiddleware:
    """Cap request bodies per route: multipart uploads at the upload limit, every other body
    (JSON) at the JSON limit. A body declared too large is answered 413 before a byte of it is
    read; one that turns out too large while arriving is answered 413 as soon as it crosses
    the limit, whatever the app was doing with it."""

    def __init__(self, app: ASGIApp, max_upload_bytes: int, max_json_bytes: int) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_json_bytes = max_json_bytes

    def _error(self, scope: Scope) -> tuple[int, ApiError]:
        headers = Headers(scope=scope)
        is_upload = (
            scope["method"] == "POST"
            and UPLOAD_PATH.match(scope["path"]) is not None
            and headers.get("content-type", "").startswith("multipart/form-data")
        )
        if is_upload:
            return self.max_upload_bytes + MULTIPART_SLACK, PayloadTooLarge(self.max_upload_bytes)
        return self.max_json_bytes, RequestTooLarge(self.max_json_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, error = self._error(scope)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            # Declared too large: answer now, without reading a byte of it.
            await send_json(scope, send, error)
            return
        received = 0
        too_large = False
        started = False  # a response went out (or the 413 did)

        async def counted() -> Message:
            nonlocal received, too_large
            if too_large:
                raise error
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not started:
                    too_large = True
                    raise error
            return message

        async def guarded_send(message: Message) -> None:
            # Once the body crossed the limit, whatever the app answers (parsers may turn the
            # error into a 400 of their own) is replaced by the 413.
            nonlocal started
            if not too_large:
                started = started or message["type"] == "http.response.start"
                await send(message)
            elif not started and message["type"] == "http.response.start":
                started = True
                await send_json(scope, send, error)

        try:
            await self.app(scope, counted, guarded_send)
        except ApiError:
            if not too_large:
                raise
        if too_large and not started:
            await send_json(scope, send, error)


async def send_json(scope: Scope, send: Send, error: ApiError) -> None:
    response = JSONResponse(error.body(), status_code=error.status, headers=error.headers())
    await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


@asynccontextmanager
async def multipart_file(
    request: Request, field: str = "file"
) -> AsyncIterator[tuple[Upload | None, dict[str, str]]]:
    """Parse a multipart body; yield the file part (if any) and the plain fields.

    Spooled temporary files are removed when the block ends, whatever happens.
    """
    try:
        async with request.form(max_files=4, max_fields=32) as form:
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            part = form.get(field)
            upload = None
            if isinstance(part, UploadFile):
                upload = Upload(part.filename, part.file, part.size or 0)
            elif part is not None:
                raise InvalidRequest(f"'{field}' must be a file part.", field)
            yield upload, fields
    except ClientDisconnect:
        raise InvalidRequest("The client disconnected before the upload finished.") from None


@asynccontextmanager
async def multipart_files(
    request: Request, max_files: int, names: tuple[str, ...] = ("files", "files[]")
) -> AsyncIterator[tuple[list[Upload], dict[str, str]]]:
    """Parse a multipart body of many file parts (a directory upload); yield the file parts
    under any of names, and the plain fields.

    Spooled temporary files are removed when the block ends, whatever happens.
    """
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest(
            "Send multipart/form-data: the skill's files as 'files[]' parts named by their "
            "relative paths, or one zip as 'files'.",
            names[0],
        )
    try:
        async with request.form(max_files=max_files, max_fields=32) as form:
            uploads: list[Upload] = []
            for key, part in form.multi_items():
                if key not in names:
                    continue
                if not isinstance(part, UploadFile):
                    raise InvalidRequest(f"'{key}' must be a file part.", names[0])
                uploads.append(Upload(part.filename, part.file, part.size or 0))
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            yield uploads, fields
    except ClientDisconnect:
        raise InvalidRequest("The client disconnected before the upload finished.") from None
    except StarletteHTTPException as exc:
        if exc.status_code != 400:
            raise
        detail = str(exc.detail)
        if "Too many files" in detail:
            raise SkillTooLarge(
                f"The upload holds more than {max_files} files, the most a skill may hold "
                "(LOCALBOX_SKILL_MAX_FILES).",
                names[0],
            ) from None
        raise InvalidRequest(detail, names[0]) from None


@asynccontextmanager
async def container_upload(request: Request) -> AsyncIterator[Upload | FileIdRef]:
    """The three shapes: multipart `file`, JSON {"file_id"}, multipart form field `file_id`."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        async with multipart_file(request) as (upload, fields):
            if upload is not None:
                yield upload
            elif fields.get("file_id"):
                yield FileIdRef(fields["file_id"])
            else:
                raise InvalidRequest("Send a 'file' part or a 'file_id' field.", "file")
        return
    try:
        body = FileIdBody.model_validate_json(await request.body())
    except ValidationError:
        raise InvalidRequest(
            "Send multipart/form-data with a 'file' part, or JSON with 'file_id'.", "file_id"
        ) from None
    yield FileIdRef(body.file_id)


def content_headers(filename: str, size: int | None = None) -> dict[str, str]:
    """Content-Type guessed from the name, and a Content-Disposition that survives unicode
    and control characters (code may name its files anything)."""
    media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    ascii_name = "".join(ch if " " <= ch <= "~" and ch not in '"?\\' else "_" for ch in filename)
    headers = {
        "content-type": media_type,
        "content-disposition": (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
        ),
    }
    if size is not None:
        headers["content-length"] = str(size)
    return headers


READ_AHEAD = 4
"""Chunks a download reads ahead of the client (a chunk is up to a few MiB)."""


async def read_ahead(chunks: Iterator[bytes], depth: int = READ_AHEAD) -> AsyncIterator[bytes]:
    """Stream chunks while a thread of their own reads the next ones, at most depth ahead:
    the sandbox's output and the client's socket are worked at the same time rather than
    in turn. The chunks are read and closed on that thread only."""
    ahead: queue.Queue[bytes | BaseException | None] = queue.Queue(depth)
    stop = threading.Event()

    def hand(item: bytes | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not hand(chunk):
                    return
            hand(None)
        except Exception as exc:
            hand(exc)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    threading.Thread(target=produce, name="download read-ahead", daemon=True).start()
    try:
        while True:
            item = ahead.get_nowait() if not ahead.empty() else await run_in_threadpool(ahead.get)
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


STREAM_FROM = 8 << 20
"""Multipart bodies at least this large (by Content-Length) are written into the sandbox as
they arrive instead of being spooled to disk first."""
BLOCK = 1 << 20
"""Bytes handed to the writing thread at a time."""
PIPE_DEPTH = 8
"""Blocks that may wait for the writing thread; what a streamed upload holds in memory."""
MAX_TAIL = 4 << 10
"""Bytes a file part may run past its announced size (it cannot, by more than a few, when
the body is well formed); they travel to the sandbox as one argument."""
S = TypeVar("S")
T = TypeVar("T")


def streamable(request: Request) -> bool:
    """Whether the body is a multipart upload large enough, of a declared length, to be
    written into the sandbox while it arrives."""
    length = request.headers.get("content-length", "")
    return (
        request.headers.get("content-type", "").startswith("multipart/form-data")
        and length.isdigit()
        and int(length) >= STREAM_FROM
    )


class _Pipe:
    """A file part's bytes from the event loop to the one thread that reads them, without
    copying: batches of views on the body's own chunks, about BLOCK bytes each. read()
    blocks in that thread; put() waits (without blocking the loop) while PIPE_DEPTH batches
    are queued. Reads deliver exactly `size` bytes: zeros after the data if it ends short
    (settled later)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._loop = asyncio.get_running_loop()
        self._batches: queue.Queue[list[memoryview] | BaseException | None] = queue.Queue()
        self._room = asyncio.Event()
        self._batch: list[memoryview] = []
        self._batch_bytes = 0
        self._views: collections.deque[memoryview] = collections.deque()
        self._given = 0
        self._ended = False
        self.abandoned = False  # the writer finished, however it did; put() discards

    def start(
        self, write: Callable[[str | None, BinaryIO, int], T], filename: str | None
    ) -> asyncio.Future[T]:
        """Run write(filename, self, size) on a worker thread."""
        task = asyncio.ensure_future(
            run_in_threadpool(write, filename, cast(BinaryIO, self), self.size)
        )
        task.add_done_callback(self._finished)
        return task

    def _finished(self, _: object) -> None:
        self.abandoned = True
        self._room.set()

    async def put(self, view: memoryview) -> None:
        """Queue view (it must not change: a view on a bytes object)."""
        self._batch.append(view)
        self._batch_bytes += len(view)
        if self._batch_bytes >= BLOCK:
            await self.flush()

    async def flush(self) -> None:
        while self._batches.qsize() >= PIPE_DEPTH and not self.abandoned:
            self._room.clear()
            if self._batches.qsize() < PIPE_DEPTH or self.abandoned:
                break
            await self._room.wait()
        if not self.abandoned and self._batch:
            self._batches.put(self._batch)
        self._batch, self._batch_bytes = [], 0

    def end(self, error: BaseException | None = None) -> None:
        self._batches.put(error)

    def read(self, n: int = -1) -> bytes | memoryview:
        if self._given >= self.size:
            return b""
        want = self.size - self._given if n < 0 else min(n, self.size - self._given)
        while not self._views and not self._ended:
            self._next()
        out: bytes | memoryview
        if self._views:
            view = self._views.popleft()
            if len(view) > want:
                self._views.appendleft(view[want:])
                view = view[:want]
            out = view
        else:
            out = bytes(min(want, BLOCK))  # zeros: the data ended before the announced size
        self._given += len(out)
        # The last bytes wait for the body's end: a body cut short or malformed must fail
        # the write, not leave a complete-looking file behind.
        while self._given >= self.size and not self._ended:
            self._next()
        return out

    def _next(self) -> None:
        item = self._batches.get()
        self._loop.call_soon_threadsafe(self._room.set)
        if item is None:
            self._ended = True
        elif isinstance(item, BaseException):
            self._ended = True
            raise OSError("the upload was cut short") from item
        else:
            self._views.extend(item)


class _Parts:
    """Callbacks for python-multipart: plain fields are kept, the first `field` part's
    bytes are collected for the caller to take after each write."""

    def __init__(self, field: str, charset: str) -> None:
        self.field, self.charset = field, charset
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.found = False  # the field's part was seen (its headers)
        self.done = False  # and ended
        self.data: list[tuple[bytes, int, int]] = []
        self._target = False
        self._other_file = False
        self._name = ""
        self._value = bytearray()
        self._header_field = b""
        self._header_value = b""
        self._disposition = b""
        self._count = 0

    def decode(self, raw: bytes) -> str:
        try:
            return raw.decode(self.charset)
        except UnicodeDecodeError:
            return raw.decode("latin-1")

    def on_part_begin(self) -> None:
        self._disposition, self._value, self._target = b"", bytearray(), False
        self._count += 1
        if self._count > 36:
            raise InvalidRequest("The upload holds too many parts.", self.field)

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise InvalidRequest(
                'The Content-Disposition header field "name" must be provided.', self.field
            )
        self._name = self.decode(options[b"name"])
        self._other_file = b"filename" in options
        if self._name == self.field and not self.found:
            if b"filename" not in options:
                raise InvalidRequest(f"'{self.field}' must be a file part.", self.field)
            self.found, self._target, self._other_file = True, True, False
            self.filename = self.decode(options[b"filename"])

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._target:
            self.data.append((data, start, end))
        elif self._other_file:
            return  # another file part: not ours, its bytes are dropped
        elif len(self._value) + end - start > 1 << 20:
            raise InvalidRequest("A form field is larger than 1 MiB.", self.field)
        else:
            self._value += data[start:end]

    def on_part_end(self) -> None:
        if self._target:
            self.done, self._target = True, False
        elif not self._other_file:
            self.fields.setdefault(self._name, self.decode(bytes(self._value)))


async def stream_upload(
    request: Request,
    stage: Callable[[str | None, BinaryIO, int], S],
    finish: Callable[[S, int, bytes], T],
    field: str = "file",
) -> T | FileIdRef:
    """Write a multipart body's `field` part while the body arrives: as soon as the part's
    data starts, stage(filename, source, size) runs on a worker thread, reading source as
    the bytes come (it writes them somewhere that is not yet the file). size is announced
    before the part's end is seen: the body's declared length less what came before the
    part and the closing boundary clients send. Once the body has ended well, finish(staged,
    real size, bytes past the announced size) makes the file of it, correcting its size
    should the part have turned out of another (fields after it, an unusual ending); a body
    that ends badly fails stage instead. A body without the part but with a file_id field
    gives a FileIdRef."""
    _, params = parse_options_header(request.headers["content-type"])
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidRequest("Missing boundary in multipart.", field)
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    length = int(request.headers["content-length"])
    closing = len(b"\r\n--" + boundary + b"--\r\n")
    parts = _Parts(field, charset)
    parser = MultipartParser(boundary, cast(Any, vars(_Callbacks(parts))))
    pipe: _Pipe | None = None
    task: asyncio.Future[S] | None = None
    fed = 0  # body bytes given to the parser before the current chunk
    sent = 0  # the part's bytes given to the pipe
    tail = bytearray()
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            for data, start, end in parts.data:
                if pipe is None:
                    # Where the part's data starts in the body (a held-back prefix may make
                    # this a little off; finish corrects the size then).
                    offset = fed + start if data is chunk else fed
                    pipe = _Pipe(max(length - offset - closing, 0))
                    task = pipe.start(stage, parts.filename)
                give = max(min(end - start, pipe.size - sent), 0)
                if give:
                    stable = data if isinstance(data, bytes) else bytes(data)
                    await pipe.put(memoryview(stable)[start : start + give])
                sent += give
                if give < end - start:
                    tail += data[start + give : end]
                    if len(tail) > MAX_TAIL:
                        raise InvalidRequest("The file part runs past the body's length.", field)
            parts.data.clear()
            fed += len(chunk)
        parser.finalize()
        if pipe is None and parts.found and parts.done:
            # An empty part: nothing to stream.
            pipe = _Pipe(0)
            task = pipe.start(stage, parts.filename)
        if pipe is not None:
            await pipe.flush()
    except BaseException as exc:
        if pipe is not None and task is not None:
            pipe.end(exc)
            with contextlib.suppress(Exception):
                await task
        if isinstance(exc, ClientDisconnect):
            raise InvalidRequest("The client disconnected before the upload finished.") from None
        if isinstance(exc, FormParserError):
            raise InvalidRequest("Invalid multipart data.", field) from None
        raise
    if pipe is None or task is None:
        if parts.found:
            raise InvalidRequest("Invalid multipart data: the file part never ended.", field)
        if parts.fields.get("file_id"):
            return FileIdRef(parts.fields["file_id"])
        raise InvalidRequest("Send a 'file' part or a 'file_id' field.", field)
    if not parts.done:
        pipe.end(InvalidRequest("The file part never ended.", field))
        with contextlib.suppress(Exception):
            await task
        raise InvalidRequest("Invalid multipart data: the file part never ended.", field)
    pipe.end()
    staged = await task
    return await run_in_threadpool(finish, staged, sent + len(tail), bytes(tail))


class _Callbacks:
    """The callback table python-multipart wants, bound to a _Parts."""

    def __init__(self, parts: _Parts) -> None:
        self.on_part_begin = parts.on_part_begin
        self.on_part_data = parts.on_part_data
        self.on_part_end = parts.on_part_end
        self.on_header_field = parts.on_header_field
        self.on_header_value = parts.on_header_value
        self.on_header_end = parts.on_header_end
        self.on_headers_finished = parts.on_headers_finished
