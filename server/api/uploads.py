"""Reading uploads: the body-size cap, the three container-file upload shapes, downloads."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
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
