"""Backend over localbox's HTTP API: what `python -m server.mcp` (stdio) uses."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from server.api.schemas import Container, ContainerCreateBody, ContainerFile, Exec, Page
from server.errors import ApiError, FileTooLargeToRead
from server.mcp.backend import Language

PAGE = 100
FILES_PAGE = 100
MAX_LISTED = 1000

_containers_page = TypeAdapter(Page[Container])
_files_page = TypeAdapter(Page[ContainerFile])


class RemoteApiError(ApiError):
    """An error the localbox server answered with (its message kept as it came)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.remote_status = status


def _path(value: str) -> str:
    return quote(value, safe="")


class HttpBackend:
    """Calls a running localbox at base_url (its root, e.g. http://127.0.0.1:8000)."""

    def __init__(
        self, base_url: str, api_key: str = "", *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=f"{self._base_url}/v1",
            headers=headers,
            timeout=httpx.Timeout(60.0),
            transport=transport,
        )

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise RemoteApiError(
                f"Could not reach localbox at {self._base_url} ({type(exc).__name__}); is it "
                "running, and is LOCALBOX_URL its address?",
                503,
            ) from exc
        if response.status_code >= 400:
            raise _error_of(response)
        return response

    async def execute(
        self, container_id: str, code: str, language: Language, code_timeout: float | None
    ) -> Exec:
        body: dict[str, Any] = {"code": code, "language": language}
        if code_timeout is not None:
            body["timeout"] = code_timeout
        # The server bounds the call's time; the client waits as long as it takes.
        response = await self._request(
            "POST",
            f"/containers/{_path(container_id)}/exec",
            json=body,
            timeout=httpx.Timeout(60.0, read=None),
        )
        return Exec.model_validate_json(response.content)

    async def create_container(self, body: ContainerCreateBody) -> Container:
        response = await self._request(
            "POST", "/containers", json=body.model_dump(mode="json", exclude_none=True)
        )
        return Container.model_validate_json(response.content)

    async def retrieve_container(self, container_id: str) -> Container:
        response = await self._request("GET", f"/containers/{_path(container_id)}")
        return Container.model_validate_json(response.content)

    async def list_containers(self) -> list[Container]:
        found: list[Container] = []
        params: dict[str, str | int] = {"limit": PAGE, "order": "desc"}
        while len(found) < MAX_LISTED:
            response = await self._request("GET", "/containers", params=params)
            page = _containers_page.validate_json(response.content)
            found += page.data
            if not page.has_more or page.last_id is None:
                break
            params["after"] = page.last_id
        return found

    async def delete_container(self, container_id: str) -> None:
        await self._request("DELETE", f"/containers/{_path(container_id)}")

    async def list_files(self, container_id: str) -> list[ContainerFile]:
        found: list[ContainerFile] = []
        params: dict[str, str | int] = {"limit": FILES_PAGE, "order": "asc"}
        while True:
            response = await self._request(
                "GET", f"/containers/{_path(container_id)}/files", params=params
            )
            page = _files_page.validate_json(response.content)
            found += page.data
            if not page.has_more or page.last_id is None:
                return found
            params["after"] = page.last_id

    async def read_file(self, container_id: str, file: ContainerFile, max_bytes: int) -> bytes:
        url = f"/containers/{_path(container_id)}/files/{_path(file.id)}/content"
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _error_of(response)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FileTooLargeToRead(
                        container_id, file.id, file.path, int(declared), max_bytes
                    )
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise FileTooLargeToRead(
                            container_id, file.id, file.path, len(data), max_bytes
                        )
                return bytes(data)
        except httpx.TransportError as exc:
            raise RemoteApiError(
                f"Could not read the file from localbox at {self._base_url} "
                f"({type(exc).__name__}).",
                503,
            ) from exc

    async def write_file(self, container_id: str, name: str, data: bytes) -> ContainerFile:
        response = await self._request(
            "POST", f"/containers/{_path(container_id)}/files", files={"file": (name, data)}
        )
        return ContainerFile.model_validate_json(response.content)

    async def aclose(self) -> None:
        await self._client.aclose()


def _error_of(response: httpx.Response) -> RemoteApiError:
    """The server's {"error": {"message": ...}} as an error, or its status when there is none."""
    message = f"localbox answered {response.status_code}."
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        found = body["error"].get("message")
        if isinstance(found, str) and found:
            message = found
    return RemoteApiError(message, response.status_code)
