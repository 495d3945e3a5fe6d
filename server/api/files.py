"""Routes for /v1/files: the Files API that file_ids and file_id refer to."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from server.api.deps import Files, FilesLimit, OrderParam, require_free_disk
from server.api.schemas import Deleted, FileObject, Page, page_of
from server.api.uploads import content_headers, multipart_file
from server.errors import InvalidRequest
from server.services.files import ExpiresAfter

router = APIRouter(prefix="/files", tags=["files"])


@router.post("", dependencies=[Depends(require_free_disk)], response_model=FileObject)
async def create_file(request: Request, service: Files) -> FileObject:
    async with multipart_file(request) as (upload, fields):
        if upload is None:
            raise InvalidRequest("Missing required parameter: 'file'.", "file")
        if "purpose" not in fields:
            raise InvalidRequest("Missing required parameter: 'purpose'.", "purpose")
        expires_after = None
        if any(key.startswith("expires_after") for key in fields):
            expires_after = ExpiresAfter(
                fields.get("expires_after[anchor]"), fields.get("expires_after[seconds]")
            )
        file = await run_in_threadpool(
            service.upload,
            upload.filename,
            fields["purpose"],
            upload.file,
            upload.size,
            expires_after,
        )
    return FileObject.of(file)


@router.get("", response_model=Page[FileObject])
def list_files(
    service: Files,
    after: str | None = None,
    limit: FilesLimit = 10000,
    order: OrderParam = "desc",
    purpose: str | None = None,
) -> Page[FileObject]:
    page = service.list(order=order, limit=limit, after=after, purpose=purpose)
    return Page[FileObject](**page_of([FileObject.of(f) for f in page.items], page.has_more))


@router.get("/{file_id}", response_model=FileObject)
def retrieve_file(file_id: str, service: Files) -> FileObject:
    return FileObject.of(service.retrieve(file_id))


@router.delete("/{file_id}", response_model=Deleted)
def delete_file(file_id: str, service: Files) -> Deleted:
    service.delete(file_id)
    return Deleted(id=file_id, object="file")


@router.get("/{file_id}/content")
def file_content(file_id: str, service: Files) -> FileResponse:
    file, path = service.content(file_id)
    headers = content_headers(file.filename)
    return FileResponse(
        path,
        media_type=headers.pop("content-type"),
        headers=headers,
    )
