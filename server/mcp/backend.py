"""What the MCP tools need from localbox: one protocol, served in-process or over HTTP.

The tools are written once against Backend; the Streamable HTTP door hands them the
services of the running app (services_backend.py), the stdio door a client of the HTTP API
(http_backend.py). Both speak the API's wire models and raise ApiErrors carrying the
messages the HTTP API answers with.
"""

from __future__ import annotations

from typing import Literal, Protocol

from server.api.schemas import Container, ContainerCreateBody, ContainerFile, Exec

Language = Literal["python", "bash"]


class Backend(Protocol):
    async def execute(
        self, container_id: str, code: str, language: Language, code_timeout: float | None
    ) -> Exec:
        """Run code in the container and wait for the whole result."""
        ...

    async def create_container(self, body: ContainerCreateBody) -> Container: ...

    async def retrieve_container(self, container_id: str) -> Container: ...

    async def list_containers(self) -> list[Container]:
        """Every container, newest first."""
        ...

    async def delete_container(self, container_id: str) -> None: ...

    async def list_files(self, container_id: str) -> list[ContainerFile]:
        """Every file under the container's /mnt/data (paths as the API gives them)."""
        ...

    async def read_file(self, container_id: str, file: ContainerFile, max_bytes: int) -> bytes:
        """The file's bytes; FileTooLargeToRead when it holds more than max_bytes."""
        ...

    async def write_file(self, container_id: str, name: str, data: bytes) -> ContainerFile:
        """Write /mnt/data/<name>, replacing a file of that name."""
        ...

    async def aclose(self) -> None: ...
