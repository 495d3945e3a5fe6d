"""Routes for /v1/skills: versioned skill bundles that containers can be created with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from server.api.deps import Limit, OrderParam, Skills, require_free_disk
from server.api.schemas import (
    Deleted,
    Page,
    SetDefaultSkillVersionBody,
    SkillObject,
    SkillVersionDeleted,
    SkillVersionObject,
    page_of,
)
from server.api.uploads import content_headers, multipart_files
from server.errors import InvalidRequest
from server.services.skill_bundle import Part, is_zip
from server.services.skills import SkillService, SkillUpload

router = APIRouter(prefix="/skills", tags=["skills"])

TRUE = {"true": True, "1": True, "false": False, "0": False}


@asynccontextmanager
async def skill_upload(
    request: Request, service: SkillService
) -> AsyncIterator[tuple[SkillUpload, dict[str, str]]]:
    """One zip (a lone part that is a zip) or a directory upload (parts named by path)."""
    async with multipart_files(request, service.limits.max_files) as (uploads, fields):
        if not uploads:
            raise InvalidRequest("Missing required parameter: 'files'.", "files")
        one = uploads[0]
        if len(uploads) == 1 and is_zip(one.filename, one.file):
            yield SkillUpload(zip=one.file), fields
        else:
            parts = [Part(u.filename or "", u.file, u.size) for u in uploads]
            yield SkillUpload(parts=parts), fields


@router.post("", dependencies=[Depends(require_free_disk)], response_model=SkillObject)
async def create_skill(request: Request, service: Skills) -> SkillObject:
    async with skill_upload(request, service) as (upload, _):
        skill = await run_in_threadpool(service.create, upload)
    return SkillObject.of(skill)


@router.get("", response_model=Page[SkillObject])
def list_skills(
    service: Skills, after: str | None = None, limit: Limit = 20, order: OrderParam = "desc"
) -> Page[SkillObject]:
    page = service.list(order=order, limit=limit, after=after)
    return Page[SkillObject](**page_of([SkillObject.of(s) for s in page.items], page.has_more))


@router.get("/{skill_id}", response_model=SkillObject)
def retrieve_skill(skill_id: str, service: Skills) -> SkillObject:
    return SkillObject.of(service.retrieve(skill_id))


@router.post("/{skill_id}", response_model=SkillObject)
def update_skill(skill_id: str, body: SetDefaultSkillVersionBody, service: Skills) -> SkillObject:
    return SkillObject.of(service.set_default(skill_id, body.default_version))


@router.delete("/{skill_id}", response_model=Deleted)
def delete_skill(skill_id: str, service: Skills) -> Deleted:
    service.delete(skill_id)
    return Deleted(id=skill_id, object="skill.deleted")


@router.get("/{skill_id}/content")
def skill_content(skill_id: str, service: Skills) -> FileResponse:
    return _zip_response(service, skill_id, None)


@router.post(
    "/{skill_id}/versions",
    dependencies=[Depends(require_free_disk)],
    response_model=SkillVersionObject,
)
async def create_skill_version(
    skill_id: str, request: Request, service: Skills
) -> SkillVersionObject:
    async with skill_upload(request, service) as (upload, fields):
        default = TRUE.get(fields.get("default", "false").strip().lower())
        if default is None:
            raise InvalidRequest("Invalid value for 'default': expected true or false.", "default")
        version = await run_in_threadpool(service.create_version, skill_id, upload, default)
    return SkillVersionObject.of(version)


@router.get("/{skill_id}/versions", response_model=Page[SkillVersionObject])
def list_skill_versions(
    skill_id: str,
    service: Skills,
    after: str | None = None,
    limit: Limit = 20,
    order: OrderParam = "desc",
) -> Page[SkillVersionObject]:
    page = service.list_versions(skill_id, order=order, limit=limit, after=after)
    items = [SkillVersionObject.of(v) for v in page.items]
    return Page[SkillVersionObject](**page_of(items, page.has_more))


@router.get("/{skill_id}/versions/{version}", response_model=SkillVersionObject)
def retrieve_skill_version(skill_id: str, version: str, service: Skills) -> SkillVersionObject:
    return SkillVersionObject.of(service.retrieve_version(skill_id, version))


@router.delete("/{skill_id}/versions/{version}", response_model=SkillVersionDeleted)
def delete_skill_version(skill_id: str, version: str, service: Skills) -> SkillVersionDeleted:
    deleted = service.delete_version(skill_id, version)
    return SkillVersionDeleted(id=deleted.id, version=str(deleted.version))


@router.get("/{skill_id}/versions/{version}/content")
def skill_version_content(skill_id: str, version: str, service: Skills) -> FileResponse:
    return _zip_response(service, skill_id, version)


def _zip_response(service: SkillService, skill_id: str, version: str | None) -> FileResponse:
    found, path = service.content(skill_id, version)
    headers = content_headers(f"{found.name}.zip")
    headers.pop("content-type")
    return FileResponse(path, media_type="application/zip", headers=headers)
