"""Composition root: the only place that builds concrete objects and wires them together."""

from __future__ import annotations

import logging
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from server import metrics
from server.api import container_files, containers, execution, files, health, responses, skills
from server.api import metrics as metrics_api
from server.api.deps import require_api_key
from server.api.uploads import BodyLimitMiddleware
from server.config import Settings
from server.console import install_console
from server.domain import MEMORY_LIMITS
from server.errors import SandboxFailure, Translator, install_error_handlers
from server.host_memory import HostMemory
from server.ids import Clock, new_replica_id, system_clock
from server.instance import load_instance_id
from server.mcp.services_backend import ServicesBackend
from server.mcp.tools import Tools, build_server
from server.mcp.transport import StreamableHttp
from server.middleware import LoopbackGuardMiddleware, RequestMiddleware
from server.runtime import SandboxRuntime, SandboxRuntimeError
from server.scheduler import Scheduler
from server.services.activity import Activity
from server.services.capacity import Capacity, Limits
from server.services.container_files import ContainerFileService
from server.services.containers import ContainerService
from server.services.coordination import Coordination, Replicas, Solo
from server.services.cpu_arbiter import CpuArbiter
from server.services.errors import OutageCheck, disk_full
from server.services.execution import ExecutionService
from server.services.files import FileService
from server.services.responses import ResponseService, SandboxServices, TurnSettings
from server.services.skill_bundle import BundleLimits
from server.services.skills import SkillService
from server.services.warm_pool import WarmPool
from server.store import (
    BlobStore,
    ContainerFileRepository,
    ContainerRepository,
    Database,
    DatabaseInUse,
    Deployment,
    DiskReserve,
    FileRepository,
    LeaseRepository,
    ResponseRepository,
    SkillBundleStore,
    SkillRepository,
    StorageFull,
)
from server.upstream import make_upstream

log = logging.getLogger("localbox")


def create_app(
    settings: Settings, runtime: SandboxRuntime | None = None, clock: Clock | None = None
) -> FastAPI:
    """Build the ASGI app: store, runtime, services, routers and error handlers."""
    clock = clock or system_clock
    data_dir = settings.resolved_data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    instance_id = load_instance_id(data_dir)
    # Room kept on the data disk so that deletes (and a start-up's repairs) always work.
    reserve = DiskReserve(data_dir / ".reserve")
    db = Database(
        settings.resolved_database_url,
        reserve,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout,
    )
    replica_id = new_replica_id()
    # On PostgreSQL, several servers with one data dir may share the database as replicas:
    # they take turns through leases in it. On SQLite a server is alone (see instance.py).
    coordination: Coordination = (
        Replicas(LeaseRepository(db), replica_id, ttl=settings.lease_seconds)
        if db.dialect == "postgresql"
        else Solo(replica_id)
    )
    own_runtime = runtime is None
    if runtime is None:
        from server.runtime.docker import DockerRuntime

        runtime = DockerRuntime(
            settings.sandbox_image,
            instance_id,
            cpus=settings.sandbox_cpus,
            pids_limit=settings.sandbox_pids_limit,
            tmp_size=settings.sandbox_tmp_size,
            disk_limit=settings.sandbox_disk_bytes,
            cgroup_parent=settings.sandbox_cgroup_parent,
            egress_image=settings.egress_image,
            egress_subnets=settings.egress_subnets,
            egress_extra_ca=settings.egress_extra_ca_pem,
            egress_allow_private=settings.egress_allow_private_list,
            egress_max_connections=settings.egress_max_connections,
            egress_connection_rate=settings.egress_connection_rate,
            sandbox_runtime=settings.sandbox_runtime,
            replica=replica_id,
        )
    container_repo = ContainerRepository(db)
    file_repo = FileRepository(db)
    host_memory = HostMemory(sandbox_cgroup=settings.sandbox_cgroup_parent)
    capacity = Capacity(
        container_repo,
        file_repo,
        Limits(
            max_containers=settings.max_containers,
            memory_budget=settings.memory_budget,
            min_free_memory=settings.min_free_memory,
            host_memory=host_memory.total,
            max_files_bytes=settings.max_files_bytes,
            min_free_disk=settings.min_free_disk,
            disk_paths=(data_dir, Path(tempfile.gettempdir())),
        ),
        reserve=reserve,
        free_memory=host_memory.available,
    )
    file_service = FileService(
        file_repo,
        BlobStore(data_dir / "files"),
        clock,
        max_bytes=settings.max_upload_bytes,
        capacity=capacity,
    )
    container_file_service = ContainerFileService(
        container_repo,
        ContainerFileRepository(db),
        file_service,
        runtime,
        clock,
        disk_limit=settings.sandbox_disk_bytes,
        coordination=coordination,
    )
    skill_bundles = SkillBundleStore(data_dir / "skills")
    skill_service = SkillService(
        SkillRepository(db),
        skill_bundles,
        clock,
        limits=BundleLimits(max_files=settings.skill_max_files, max_bytes=settings.skill_max_bytes),
    )
    activity = Activity()
    cpu_arbiter = CpuArbiter(
        runtime, lambda: container_repo.ids_with_status("running"), settings.sandbox_cpus
    )
    pool = WarmPool(
        runtime,
        size=settings.warm_pool,
        memory_bytes=MEMORY_LIMITS["1g"],
        warm_imports=settings.warm_import_list,
        has_room=capacity.room_for_a_spare,
        replica=replica_id if own_runtime else "",
    )
    container_service = ContainerService(
        container_repo,
        container_file_service,
        runtime,
        activity,
        clock,
        default_minutes=settings.default_expiry_minutes,
        max_minutes=settings.max_expiry_minutes,
        capacity=capacity,
        pool=pool,
        skills=skill_service,
        coordination=coordination,
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
        coordination=coordination,
    )

    upstream = None
    if settings.model_base_url:
        upstream = make_upstream(
            settings.model_api,
            settings.model_base_url,
            settings.model_api_key.get_secret_value(),
            timeout=settings.model_timeout,
            max_retries=settings.model_max_retries,
        )
    response_service = ResponseService(
        ResponseRepository(db),
        file_service,
        SandboxServices(container_service, container_file_service, execution_service),
        upstream,
        TurnSettings(
            max_rounds=settings.responses_max_tool_rounds,
            max_tool_output=settings.responses_max_tool_output,
        ),
    )

    # Failures of lower layers answered as API errors, at the REST door and the MCP one.
    translated: dict[type[Exception], Translator] = {
        StorageFull: disk_full,
        SandboxFailure: OutageCheck(runtime).answer,
    }
    mcp_http = StreamableHttp(
        build_server(
            Tools(
                ServicesBackend(
                    container_service,
                    container_file_service,
                    execution_service,
                    capacity,
                    translated,
                ),
                max_read_bytes=settings.mcp_max_read_bytes,
            )
        ),
        api_keys=settings.api_key_list,
        max_body_bytes=settings.max_json_bytes,
    )

    last_health: dict[str, str] = {}

    def check(name: str, probe: Callable[[], None]) -> str:
        # The reason goes to the log (once per change), never to the unauthenticated caller.
        try:
            probe()
            state = "ok"
        except Exception as exc:
            state = "down"
            if last_health.get(name) != state:
                log.warning("health: %s is down: %s", name, exc)
        if last_health.get(name) == "down" and state == "ok":
            log.info("health: %s is back", name)
        last_health[name] = state
        return state

    def health_checks() -> dict[str, str]:
        return {"database": check("database", db.ping), "docker": check("docker", runtime.ping)}

    def snapshot() -> metrics.Snapshot:
        try:
            sandboxes: int | None = len(runtime.list_sandboxes())
        except SandboxRuntimeError:
            sandboxes = None
        usage = capacity.usage()
        return metrics.Snapshot(
            containers=container_repo.count_by_status(),
            sandboxes=sandboxes,
            memory_limit_bytes=usage.memory,
            memory_budget_bytes=capacity.limits.memory_budget,
            memory_available_bytes=capacity.free_memory(),
            min_free_memory_bytes=capacity.limits.min_free_memory,
            files_bytes=usage.files_bytes,
            max_files_bytes=capacity.limits.max_files_bytes,
            disk_free_bytes=capacity.disk_free(),
            min_free_disk_bytes=capacity.limits.min_free_disk,
            max_containers=capacity.limits.max_containers,
            warm_pool_ready=pool.ready_count(),
            warm_pool_size=pool.size,
        )

    def clean_data_disk() -> None:
        try:
            file_service.reconcile()
            skill_bundles.remove_scratch()
        except Exception:
            log.exception("could not clean up unfinished uploads at start")
        if not capacity.keep_reserve():
            log.warning(
                "the data disk has no room for its %d MiB reserve: uploads and creates are "
                "refused until space is freed",
                reserve.size >> 20,
            )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        owner = Deployment(
            instance_id=instance_id,
            data_dir=str(data_dir),
            host=socket.gethostname(),
            created_at=int(clock()),
        )
        try:
            await run_in_threadpool(db.create_tables, owner)
        except DatabaseInUse as exc:
            log.error("refusing to start: %s", exc)
            raise
        await run_in_threadpool(coordination.start)
        others = await run_in_threadpool(lambda: coordination.alive() - {replica_id})
        if others:
            # Replicas at work: what looks left over may be theirs, in flight. The leading
            # replica reconciles on its schedule, with a grace for work under way.
            log.info("replica %s joins %d other(s) on this database", replica_id, len(others))
        else:
            try:
                await run_in_threadpool(container_service.reconcile, 0.0)
            except SandboxRuntimeError as exc:
                log.warning("reconcile skipped at start: %s", exc)
            # Start-up clean-up of the data disk: what killed uploads left, then the reserve.
            await run_in_threadpool(clean_data_disk)
        scheduler = Scheduler(
            container_service,
            file_service,
            sweep_seconds=settings.expiry_sweep_seconds,
            reconcile_seconds=settings.reconcile_seconds,
            coordination=coordination,
        )
        scheduler.start()
        await run_in_threadpool(pool.start)
        if settings.cpu_step_aside:
            cpu_arbiter.start()
        log.info("localbox ready (data dir %s, instance %s)", data_dir, instance_id)
        try:
            async with mcp_http.run():
                yield
        finally:
            await run_in_threadpool(scheduler.shutdown)
            await run_in_threadpool(pool.close)
            await run_in_threadpool(cpu_arbiter.close)
            await run_in_threadpool(coordination.close)
            execution_service.close()
            await response_service.close()
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
    app.state.skills = skill_service
    app.state.responses = response_service
    app.state.health_checks = health_checks
    app.state.runtime = runtime
    app.state.capacity = capacity
    app.state.metrics_registry = metrics.build_registry(snapshot)

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])
    v1.include_router(containers.router)
    v1.include_router(container_files.router)
    v1.include_router(files.router)
    v1.include_router(execution.router)
    v1.include_router(skills.router)
    v1.include_router(responses.router)
    app.include_router(v1)
    app.include_router(health.router)
    app.include_router(metrics_api.router, dependencies=[Depends(require_api_key)])
    install_console(app)
    app.router.routes.append(mcp_http.route())
    install_error_handlers(app, translated)
    app.add_middleware(
        BodyLimitMiddleware,
        max_upload_bytes=settings.max_upload_bytes,
        max_json_bytes=settings.max_json_bytes,
    )
    if not settings.api_key_list:
        app.add_middleware(LoopbackGuardMiddleware, allowed_hosts=settings.allowed_host_list)
    app.add_middleware(RequestMiddleware)  # outermost: every answer gets an id and a log line
    return app
