"""ExecutionService: run code in a container's sandbox, one call at a time per container.

A call's work runs on a thread of its own pool and hands its events to the event loop as
they come; the HTTP side only reads them. So a client that goes away cancels the call
(the agent interrupts the code, like a timeout) without wedging anything, the turn is given
back as soon as the work ends, and waiting calls hold no thread (see exec_queue.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from starlette.concurrency import run_in_threadpool

from server import metrics
from server.domain import ContainerFile
from server.errors import ContainerBusy, InvalidRequest
from server.ids import Clock, new_exec_id
from server.runtime import (
    ExecDone,
    ExecError,
    ExecRequest,
    ImageOutput,
    OutputChunk,
    SandboxRuntime,
)
from server.services.activity import Activity
from server.services.container_files import ContainerFileService
from server.services.coordination import Coordination, Lease, LeaseTimeout, Solo, exec_key
from server.services.errors import runtime_errors, touch_running
from server.services.exec_queue import ExecQueues
from server.store import ContainerRepository, StorageFull

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


CANCEL_RETRY_SECONDS = 0.2
NOT_RECORDED = (
    "\n[localbox: the data disk is full, so the files this call changed are not in the "
    "file list yet; they appear once there is room]\n"
)


def truncation_marker(dropped: int) -> str:
    return f"\n[localbox: output truncated, {dropped} more bytes not shown]\n"


class ExecCall:
    """One call under way: its events in order, and cancel() for a listener that leaves."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        request: ExecRequest,
        cancel: Callable[[], None],
        *,
        streaming: bool = True,
    ) -> None:
        self.request = request
        self.streaming = streaming
        """False when only the result is wanted: output is then not handed over piece by
        piece (each hand-over wakes the event loop)."""
        self._loop = loop
        self._events: asyncio.Queue[StreamEvent | BaseException] = asyncio.Queue()
        self.finished = False
        self.cancel_requested = False
        self._cancel = cancel
        self.ended = threading.Event()
        """Set by the worker when the call's work is over, whatever its outcome."""

    def put(self, item: StreamEvent | BaseException) -> None:
        """Hand an event over from the worker thread."""
        if not self.streaming and isinstance(item, OutputChunk | ImageOutput):
            return
        self._loop.call_soon_threadsafe(self._events.put_nowait, item)

    async def events(self, idle: float | None = None) -> AsyncIterator[StreamEvent | None]:
        """The call's events up to ExecFinished; None after each `idle` seconds without one.
        Leaving early (break, error, cancellation) cancels the call."""
        try:
            while True:
                try:
                    item = await asyncio.wait_for(self._events.get(), idle)
                except TimeoutError:
                    yield None
                    continue
                if isinstance(item, BaseException):
                    self.finished = True
                    raise item
                if isinstance(item, ExecFinished):
                    self.finished = True
                yield item
                if self.finished:
                    return
        finally:
            if not self.finished:
                self.cancel()

    async def result(self) -> ExecResult:
        async for event in self.events():
            if isinstance(event, ExecFinished):
                return event.result
        raise AssertionError("an execution ends with ExecFinished")

    def cancel(self) -> None:
        if not self.finished and not self.cancel_requested:
            self.cancel_requested = True
            self._loop.run_in_executor(None, self._cancel_until_ended)

    def _cancel_until_ended(self) -> None:
        """Ask the sandbox to stop the call until its work is over: a cancel that arrives
        before the call reached the sandbox (the sandbox still starting, say) finds nothing
        to stop, so it is asked again."""
        deadline = time.monotonic() + self.request.timeout + 10
        while not self.ended.is_set() and time.monotonic() < deadline:
            self._cancel()
            self.ended.wait(CANCEL_RETRY_SECONDS)


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
        max_image_bytes: int = 16 << 20,
        max_error_bytes: int = 64 << 10,
        queue_depth: int = 8,
        coordination: Coordination | None = None,
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
        self.max_image_bytes = max_image_bytes
        self.max_error_bytes = max_error_bytes
        self.queues = ExecQueues(queue_depth)
        self._coordination: Coordination = coordination or Solo("")
        # Calls run here, not on the server's shared thread pool, so that long calls in many
        # containers never starve requests that need a thread for a moment.
        self._executor = ThreadPoolExecutor(max_workers=256, thread_name_prefix="exec")

    async def start(
        self,
        container_id: str,
        code: str,
        language: Language,
        code_timeout: float | None,
        *,
        streaming: bool = True,
    ) -> ExecCall:
        """Check the call, wait for the container's turn, and start it."""
        if code_timeout is not None and not (math.isfinite(code_timeout) and code_timeout > 0):
            raise InvalidRequest("timeout must be a positive, finite number of seconds.", "timeout")
        self.queues.check_room(container_id)
        await run_in_threadpool(self._touch, container_id)
        if streaming:
            # A stream's status goes out before the call reaches the sandbox: an engine that
            # does not answer is found now, while the answer can still be a 503.
            await run_in_threadpool(self._engine_answers)
        seconds = min(code_timeout or self.default_timeout, self.max_timeout)
        asked = time.monotonic()
        release, waited = await self.queues.acquire(container_id, seconds)
        lease: Lease | None = None
        try:
            # Then the turn among replicas (another may run a call in it): the same wait.
            lease = await self._turn(container_id, seconds - (time.monotonic() - asked))
            if waited or lease.waited:  # it may have expired or been deleted meanwhile
                await run_in_threadpool(self._touch, container_id)
            request = ExecRequest(
                id=new_exec_id(),
                code=code,
                language=language,
                timeout=seconds,
                max_output=self.max_output,
                disk_limit=self.disk_limit,
                max_image_bytes=self.max_image_bytes,
                max_error_bytes=self.max_error_bytes,
            )
            loop = asyncio.get_running_loop()
            call = ExecCall(
                loop,
                request,
                lambda: self._runtime.cancel(container_id, request.id),
                streaming=streaming,
            )
            work = loop.run_in_executor(self._executor, self._work, container_id, call, lease)
        except BaseException:
            if lease is not None:
                lease.release()
            release()
            raise
        work.add_done_callback(lambda _: release())
        return call

    async def _turn(self, container_id: str, wait: float) -> Lease:
        try:
            return await self._coordination.acquire(exec_key(container_id), max(wait, 0.0))
        except LeaseTimeout:
            raise ContainerBusy(
                f"The call waited its whole timeout ({wait:g} s) for a call on this container "
                "in another replica to finish and never ran. Try again, or give it a longer "
                "timeout."
            ) from None

    async def run(
        self, container_id: str, code: str, language: Language, code_timeout: float | None
    ) -> ExecResult:
        """Run to completion and return the result."""
        call = await self.start(container_id, code, language, code_timeout, streaming=False)
        return await call.result()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _work(self, container_id: str, call: ExecCall, lease: Lease) -> None:
        """The call itself, on a worker thread: every event goes to call, the last one being
        ExecFinished (or the exception that ended it). The lease goes back once it is over."""
        request = call.request
        started = time.perf_counter()
        try:
            with self._activity.busy(container_id):
                if lease.took_over:  # its holder died mid-call: what it ran is a stray
                    with runtime_errors("stop the calls a stopped replica left running"):
                        self._runtime.stop_stray_calls(container_id)
                result = self._execute(container_id, call)
        except BaseException as exc:
            metrics.observe_exec("failed", time.perf_counter() - started)
            call.put(exc)
            return
        finally:
            lease.release()
            call.ended.set()
        metrics.observe_exec(result.status, time.perf_counter() - started)
        log.info(
            "exec %s in %s: %s in %d ms",
            request.id,
            container_id,
            result.status,
            result.duration_ms,
        )
        call.put(ExecFinished(result))

    def _execute(self, container_id: str, call: ExecCall) -> ExecResult:
        request = call.request
        started = time.monotonic()
        result = ExecResult(id=request.id, container_id=container_id, language=request.language)
        done: ExecDone | None = None
        with runtime_errors("run code in the sandbox"):
            for event in self._runtime.execute(container_id, request):
                if isinstance(event, OutputChunk):
                    self._collect(result, event)
                    call.put(event)
                elif isinstance(event, ImageOutput):
                    result.images.append(event)
                    call.put(event)
                elif isinstance(event, ExecDone):
                    done = event
        assert done is not None
        self._finish(result, done)
        # The code has run: a full data disk must not turn its result into an error (a
        # client would run it again); what could not be written is written later.
        try:
            result.files = self._files.record_changes(container_id, done.files, done.removed)
            if done.files_incomplete:
                self._files.sync(container_id)
        except StorageFull as exc:
            log.warning("ran code in %s; its files are not recorded yet: %s", container_id, exc)
            result.stderr += NOT_RECORDED
            result.logs += NOT_RECORDED
        result.duration_ms = int((time.monotonic() - started) * 1000)
        if result.duration_ms >= 1000:  # last_active_at has whole seconds: a short call
            # was counted at start. The call kept the container in use (the sweep spares a
            # busy container), so a deadline passed meanwhile is moved on all the same.
            with contextlib.suppress(StorageFull):
                self._containers.touch(container_id, int(self._clock()), past_deadline=True)
        return result

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

    def _engine_answers(self) -> None:
        with runtime_errors("reach the sandbox engine"):
            self._runtime.ping()
