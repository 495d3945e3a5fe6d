"""Composition root: the only place that builds concrete objects and wires them together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from server.api import container_files, containers, execution, files, health
from server.api.deps import require_api_key
from server.api.uploads import BodyLimitMiddleware
from server.config import Settings
from server.errors import install_error_handlers
from server.ids import Clock, system_clock
from server.middleware import RequestIdMiddleware
from server.runtime import SandboxRuntime, SandboxRuntimeError
from server.scheduler import Scheduler
from server.services.activity import Activity
from server.services.container_files import ContainerFileService
from server.services.containers import ContainerService
from server.services.execution import ExecutionService
from server.services.files import FileService
from server.store import (
    BlobStore,
    ContainerFileRepository,
    ContainerRepository,
    Database,
    FileRepository,
)

log = logging.getLogger("localbox")


def create_app(
    settings: Settings, runtime: SandboxRuntime | None = None, clock: Clock | None = None
) -> FastAPI:
    """Build the ASGI app: store, runtime, services, routers and error handlers."""
    clock = clock or system_clock
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    if runtime is None:
        from server.runtime.docker import DockerRuntime

        runtime = DockerRuntime(
            settings.sandbox_image,
            settings.instance_id,
            cpus=settings.sandbox_cpus,
            pids_limit=settings.sandbox_pids_limit,
            tmp_size=settings.sandbox_tmp_size,
            disk_limit=settings.sandbox_disk_bytes,
        )
    container_repo = ContainerRepository(db)
    file_service = FileService(
        FileRepository(db),
        BlobStore(settings.resolved_data_dir / "files"),
        clock,
        max_bytes=settings.max_upload_bytes,
    )
    container_file_service = ContainerFileService(
        container_repo,
        ContainerFileRepository(db),
        file_service,
        runtime,
        clock,
        disk_limit=settings.sandbox_disk_bytes,
    )
    activity = Activity()
    container_service = ContainerService(
        container_repo,
        container_file_service,
        runtime,
        activity,
        clock,
        default_minutes=settings.default_expiry_minutes,
        max_minutes=settings.max_expiry_minutes,
    )

    execution_service = ExecutionService(
        container_repo,
        container_file_service,
        runtime,
        activity,
        clock,
        default_timeout=settings.exec_default_timeout,
        max_timeout=settings.exec_max_timeout,
        max_output=settings.exec_max_output_bytes,
        disk_limit=settings.sandbox_disk_bytes,
        max_image_bytes=settings.exec_max_image_bytes,
        max_error_bytes=settings.exec_max_error_bytes,
        queue_depth=settings.exec_queue_depth,
    )

    def health_checks() -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            db.ping()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"down: {exc.__class__.__name__}"
        try:
            runtime.ping()
            checks["docker"] = "ok"
        except SandboxRuntimeError as exc:
            checks["docker"] = f"down: {exc}"
        return checks

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(db.create_tables)
        try:
            await run_in_threadpool(container_service.reconcile, 0.0)
        except SandboxRuntimeError as exc:
            log.warning("reconcile skipped at start: %s", exc)
        scheduler = Scheduler(
            container_service,
            sweep_seconds=settings.expiry_sweep_seconds,
            reconcile_seconds=settings.reconcile_seconds,
        )
        scheduler.start()
        log.info("localbox ready (data dir %s)", settings.resolved_data_dir)
        try:
            yield
        finally:
            await run_in_threadpool(scheduler.shutdown)
            execution_service.close()
            db.close()

    app = FastAPI(
        title="localbox",
        version="0.1.0",
        description="Self-hosted, OpenAI-compatible Containers API on Docker sandboxes.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.containers = container_service
    app.state.container_files = container_file_service
    app.state.files = file_service
    app.state.execution = execution_service
    app.state.health_checks = health_checks

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])
    v1.include_router(containers.router)
    v1.include_router(container_files.router)
    v1.include_router(files.router)
    v1.include_router(execution.router)
    app.include_router(v1)
    app.include_router(health.router)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(RequestIdMiddleware)
    return app
