"""DockerRuntime: one hardened Docker container (plus a labelled volume) per sandbox."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import BinaryIO

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container as DockerContainer

from server.runtime.agent import AgentClient, AgentGone, AgentWedged
from server.runtime.base import (
    ExecDone,
    ExecError,
    ExecEvent,
    ExecRequest,
    RuntimeUnavailable,
    SandboxFile,
    SandboxFileNotFound,
    SandboxInfo,
    SandboxNotFound,
    SandboxRuntimeError,
    SandboxSpec,
    SandboxState,
)
from server.runtime.docker_attach import AttachChannel
from server.runtime.tar_stream import tar_one_file, untar_first_file

log = logging.getLogger("localbox.runtime")

LABEL_CONTAINER = "localbox.container_id"
LABEL_INSTANCE = "localbox.instance"
LABEL_MANAGED = "localbox.managed"
SANDBOX_UID = 1000
SANDBOX_USER = f"{SANDBOX_UID}:{SANDBOX_UID}"
GO_MODE_DIR = 1 << 31
LIST_FORMAT = "%s\\t%T@\\t%P\\0"
DATA_PATH = "/mnt/data"


def sandbox_name(container_id: str) -> str:
    return f"localbox-{container_id}"


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn docker and transport exceptions into the runtime's own errors."""
    try:
        yield
    except docker.errors.NotFound as exc:
        raise SandboxNotFound(f"{action}: {exc.explanation or exc}") from exc
    except docker.errors.ImageNotFound as exc:
        raise SandboxRuntimeError(f"{action}: sandbox image missing: {exc}") from exc
    except docker.errors.APIError as exc:
        if exc.status_code is not None and exc.status_code >= 500 and "connect" in str(exc):
            raise RuntimeUnavailable(f"{action}: Docker engine unavailable") from exc
        raise SandboxRuntimeError(f"{action}: {exc.explanation or exc}") from exc
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        raise RuntimeUnavailable(f"{action}: Docker engine unavailable ({exc})") from exc


class DockerRuntime:
    """SandboxRuntime on a local Docker engine, reached through the docker SDK."""

    def __init__(
        self,
        image: str,
        instance: str,
        *,
        cpus: float = 1.0,
        pids_limit: int = 256,
        tmp_size: str = "256m",
        client_factory: Callable[[], docker.DockerClient] | None = None,
    ) -> None:
        self.image = image
        self.instance = instance
        self.cpus = cpus
        self.pids_limit = pids_limit
        self.tmp_size = tmp_size
        self._client_factory = client_factory or (lambda: docker.from_env(timeout=60))
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()
        self._agents: dict[str, AgentClient] = {}

    @property
    def client(self) -> docker.DockerClient:
        # Built lazily so the server starts (and /health reports) while Docker is down.
        with self._lock:
            if self._client is None:
                with _translated("connect"):
                    self._client = self._client_factory()
            return self._client

    def labels(self, container_id: str) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_INSTANCE: self.instance,
            LABEL_CONTAINER: container_id,
        }

    def ping(self) -> None:
        with _translated("ping"):
            self.client.ping()

    def create(self, spec: SandboxSpec) -> None:
        name = sandbox_name(spec.container_id)
        labels = self.labels(spec.container_id)
        client = self.client
        try:
            with _translated("create sandbox"):
                client.volumes.create(name=name, labels=labels)
                container = client.containers.create(
                    self.image,
                    name=name,
                    labels=labels,
                    detach=True,
                    user=SANDBOX_USER,
                    working_dir=DATA_PATH,
                    network_mode="none",
                    cap_drop=["ALL"],
                    security_opt=["no-new-privileges"],
                    pids_limit=self.pids_limit,
                    mem_limit=spec.memory_bytes,
                    memswap_limit=spec.memory_bytes,
                    nano_cpus=int(self.cpus * 1e9),
                    read_only=True,
                    volumes={name: {"bind": DATA_PATH, "mode": "rw"}},
                    tmpfs={"/tmp": f"rw,nosuid,nodev,size={self.tmp_size}"},
                    init=True,
                    stdin_open=True,  # the agent reads requests from its stdin
                    log_config=docker.types.LogConfig(
                        type="json-file", config={"max-size": "1m", "max-file": "1"}
                    ),
                    # The engine starts sandboxes again itself after it (or the host) restarts.
                    restart_policy={"Name": "unless-stopped"},  # type: ignore[arg-type]
                    ulimits=[docker.types.Ulimit(name="nofile", soft=4096, hard=4096)],
                )
                container.start()
        except SandboxRuntimeError:
            self._remove_quietly(spec.container_id)
            raise

    def destroy(self, container_id: str) -> None:
        self._drop_agent(container_id)
        name = sandbox_name(container_id)
        with _translated("remove sandbox"):
            with suppress(docker.errors.NotFound):
                self.client.containers.get(name).remove(force=True)
            with suppress(docker.errors.NotFound):
                self.client.volumes.get(name).remove(force=True)

    def start(self, container_id: str) -> None:
        sandbox = self._sandbox(container_id)
        with _translated("start sandbox"):
            sandbox.start()

    def list_sandboxes(self) -> list[SandboxInfo]:
        with _translated("list sandboxes"):
            found = self.client.containers.list(
                all=True, filters={"label": [f"{LABEL_INSTANCE}={self.instance}"]}
            )
            return [_info(c) for c in found if LABEL_CONTAINER in (c.labels or {})]

    def _sandbox(self, container_id: str) -> DockerContainer:
        with _translated("find sandbox"):
            return self.client.containers.get(sandbox_name(container_id))

    def _exec(self, container_id: str, argv: list[str], action: str) -> bytes:
        sandbox = self._sandbox(container_id)
        with _translated(action):
            code, output = sandbox.exec_run(argv, user=SANDBOX_USER, workdir=DATA_PATH)
        assert isinstance(output, bytes)
        if code != 0:
            raise SandboxRuntimeError(f"{action}: exit {code}: {output[-500:]!r}")
        return output

    def put_file(self, container_id: str, path: str, source: BinaryIO, size: int) -> None:
        sandbox = self._sandbox(container_id)
        archive = tar_one_file(path, source, size, uid=SANDBOX_UID, gid=SANDBOX_UID)
        with _translated("write file"):
            if not sandbox.put_archive(DATA_PATH, archive):
                raise SandboxRuntimeError("write file: the engine refused the archive")

    def open_file(self, container_id: str, path: str) -> tuple[int, Iterator[bytes]]:
        sandbox = self._sandbox(container_id)
        try:
            with _translated("read file"):
                chunks, stat = sandbox.get_archive(f"{DATA_PATH}/{path}")
        except SandboxNotFound as exc:
            raise SandboxFileNotFound(path) from exc
        if int((stat or {}).get("mode", 0)) & GO_MODE_DIR:
            raise SandboxFileNotFound(path)
        with _translated("read file"):
            return untar_first_file(chunks)

    def delete_file(self, container_id: str, path: str) -> None:
        self._exec(container_id, ["rm", "-f", "--", f"{DATA_PATH}/{path}"], "delete file")

    def list_files(self, container_id: str) -> list[SandboxFile]:
        argv = ["find", DATA_PATH, "-xdev", "-type", "f", "-printf", LIST_FORMAT]
        output = self._exec(container_id, argv, "list files")
        files = []
        for entry in output.split(b"\0"):
            size, _, rest = entry.partition(b"\t")
            mtime, _, raw_path = rest.partition(b"\t")
            try:
                path = raw_path.decode("utf-8")
            except UnicodeDecodeError:
                log.warning("skipping a file whose name is not UTF-8: %r", raw_path)
                continue
            if path:
                files.append(SandboxFile(path=path, bytes=int(size), mtime=float(mtime)))
        return files

    def execute(self, container_id: str, request: ExecRequest) -> Iterator[ExecEvent]:
        agent = self._agent(container_id)
        try:
            yield from agent.execute(request)
        except AgentGone as exc:
            log.warning("agent of %s went away: %s", container_id, exc)
            self._drop_agent(container_id)
            yield ExecDone(
                status="error",
                error=ExecError(
                    "SandboxRestarted",
                    "The sandbox stopped while running this code (it may have run out of "
                    "memory); it is starting again and its Python state is lost.",
                ),
                state_preserved=False,
            )
        except AgentWedged:
            log.warning("agent of %s is wedged; restarting the sandbox", container_id)
            self._drop_agent(container_id)
            with _translated("restart sandbox"):
                self._sandbox(container_id).restart(timeout=1)
            yield ExecDone(
                status="timeout",
                error=ExecError(
                    "TimeoutError",
                    f"The sandbox did not answer within {request.timeout} s; it was restarted "
                    "and its Python state is lost.",
                ),
                state_preserved=False,
            )

    def _agent(self, container_id: str) -> AgentClient:
        with self._lock:
            agent = self._agents.get(container_id)
        if agent is not None:
            return agent
        sandbox = self._sandbox(container_id)
        with _translated("attach to sandbox"):
            if sandbox.status != "running":
                sandbox.start()
            raw = self.client.api.attach_socket(
                sandbox_name(container_id),
                params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1},
            )
        sock = getattr(raw, "_sock", raw)
        agent = AgentClient(AttachChannel(sock, container_id))
        with self._lock:
            self._agents[container_id] = agent
        return agent

    def _drop_agent(self, container_id: str) -> None:
        with self._lock:
            agent = self._agents.pop(container_id, None)
        if agent is not None:
            agent.close()

    def _remove_quietly(self, container_id: str) -> None:
        try:
            self.destroy(container_id)
        except SandboxRuntimeError as exc:
            log.warning("could not clean up sandbox %s: %s", container_id, exc)


def _info(container: DockerContainer) -> SandboxInfo:
    state: SandboxState = "running" if container.status == "running" else "stopped"
    created = str(container.attrs.get("Created", ""))
    try:
        created_at = datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        created_at = 0.0
    return SandboxInfo(
        container_id=container.labels[LABEL_CONTAINER], state=state, created_at=created_at
    )
