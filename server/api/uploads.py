"""Reading uploads: the body-size cap, the three container-file upload shapes, downloads."""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.schemas import FileIdBody
from server.errors import InvalidRequest, PayloadTooLarge

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


class BodyLimitMiddleware:
    """Refuse request bodies over the upload limit with a 413, before or while they arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.limit = max_bytes + MULTIPART_SLACK
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                # Declared too large: answer now, without reading a byte of it.
                exc = PayloadTooLarge(self.max_bytes)
                await JSONResponse(exc.body(), status_code=exc.status)(scope, receive, send)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise PayloadTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)


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
