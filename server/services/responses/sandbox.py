"""A hosted tool's container for one turn, and running the model's calls in it: python in
the stateful interpreter, shell commands with bash in /mnt/data as the sandbox user."""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from server.domain import Container, ContainerFile, File
from server.errors import ApiError, ContainerExpired
from server.runtime import OutputChunk
from server.services.container_files import ContainerFileService
from server.services.containers import ContainerService, CreateContainer
from server.services.execution import ExecFinished, ExecResult, ExecutionService
from server.services.responses.history import InlineFile
from server.services.responses.request import SandboxTool

KEEPALIVE_SECONDS = 15.0
"""A call quiet this long gives the stream a keep-alive, so that proxies and clients do not
take the connection for dead."""


@dataclass(frozen=True)
class SandboxServices:
    containers: ContainerService
    container_files: ContainerFileService
    execution: ExecutionService


@dataclass
class PythonOutcome:
    status: str
    """completed, or failed when the call could not run at all (the sandbox failed)."""
    logs: str = ""
    error: str = ""
    images: list[str] = field(default_factory=list)
    """data: URLs."""
    files: list[ContainerFile] = field(default_factory=list)
    timed_out: bool = False


@dataclass
class CommandOutcome:
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    timed_out: bool = False
    files: list[ContainerFile] = field(default_factory=list)


def _param(tool: SandboxTool) -> str:
    if tool.kind == "shell":
        return f"{tool.param}.environment.container_id"
    return f"{tool.param}.container"


class ToolSandbox:
    """The container one hosted tool runs in for the turn: checked when the request comes
    (check), found or made when the model first calls the tool (ensure), so that a turn in
    which the model never calls it makes no container."""

    def __init__(
        self,
        tool: SandboxTool,
        services: SandboxServices,
        name: str,
        reuse: str | None,
        files: list[File | InlineFile],
    ) -> None:
        self.tool = tool
        self._services = services
        self._name = name
        self._reuse = reuse
        self._files = files
        self._lock = asyncio.Lock()
        self.container_id = ""
        self.error = ""
        """Why the container could not be had: each call is answered with it."""

    async def check(self) -> None:
        """What can be wrong before the model is asked, as the request's error: an explicit
        container that is unknown or expired, Files-API files that do not exist."""
        tool = self.tool
        if tool.container_id is not None:
            try:
                await run_in_threadpool(self._running, tool.container_id)
            except ApiError as exc:
                exc.param = _param(tool)
                raise
        elif tool.auto is not None and tool.auto.file_ids:
            where = "environment" if tool.kind == "shell" else "container"
            try:
                await run_in_threadpool(
                    self._services.container_files.resolve_file_ids, tool.auto.file_ids
                )
            except ApiError as exc:
                exc.param = f"{tool.param}.{where}.file_ids"
                raise

    async def ensure(self) -> str:
        """The container's id, found or made (and given the turn's input files) on first
        use; "" with self.error set when that failed."""
        async with self._lock:
            if self.container_id or self.error:
                return self.container_id
            try:
                if self.tool.container_id is not None:
                    await run_in_threadpool(self._running, self.tool.container_id)
                    container_id = self.tool.container_id
                elif self._reuse is not None and await run_in_threadpool(
                    self._still_running, self._reuse
                ):
                    container_id = self._reuse
                else:
                    container_id = await self._create()
                self.container_id = container_id
                for file in self._files:
                    await run_in_threadpool(self._copy, file)
            except ApiError as exc:
                self.error = f"The sandbox failed: {exc.message}"
            return self.container_id

    def _running(self, container_id: str) -> Container:
        container = self._services.containers.retrieve(container_id)
        if container.status != "running":
            raise ContainerExpired()
        return container

    def _still_running(self, container_id: str) -> bool:
        try:
            self._running(container_id)
        except ApiError:
            return False
        return True

    async def _create(self) -> str:
        auto = self.tool.auto
        assert auto is not None
        request = CreateContainer(
            name=self._name,
            memory_limit=auto.memory_limit,
            network_policy_type=auto.network_policy_type,
            allowed_domains=auto.allowed_domains,
            domain_secrets=auto.domain_secrets,
            file_ids=auto.file_ids,
            skills=auto.skills,
        )
        try:
            container = await run_in_threadpool(self._services.containers.create, request)
        except ApiError as exc:
            if exc.param and exc.status < 500:
                where = "environment" if self.tool.kind == "shell" else "container"
                exc.param = f"{self.tool.param}.{where}.{exc.param}"
            raise
        return container.id

    def _copy(self, file: File | InlineFile) -> None:
        files = self._services.container_files
        if isinstance(file, InlineFile):
            files.upload(self.container_id, file.filename, io.BytesIO(file.data), len(file.data))
        else:
            files.upload_file_id(self.container_id, file.id)

    async def run_python(self, code: str) -> AsyncIterator[PythonOutcome | None]:
        """None after each quiet spell of KEEPALIVE_SECONDS while the code runs, then the
        outcome."""
        if self.error:
            yield PythonOutcome(status="failed", error=self.error)
            return
        execution = self._services.execution
        try:
            call = await execution.start(self.container_id, code, "python", None, streaming=False)
            async for event in call.events(idle=KEEPALIVE_SECONDS):
                if event is None:
                    yield None
                elif isinstance(event, ExecFinished):
                    result = event.result
                    yield PythonOutcome(
                        status="completed",
                        logs=result.logs,
                        error=_error_text(result),
                        images=[f"data:{i.media_type};base64,{i.data}" for i in result.images],
                        files=list(result.files),
                        timed_out=result.status == "timeout",
                    )
        except ApiError as exc:
            yield PythonOutcome(status="failed", error=f"The sandbox failed: {exc.message}")

    async def run_command(
        self, command: str, timeout_ms: int | None
    ) -> AsyncIterator[OutputChunk | CommandOutcome | None]:
        """The command's output as it comes (None after each quiet spell), then its
        outcome."""
        if self.error:
            yield CommandOutcome(stderr=self.error, exit_code=1)
            return
        seconds = timeout_ms / 1000 if timeout_ms and math.isfinite(timeout_ms) else None
        execution = self._services.execution
        if seconds is not None:
            seconds = max(0.001, min(seconds, execution.max_timeout))
        try:
            call = await execution.start(self.container_id, command, "bash", seconds)
            async for event in call.events(idle=KEEPALIVE_SECONDS):
                if event is None or isinstance(event, OutputChunk):
                    yield event
                elif isinstance(event, ExecFinished):
                    result = event.result
                    yield CommandOutcome(
                        stdout=result.stdout,
                        stderr=result.stderr + _error_text(result),
                        exit_code=result.exit_code,
                        timed_out=result.status == "timeout",
                        files=list(result.files),
                    )
        except ApiError as exc:
            yield CommandOutcome(stderr=f"The sandbox failed: {exc.message}", exit_code=1)


def _error_text(result: ExecResult) -> str:
    """What went wrong besides the output: a traceback, or why a command was stopped (a
    command's own non-zero exit is its outcome, not an error)."""
    error = result.error
    if error is None or error.name == "ExitCode":
        return ""
    if result.language == "bash":
        return f"{error.name}: {error.value}\n"
    return error.traceback or f"{error.name}: {error.value}"
