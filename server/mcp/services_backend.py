"""Backend over the app's own services: what the Streamable HTTP door at /mcp uses."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from server.api.schemas import (
    Container,
    ContainerCreateBody,
    ContainerFile,
    Exec,
    container_skill,
    network_policy_fields,
)
from server.errors import FileTooLargeToRead, Translator
from server.mcp.backend import Language
from server.services.capacity import Capacity
from server.services.container_files import ContainerFileService
from server.services.containers import ContainerService, CreateContainer
from server.services.execution import ExecutionService

T = TypeVar("T")

PAGE = 100
FILES_PAGE = 100
MAX_LISTED = 1000


class ServicesBackend:
    """Calls the services in-process, as the REST routes do (blocking ones on worker
    threads), and answers lower-layer failures as the REST error handlers would."""

    def __init__(
        self,
        containers: ContainerService,
        container_files: ContainerFileService,
        execution: ExecutionService,
        capacity: Capacity,
        translated: Mapping[type[Exception], Translator],
    ) -> None:
        self._containers = containers
        self._files = container_files
        self._execution = execution
        self._capacity = capacity
        self._translated = translated

    async def _translate(self, exc: Exception, container_id: str | None) -> Exception:
        for exc_type, to_api in self._translated.items():
            if isinstance(exc, exc_type):
                params = {"container_id": container_id} if container_id else {}
                return await run_in_threadpool(to_api, exc, params)
        return exc

    async def _call(self, container_id: str | None, fn: Callable[..., T], *args: object) -> T:
        try:
            return await run_in_threadpool(fn, *args)
        except Exception as exc:
            translated = await self._translate(exc, container_id)
            if translated is exc:
                raise
            raise translated from exc

    async def execute(
        self, container_id: str, code: str, language: Language, code_timeout: float | None
    ) -> Exec:
        try:
            result = await self._execution.run(container_id, code, language, code_timeout)
        except Exception as exc:
            translated = await self._translate(exc, container_id)
            if translated is exc:
                raise
            raise translated from exc
        return Exec.of(result)

    async def create_container(self, body: ContainerCreateBody) -> Container:
        request = CreateContainer(
            name=body.name,
            minutes=body.expires_after.minutes if body.expires_after else None,
            memory_limit=body.memory_limit,
            file_ids=body.file_ids or [],
            skills=[container_skill(s) for s in body.skills or []],
            **network_policy_fields(body.network_policy),
        )
        return Container.of(await self._call(None, self._containers.create, request))

    async def retrieve_container(self, container_id: str) -> Container:
        return Container.of(await self._call(container_id, self._containers.retrieve, container_id))

    async def list_containers(self) -> list[Container]:
        def listing() -> list[Container]:
            found: list[Container] = []
            after: str | None = None
            while len(found) < MAX_LISTED:
                page = self._containers.list(
                    order="desc", limit=PAGE, after=after, before=None, name=None
                )
                found += [Container.of(c) for c in page.items]
                if not page.has_more or not page.items:
                    break
                after = page.items[-1].id
            return found

        return await self._call(None, listing)

    async def delete_container(self, container_id: str) -> None:
        await self._call(container_id, self._containers.delete, container_id)

    async def list_files(self, container_id: str) -> list[ContainerFile]:
        def listing() -> list[ContainerFile]:
            found: list[ContainerFile] = []
            after: str | None = None
            while True:
                page = self._files.list(container_id, order="asc", limit=FILES_PAGE, after=after)
                found += [ContainerFile.of(f) for f in page.items]
                if not page.has_more or not page.items:
                    return found
                after = page.items[-1].id

        return await self._call(container_id, listing)

    async def read_file(self, container_id: str, file: ContainerFile, max_bytes: int) -> bytes:
        def read() -> bytes:
            _, size, chunks = self._files.content(container_id, file.id)
            try:
                if size > max_bytes:
                    raise FileTooLargeToRead(container_id, file.id, file.path, size, max_bytes)
                return b"".join(chunks)
            finally:
                if isinstance(chunks, Iterator) and hasattr(chunks, "close"):
                    chunks.close()

        return await self._call(container_id, read)

    async def write_file(self, container_id: str, name: str, data: bytes) -> ContainerFile:
        def write() -> ContainerFile:
            self._capacity.ensure_free_disk()
            written = self._files.upload(container_id, name, io.BytesIO(data), len(data))
            return ContainerFile.of(written)

        return await self._call(container_id, write)

    async def aclose(self) -> None:
        return None
