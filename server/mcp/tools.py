"""The MCP tools and the container-file resource template, written once over a Backend."""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, Literal

from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.shared.uri_template import UriTemplate
from mcp_types import (
    BlobResourceContents,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    InputRequiredResult,
    TextContent,
    ToolAnnotations,
)
from pydantic import AnyUrl, Field

from server import metrics
from server.api.schemas import (
    Container,
    ContainerCreateBody,
    ContainerFile,
    Exec,
    NetworkPolicyCreate,
    SkillParam,
)
from server.errors import ApiError, InvalidRequest, NotFound, internal_error_body
from server.mcp.backend import Backend, Language
from server.mcp.paths import absolute, relative
from server.mcp.sessions import SessionContainer, SessionContainers

log = logging.getLogger("localbox.mcp")

SESSION_HEADER = "mcp-session-id"
FILE_URI = "localbox://containers/{container_id}/files/{+path}"
_file_uri = UriTemplate.parse(FILE_URI)
INLINE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
TOOLS = (
    "run_python",
    "run_shell",
    "create_container",
    "list_containers",
    "delete_container",
    "list_files",
    "read_file",
    "write_file",
)
INSTRUCTIONS = (
    "localbox runs code in sandboxed containers (Docker), each with its own stateful Python "
    "interpreter, bash and files under /mnt/data. run_python and run_shell without "
    "container_id use this session's own container (created on first use; its id is in the "
    "result). Files written to /mnt/data stay until the container is deleted or expires "
    "after a while unused."
)

ContainerId = Annotated[
    str | None,
    Field(
        description="The container to run in (cntr_...). Leave out to use this session's own "
        "container, created on first use."
    ),
]
Timeout = Annotated[
    float | None,
    Field(
        description="Seconds the call may run before it is interrupted (the server's default "
        "and maximum apply).",
        gt=0,
    ),
]
TargetId = Annotated[str, Field(description="The container's id (cntr_...).")]


def file_uri(container_id: str, rel: str) -> str:
    return f"localbox://containers/{container_id}/files/{rel}"


def text(message: str) -> TextContent:
    return TextContent(type="text", text=message)


def error_result(message: str) -> CallToolResult:
    return CallToolResult(content=[text(message)], is_error=True)


class LocalboxMCP(MCPServer):
    """An MCPServer whose container-file resources carry each file's own MIME type."""

    def __init__(self, tools: Tools, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._localbox = tools

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[Any, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        params = _file_uri.match(str(uri))
        if params is None:
            return await super().read_resource(uri, context)
        container_id, path = params["container_id"], params["path"]
        assert isinstance(container_id, str)
        assert isinstance(path, str)
        try:
            content, mime = await self._localbox.resource(container_id, path)
        except ApiError as exc:
            raise ResourceError(exc.message) from exc
        return [ReadResourceContents(content=content, mime_type=mime)]


class Tools:
    """The tools' bodies: they call the backend and turn its answers, errors included, into
    tool results; a failure is an error result with the API's message, never a protocol error."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_read_bytes: int,
        fixed_session: str | None = None,
        sessions: SessionContainers | None = None,
    ) -> None:
        self.backend = backend
        self.max_read_bytes = max_read_bytes
        self.fixed_session = fixed_session
        """The session key when the transport has one session only (stdio)."""
        self.sessions = sessions or SessionContainers()

    def session_key(self, ctx: Context[Any, Any]) -> str | None:
        if self.fixed_session is not None:
            return self.fixed_session
        try:
            headers = ctx.headers
        except ValueError:  # no request context (a direct call)
            return None
        return headers.get(SESSION_HEADER) if headers else None

    async def counted(
        self, tool: str, body: Callable[[], Awaitable[CallToolResult]]
    ) -> CallToolResult:
        started = time.perf_counter()
        try:
            result = await body()
            outcome = "error" if result.is_error else "ok"
        except ApiError as exc:
            result, outcome = error_result(exc.message), "error"
        except Exception:
            log.exception("mcp tool %s failed", tool)
            message = internal_error_body()["error"]["message"]
            result, outcome = error_result(message), "failed"
        metrics.count_mcp_tool(tool, outcome)
        log.info("mcp %s: %s in %.1f ms", tool, outcome, (time.perf_counter() - started) * 1000)
        return result

    async def container(self, ctx: Context[Any, Any], container_id: str | None) -> tuple[str, str]:
        """The container to run in, and a line for the result saying which it is."""
        if container_id is not None:
            return container_id, ""
        session = self.session_key(ctx)
        found = await self.sessions.container_for(self.backend, session)
        return found.container_id, _session_note(found, session is not None)

    async def run(
        self,
        ctx: Context[Any, Any],
        code: str,
        language: Language,
        container_id: str | None,
        code_timeout: float | None,
    ) -> CallToolResult:
        target, note = await self.container(ctx, container_id)
        result = await self.backend.execute(target, code, language, code_timeout)
        return exec_result(result, note)

    async def resource(self, container_id: str, path: str) -> tuple[str | bytes, str]:
        file = await self.find_file(container_id, relative(path))
        data = await self.backend.read_file(container_id, file, self.max_read_bytes)
        mime = mimetypes.guess_type(file.path)[0] or "application/octet-stream"
        as_text = _as_text(data)
        if as_text is not None and not mime.startswith("image/"):
            return as_text, mime if mime != "application/octet-stream" else "text/plain"
        return data, mime

    async def find_file(self, container_id: str, rel: str) -> ContainerFile:
        wanted = absolute(rel)
        for file in await self.backend.list_files(container_id):
            if file.path == wanted:
                return file
        raise NotFound(f"No file at {wanted} in container '{container_id}'.", "path")

    # --- tool bodies -----------------------------------------------------------------------

    async def list_files(self, container_id: str, path: str | None) -> CallToolResult:
        rel = relative(path or "")
        files = await self.backend.list_files(container_id)
        top = absolute(rel)
        shown = [f for f in files if f.path == top or f.path.startswith(top.rstrip("/") + "/")]
        if not shown:
            return CallToolResult(content=[text(f"No files under {top}.")])
        lines = [f"{f.path}\t{f.bytes} bytes\t{f.id}" for f in shown]
        listing = f"{len(shown)} files under {top}:\n" + "\n".join(lines)
        return CallToolResult(content=[text(listing)])

    async def read_file(self, container_id: str, path: str) -> CallToolResult:
        rel = relative(path)
        file = await self.find_file(container_id, rel)
        data = await self.backend.read_file(container_id, file, self.max_read_bytes)
        mime = mimetypes.guess_type(file.path)[0] or "application/octet-stream"
        if mime in INLINE_IMAGES:
            encoded = base64.b64encode(data).decode()
            block: ContentBlock = ImageContent(type="image", data=encoded, mime_type=mime)
            return CallToolResult(content=[block])
        as_text = _as_text(data)
        if as_text is not None:
            return CallToolResult(content=[text(as_text)])
        blob = BlobResourceContents(
            uri=file_uri(container_id, rel), blob=base64.b64encode(data).decode(), mime_type=mime
        )
        return CallToolResult(content=[EmbeddedResource(type="resource", resource=blob)])

    async def write_file(
        self, container_id: str, path: str, content: str, encoding: str
    ) -> CallToolResult:
        rel = relative(path)
        if not rel or "/" in rel:
            raise InvalidRequest(
                f"write_file writes files at the top of /mnt/data (a name such as 'data.csv' or "
                f"'/mnt/data/data.csv'), not {path!r}; make sub-folders with run_shell "
                "(mkdir -p, mv).",
                "path",
            )
        if encoding == "base64":
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidRequest("content is not valid base64.", "content") from None
        else:
            data = content.encode()
        written = await self.backend.write_file(container_id, rel, data)
        return CallToolResult(
            content=[text(f"Wrote {written.bytes} bytes to {written.path} (file {written.id}).")]
        )


def _as_text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def _session_note(found: SessionContainer, has_session: bool) -> str:
    if not has_session:
        return (
            f"[ran in a new container {found.container_id}: this connection has no MCP session, "
            f"so pass container_id='{found.container_id}' to run there again and keep state]"
        )
    if found.replaced is not None:
        return (
            f"[this session's container {found.replaced} is gone (expired or deleted); "
            f"started {found.container_id}, so earlier state is lost]"
        )
    if found.created:
        return f"[started this session's container {found.container_id}]"
    return f"[container {found.container_id}]"


def exec_result(result: Exec, note: str) -> CallToolResult:
    """stdout, stderr and the error as text, each figure as an image; an error result when the
    code did not complete (an exception, a timeout, a non-zero exit)."""
    parts: list[str] = [note] if note else []
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
    if result.error is not None:
        parts.append(
            f"[error] {result.error.name}: {result.error.value}\n{result.error.traceback}".rstrip()
        )
    if result.status == "timeout":
        parts.append("[the call ran out of time and was interrupted]")
    if result.exit_code is not None and result.language == "bash":
        parts.append(f"[exit code {result.exit_code}]")
    if not result.state_preserved:
        parts.append("[the interpreter was restarted: earlier variables and imports are gone]")
    if result.files:
        parts.append("[files changed] " + ", ".join(f.path for f in result.files))
    if len(parts) == (1 if note else 0):
        parts.append("[no output]")
    content: list[ContentBlock] = [text("\n".join(parts))]
    for output in result.outputs:
        if output.type == "image":
            image = ImageContent(type="image", data=output.data, mime_type=output.media_type)
            content.append(image)
    failed = result.status != "completed" or bool(result.exit_code)
    return CallToolResult(content=content, is_error=failed)


def build_server(tools: Tools) -> LocalboxMCP:
    """The MCP server with localbox's tools and resource template, over tools' backend."""
    server = LocalboxMCP(tools, name="localbox", instructions=INSTRUCTIONS, log_level="WARNING")
    metrics.declare_mcp_tools(TOOLS)

    @server.tool(
        description="Run Python code in a sandboxed container's stateful interpreter (like a "
        "Jupyter kernel: variables, imports and files persist between calls). Returns stdout, "
        "stderr and the error with its traceback as text, and every matplotlib figure as an "
        "image. The working directory is /mnt/data. Without container_id it runs in this "
        "session's own container, created on first use, whose id is in the result.",
        annotations=ToolAnnotations(title="Run Python", open_world_hint=False),
    )
    async def run_python(
        code: Annotated[str, Field(description="Python source to run.")],
        ctx: Context,
        container_id: ContainerId = None,
        timeout: Timeout = None,  # noqa: ASYNC109 (the tool's argument, bounded by the server)
    ) -> CallToolResult:
        return await tools.counted(
            "run_python", lambda: tools.run(ctx, code, "python", container_id, timeout)
        )

    @server.tool(
        description="Run a bash command in a sandboxed container, in /mnt/data. Returns "
        "stdout, stderr and the exit code (non-zero is an error result). Without container_id "
        "it runs in this session's own container, the same one run_python uses.",
        annotations=ToolAnnotations(title="Run shell command", open_world_hint=False),
    )
    async def run_shell(
        command: Annotated[str, Field(description="The bash command (or script) to run.")],
        ctx: Context,
        container_id: ContainerId = None,
        timeout: Timeout = None,  # noqa: ASYNC109 (the tool's argument, bounded by the server)
    ) -> CallToolResult:
        return await tools.counted(
            "run_shell", lambda: tools.run(ctx, command, "bash", container_id, timeout)
        )

    @server.tool(
        description="Create a new sandboxed container (its own Python interpreter, bash and "
        "/mnt/data). It has no network unless network_policy allows domains. Returns its id; "
        "pass it as container_id to the other tools.",
        annotations=ToolAnnotations(title="Create container", destructive_hint=False),
    )
    async def create_container(
        name: Annotated[
            str | None, Field(description="A name to recognise it by.", max_length=512)
        ] = None,
        memory_limit: Annotated[
            Literal["1g", "4g", "16g", "64g"] | None,
            Field(description="Memory for the container (default 1g)."),
        ] = None,
        network_policy: Annotated[
            NetworkPolicyCreate | None,
            Field(
                description='{"type": "disabled"} (the default: no network) or {"type": '
                '"allowlist", "allowed_domains": ["pypi.org", ...]}.'
            ),
        ] = None,
        file_ids: Annotated[
            list[str] | None,
            Field(description="Files-API file ids (file-...) to copy into /mnt/data."),
        ] = None,
        skills: Annotated[
            list[SkillParam] | None,
            Field(description="Skills to install: {type: skill_reference, skill_id, version?}."),
        ] = None,
    ) -> CallToolResult:
        async def body() -> CallToolResult:
            given = {
                "memory_limit": memory_limit,
                "network_policy": network_policy,
                "file_ids": file_ids,
                "skills": skills,
            }
            body = ContainerCreateBody(
                name=name or "mcp", **{k: v for k, v in given.items() if v is not None}
            )
            created = await tools.backend.create_container(body)
            return CallToolResult(content=[text("Created " + describe(created))])

        return await tools.counted("create_container", body)

    @server.tool(
        description="List the containers on this localbox server, newest first, with their "
        "status (running or expired), memory and last activity.",
        annotations=ToolAnnotations(title="List containers", read_only_hint=True),
    )
    async def list_containers() -> CallToolResult:
        async def body() -> CallToolResult:
            found = await tools.backend.list_containers()
            if not found:
                return CallToolResult(content=[text("No containers.")])
            lines = "\n".join(describe(c) for c in found)
            return CallToolResult(content=[text(f"{len(found)} containers:\n{lines}")])

        return await tools.counted("list_containers", body)

    @server.tool(
        description="Delete a container with its files and interpreter state, for good.",
        annotations=ToolAnnotations(title="Delete container", destructive_hint=True),
    )
    async def delete_container(container_id: TargetId) -> CallToolResult:
        async def body() -> CallToolResult:
            await tools.backend.delete_container(container_id)
            return CallToolResult(content=[text(f"Deleted container {container_id}.")])

        return await tools.counted("delete_container", body)

    @server.tool(
        description="List the files in a container's /mnt/data (or under a folder of it), "
        "with sizes and file ids.",
        annotations=ToolAnnotations(title="List files", read_only_hint=True),
    )
    async def list_files(
        container_id: TargetId,
        path: Annotated[
            str | None,
            Field(description="A folder: absolute under /mnt/data or relative to it."),
        ] = None,
    ) -> CallToolResult:
        return await tools.counted("list_files", lambda: tools.list_files(container_id, path))

    @server.tool(
        description="Read a file from a container: text comes back as text, PNG/JPEG/GIF/WebP "
        "images as images, other binary files as an embedded resource with their MIME type. "
        "Files larger than the read limit are refused with a way to download them.",
        annotations=ToolAnnotations(title="Read file", read_only_hint=True),
    )
    async def read_file(
        container_id: TargetId,
        path: Annotated[
            str, Field(description="The file: absolute under /mnt/data or relative to it.")
        ],
    ) -> CallToolResult:
        return await tools.counted("read_file", lambda: tools.read_file(container_id, path))

    @server.tool(
        description="Write a file into a container's /mnt/data, replacing a file of that name. "
        "Give text as it is (encoding utf-8) or binary content as base64.",
        annotations=ToolAnnotations(title="Write file", destructive_hint=False),
    )
    async def write_file(
        container_id: TargetId,
        path: Annotated[
            str,
            Field(description="Where: a name at the top of /mnt/data, e.g. 'data.csv'."),
        ],
        content: Annotated[str, Field(description="The file's content.")],
        encoding: Annotated[
            Literal["utf-8", "base64"], Field(description="How content is encoded.")
        ] = "utf-8",
    ) -> CallToolResult:
        return await tools.counted(
            "write_file", lambda: tools.write_file(container_id, path, content, encoding)
        )

    @server.resource(
        FILE_URI,
        name="container_file",
        title="Container file",
        description="A file in a container's /mnt/data (path relative to /mnt/data).",
    )
    async def container_file(container_id: str, path: str) -> str:
        raise AssertionError("LocalboxMCP.read_resource serves these")  # pragma: no cover

    return server


def describe(c: Container) -> str:
    return (
        f"{c.id} ({c.name}): {c.status}, memory {c.memory_limit}, last active "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(c.last_active_at))}"
    )
