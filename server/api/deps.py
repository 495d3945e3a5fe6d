"""Annotated dependency aliases: services from app.state, auth, and list parameters."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Header, Query, Request

from server.api_keys import check_bearer
from server.services.capacity import Capacity
from server.services.container_files import ContainerFileService
from server.services.containers import ContainerService
from server.services.execution import ExecutionService
from server.services.files import FileService
from server.services.responses import ResponseService
from server.services.skills import SkillService


def _container_service(request: Request) -> ContainerService:
    service: ContainerService = request.app.state.containers
    return service


def _container_file_service(request: Request) -> ContainerFileService:
    service: ContainerFileService = request.app.state.container_files
    return service


def _file_service(request: Request) -> FileService:
    service: FileService = request.app.state.files
    return service


def _execution_service(request: Request) -> ExecutionService:
    service: ExecutionService = request.app.state.execution
    return service


def _skill_service(request: Request) -> SkillService:
    service: SkillService = request.app.state.skills
    return service


def _response_service(request: Request) -> ResponseService:
    service: ResponseService = request.app.state.responses
    return service


def require_free_disk(request: Request) -> None:
    """Refuse an upload (429) before reading it while the disk is nearly full."""
    capacity: Capacity = request.app.state.capacity
    capacity.ensure_free_disk()


Containers = Annotated[ContainerService, Depends(_container_service)]
ContainerFiles = Annotated[ContainerFileService, Depends(_container_file_service)]
Files = Annotated[FileService, Depends(_file_service)]
Execution = Annotated[ExecutionService, Depends(_execution_service)]
Skills = Annotated[SkillService, Depends(_skill_service)]
Responses = Annotated[ResponseService, Depends(_response_service)]


def require_api_key(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> None:
    """With LOCALBOX_API_KEYS set, demand one of them as the bearer; otherwise accept anything."""
    check_bearer(request.app.state.settings.api_key_list, authorization)


Limit = Annotated[int, Query(ge=1, le=100)]
FilesLimit = Annotated[int, Query(ge=1, le=10000)]
OrderParam = Annotated[Literal["asc", "desc"], Query()]
