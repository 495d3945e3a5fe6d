"""ExecutionService: run code in a container's sandbox, one call at a time per container."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from server.domain import ContainerFile
from server.errors import InvalidRequest
from server.ids import Clock, new_exec_id
from server.runtime import (
    ExecDone,
    ExecError,
    ExecRequest,
    ImageOutput,
    OutputChunk,
    SandboxRuntime,
)
from server.services.activity import Activity, FifoLock, PerContainer
from server.services.container_files import ContainerFileService
from server.services.errors import runtime_errors, touch_running
from server.store import ContainerRepository

log = logging.getLogger("localbox.execution")

Language = Literal["python", "bash"]


@dataclass
class ExecResult:
    """The outcome of one call, as the API reports it."""

    id: str
    container_id: str
    language: Language
    status: Literal["completed", "error", "timeout"] = "completed"
    stdout: str = ""
    stderr: str = ""
    logs: str = ""
    error: ExecError | None = None
    images: list[ImageOutput] = field(default_factory=list)
    files: Sequence[ContainerFile] = field(default_factory=list)
    state_preserved: bool = True
    exit_code: int | None = None
    duration_ms: int = 0


@dataclass(frozen=True)
class ExecFinished:
    """The last event of a stream: the whole result."""

    result: ExecResult


StreamEvent = OutputChunk | ImageOutput | ExecFinished


def truncation_marker(dropped: int) -> str:
    return f"\n[localbox: output truncated, {dropped} more bytes not shown]\n"


class ExecutionService:
    def __init__(
        self,
        containers: ContainerRepository,
        files: ContainerFileService,
        runtime: SandboxRuntime,
        activity: Activity,
        clock: Clock,
        *,
        default_timeout: float,
        max_timeout: float,
        max_output: int,
        disk_limit: int,
    ) -> None:
        self._containers = containers
        self._files = files
        self._runtime = runtime
        self._activity = activity
        self._clock = clock
        self.default_timeout = default_timeout
        self.max_timeout = max_timeout
        self.max_output = max_output
        self.disk_limit = disk_limit
        self._lock = PerContainer(FifoLock)

    def start(
        self, container_id: str, code: str, language: Language, timeout: float | None
    ) -> Iterator[StreamEvent]:
        """Check the call, then return its events: output as produced, then ExecFinished."""
        if timeout is not None and timeout <= 0:
            raise InvalidRequest("timeout must be a positive number of seconds.", "timeout")
        self._touch(container_id)
        request = ExecRequest(
            code=code,
            language=language,
            timeout=min(timeout or self.default_timeout, self.max_timeout),
            max_output=self.max_output,
            disk_limit=self.disk_limit,
        )
        return self._run(container_id, request)

    def run(
        self, container_id: str, code: str, language: Language, timeout: float | None
    ) -> ExecResult:
        """Run to completion and return the result."""
        for event in self.start(container_id, code, language, timeout):
            if isinstance(event, ExecFinished):
                return event.result
        raise AssertionError("an execution ends with ExecFinished")

    def _run(self, container_id: str, request: ExecRequest) -> Iterator[StreamEvent]:
        with self._lock(container_id).held() as waited, self._activity.busy(container_id):
            if waited:
                self._touch(container_id)  # it may have expired while waiting its turn
            started = time.monotonic()
            result = ExecResult(
                id=new_exec_id(), container_id=container_id, language=request.language
            )
            done: ExecDone | None = None
            with runtime_errors("run code in the sandbox"):
                for event in self._runtime.execute(container_id, request):
                    if isinstance(event, OutputChunk):
                        self._collect(result, event)
                        yield event
                    elif isinstance(event, ImageOutput):
                        result.images.append(event)
                        yield event
                    elif isinstance(event, ExecDone):
                        done = event
            assert done is not None
            self._finish(result, done)
            result.files = self._files.record_changes(container_id, done.files, done.removed)
            result.duration_ms = int((time.monotonic() - started) * 1000)
            if result.duration_ms >= 1000:  # last_active_at has whole seconds: a short call
                self._containers.touch(container_id, int(self._clock()))  # was counted at start
        log.info(
            "exec %s in %s: %s in %d ms", result.id, container_id, result.status, result.duration_ms
        )
        yield ExecFinished(result)

    @staticmethod
    def _collect(result: ExecResult, chunk: OutputChunk) -> None:
        if chunk.stream == "stdout":
            result.stdout += chunk.text
        else:
            result.stderr += chunk.text
        result.logs += chunk.text

    @staticmethod
    def _finish(result: ExecResult, done: ExecDone) -> None:
        result.status = done.status
        result.error = done.error
        result.state_preserved = done.state_preserved
        result.exit_code = done.exit_code
        for stream in ("stdout", "stderr"):
            dropped = done.truncated.get(stream, 0)
            if dropped:
                marker = truncation_marker(dropped)
                setattr(result, stream, getattr(result, stream) + marker)
                result.logs += marker

    def _touch(self, container_id: str) -> None:
        touch_running(self._containers, container_id, int(self._clock()))
