"""Routes for /v1/containers/{container_id}/files."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from server import domain
from server.api.deps import ContainerFiles, Limit, OrderParam, require_free_disk
from server.api.schemas import ContainerFile, Deleted, Page, page_of
from server.api.uploads import (
    FileIdRef,
    container_upload,
    content_headers,
    read_ahead,
    stream_upload,
    streamable,
)

router = APIRouter(prefix="/containers/{container_id}/files", tags=["container files"])


@router.post("", dependencies=[Depends(require_free_disk)], response_model=ContainerFile)
async def create_container_file(
    container_id: str, request: Request, service: ContainerFiles
) -> ContainerFile:
    await run_in_threadpool(service.ensure_active, container_id)
    if streamable(request):
        # Large uploads go into the sandbox while they arrive, never spooled to disk.
        streamed: domain.ContainerFile | FileIdRef = await stream_upload(
            request,
            partial(service.stage_upload, container_id),
            partial(service.finish_upload, container_id),
        )
        if isinstance(streamed, FileIdRef):
            streamed = await run_in_threadpool(
                service.upload_file_id, container_id, streamed.file_id
            )
        return ContainerFile.of(streamed)
    async with container_upload(request) as upload:
        if isinstance(upload, FileIdRef):
            file = await run_in_threadpool(service.upload_file_id, container_id, upload.file_id)
        else:
            file = await run_in_threadpool(
                service.upload, container_id, upload.filename, upload.file, upload.size
            )
    return ContainerFile.of(file)


@router.get("", response_model=Page[ContainerFile])
def list_container_files(
    container_id: str,
    service: ContainerFiles,
    after: str | None = None,
    limit: Limit = 20,
    order: OrderParam = "desc",
) -> Page[ContainerFile]:
    page = service.list(container_id, order=order, limit=limit, after=after)
    return Page[ContainerFile](**page_of([ContainerFile.of(f) for f in page.items], page.has_more))


@router.get("/{file_id}", response_model=ContainerFile)
def retrieve_container_file(
    container_id: str, file_id: str, service: ContainerFiles
) -> ContainerFile:
    return ContainerFile.of(service.retrieve(container_id, file_id))


@router.delete("/{file_id}", response_model=Deleted)
def delete_container_file(container_id: str, file_id: str, service: ContainerFiles) -> Deleted:
    service.delete(container_id, file_id)
    return Deleted(id=file_id, object="container.file.deleted")


@router.get("/{file_id}/content")
def container_file_content(
    container_id: str, file_id: str, service: ContainerFiles
) -> StreamingResponse:
    file, size, chunks = service.content(container_id, file_id)
    name = file.path.rsplit("/", 1)[-1]
    return StreamingResponse(read_ahead(chunks), headers=content_headers(name, size))
