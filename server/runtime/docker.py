"""DockerRuntime: one hardened Docker container (plus a labelled volume) per sandbox."""

from __future__ import annotations

import itertools
import logging
import select
import threading
import time
from collections.abc import Callable, Collection, Generator, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import datetime
from typing import BinaryIO

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container as DockerContainer

from server.runtime import volume_files
from server.runtime.agent import AgentClient, AgentGone, AgentWedged
from server.runtime.base import (
    EgressPolicy,
    ExecDone,
    ExecError,
    ExecEvent,
    ExecRequest,
    OutputChunk,
    RuntimeUnavailable,
    SandboxFile,
    SandboxFileNotFound,
    SandboxInfo,
    SandboxNotFound,
    SandboxRuntimeError,
    SandboxSpec,
    SandboxState,
    SpareInfo,
    StagedFile,
)
from server.runtime.cpu_cgroup import CpuCgroup, cpu_cgroup
from server.runtime.docker_attach import AttachChannel
from server.runtime.docker_egress import DockerEgress
from server.runtime.engine_runtimes import RuntimeChoice, RuntimeMisconfigured, choose
from server.runtime.tar_stream import tar_one_file

log = logging.getLogger("localbox.runtime")

LABEL_CONTAINER = "localbox.container_id"
LABEL_INSTANCE = "localbox.instance"
LABEL_MANAGED = "localbox.managed"
LABEL_SPARE = "localbox.spare"
LABEL_REPLICA = "localbox.replica"
DRAIN_SECONDS = 0.5
NAME_PREFIX = "localbox-"
SPARE_PREFIX = "spare_"
SANDBOX_UID = 1000
# The agent runs as root inside the sandbox, with only what it needs to start the user's
# code as SANDBOX_UID, stop it, and see every file under /mnt/data; the user's code keeps
# no capability at all (see sandbox-image/agent/localbox_agent/procs.py).
AGENT_USER = "0:0"
AGENT_CAPABILITIES = ["SETUID", "SETGID", "KILL", "DAC_OVERRIDE"]
DATA_PATH = "/mnt/data"
GVISOR_THREADS_PER_TASK = 16
"""The engine's pids limit for a gVisor sandbox, per process or thread it may run."""
GVISOR_BYTES_PER_TASK = 16 << 20
"""Under gVisor, a sandbox may run one process or thread per this much of its memory limit
(at most LOCALBOX_SANDBOX_PIDS_LIMIT)."""
SANDBOX_OOM_SCORE_ADJ = 1000
"""Sandboxes are the first the OOM killer takes under host memory pressure."""
RESTARTED_NOTICE = (
    "[localbox: the sandbox restarted since the last call (the Docker engine or the sandbox "
    "was restarted); its Python state was lost]\n"
)
SKILLS_PATH = "/mnt/skills"
FILEOPS = ["python3", "-I", "-S", "/opt/localbox/localbox_agent/fileops.py"]


def sandbox_name(container_id: str) -> str:
    """The Docker name of a sandbox, and its only link to its container: labels cannot
    change, so a spare that a container claims is renamed to the container's name."""
    return f"{NAME_PREFIX}{container_id}"


def skills_volume_name(container_id: str) -> str:
    return f"localbox-{container_id}-skills"


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
        disk_limit: int = 0,
        cgroup_parent: str = "",
        client_factory: Callable[[], docker.DockerClient] | None = None,
        egress_image: str = "localbox-egress:latest",
        egress_subnets: str = "10.213.0.0/16",
        egress_extra_ca: str = "",
        egress_allow_private: tuple[str, ...] = (),
        egress_max_connections: int = 64,
        egress_connection_rate: float = 20.0,
        direct_volume_io: bool = True,
        sandbox_runtime: str = "runc",
        replica: str = "",
    ) -> None:
        self.image = image
        self.replica = replica
        """The server process this runtime works for: the spares it makes carry it."""
        self.sandbox_runtime = sandbox_runtime
        """LOCALBOX_SANDBOX_RUNTIME: the engine runtime sandboxes run under."""
        self._runtimes: RuntimeChoice | None = None
        self.instance = instance
        self.cpus = cpus
        self.pids_limit = pids_limit
        self.tmp_size = tmp_size
        self.disk_limit = disk_limit
        self.cgroup_parent = cgroup_parent
        """The cgroup every sandbox is made under ("" is the engine's default)."""
        self._client_factory = client_factory or (lambda: docker.from_env(timeout=60))
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()
        self._agents: dict[str, AgentClient] = {}
        self._attaching: dict[str, threading.Lock] = {}
        """Per sandbox, held while an attach to its agent is made."""
        self._draining = False
        """Whether the thread that reads idle channels runs (see _drain_idle)."""
        self._cpu_cgroups: dict[str, CpuCgroup | None] = {}
        """Each sandbox's CPU cgroup on this host, once looked for (see cpu_cgroup.py); None
        where this host does not show it (a server in a container), so it is not looked for
        again every second."""
        self._spare_memory: dict[str, int] = {}
        """The memory limit of the spares this runtime made, so a claim need not look."""
        self.direct_volume_io = direct_volume_io
        self._roots: dict[str, str | None] = {}
        """Each sandbox's data volume as a directory on this host, None where the server
        cannot reach it (see volume_files.py)."""
        self._staging: dict[str, set[str]] = {}
        """Per sandbox, the temporaries of uploads this process is writing (never swept)."""
        self._swept: set[str] = set()
        """Sandboxes whose stale temporaries are all gone (found by remove_stale_uploads)."""
        self._dirty: set[str] = set()
        """Sandboxes where this process failed to remove a temporary since the last sweep."""
        self.egress = DockerEgress(
            lambda: self.client,
            instance,
            image=egress_image,
            subnets=egress_subnets,
            extra_ca=egress_extra_ca,
            allow_private=egress_allow_private,
            max_connections=egress_max_connections,
            connection_rate=egress_connection_rate,
        )

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

    def preflight(self) -> None:
        """Check the engine has the sandbox runtime (RuntimeMisconfigured if not). An engine
        that does not answer is checked at the first create instead."""
        try:
            self.runtimes()
        except RuntimeUnavailable as exc:
            log.warning("cannot check LOCALBOX_SANDBOX_RUNTIME yet: %s", exc)

    def runtimes(self) -> RuntimeChoice:
        """The engine runtimes sandboxes are made with, looked up once."""
        if self._runtimes is None:
            with _translated("read the engine's runtimes"):
                engine = self.client.info().get("Runtimes") or {}
            self._runtimes = choose(self.sandbox_runtime, engine)
        return self._runtimes

    def create(self, spec: SandboxSpec) -> None:
        labels = self.labels(spec.container_id)
        self._run(spec.container_id, labels, spec.memory_bytes, spec.egress)

    def create_spare(self, spare_id: str, memory_bytes: int) -> None:
        labels = {LABEL_MANAGED: "true", LABEL_INSTANCE: self.instance, LABEL_SPARE: "true"}
        if self.replica:
            labels[LABEL_REPLICA] = self.replica
        self._run(spare_id, labels, memory_bytes)
        with self._lock:
            self._spare_memory[spare_id] = memory_bytes

    def list_spares(self) -> list[SpareInfo]:
        return [
            SpareInfo(ident, state, created, labels.get(LABEL_REPLICA, ""))
            for ident, state, created, labels in self._managed()
            if ident.startswith(SPARE_PREFIX)
        ]

    def _cpu_cgroup(self, container_id: str) -> CpuCgroup | None:
        with self._lock:
            if container_id in self._cpu_cgroups:
                return self._cpu_cgroups[container_id]
        try:
            pid = int(self._sandbox(container_id).attrs.get("State", {}).get("Pid") or 0)
        except SandboxRuntimeError:
            return None
        if not pid:
            return None  # not running: looked for again later
        found = cpu_cgroup(pid)
        with self._lock:
            self._cpu_cgroups[container_id] = found
        return found

    def cpu_usage(self, container_id: str) -> float | None:
        group = self._cpu_cgroup(container_id)
        if group is None:
            return None
        used = group.usage_seconds()
        if used is None:
            with self._lock:  # gone, or restarted into a cgroup of another name
                self._cpu_cgroups.pop(container_id, None)
        return used

    def set_cpu_low(self, container_id: str, low: bool) -> bool:
        group = self._cpu_cgroup(container_id)
        return group is not None and group.set_low(low)

    def resizes_memory(self) -> bool:
        # runsc has no `update`: the engine cannot change a gVisor sandbox's limits.
        try:
            return not self.runtimes().gvisor
        except (SandboxRuntimeError, RuntimeMisconfigured):
            return False

    def claim_spare(self, spare_id: str, spec: SandboxSpec) -> None:
        # A spare whose agent answers is running; only its memory limit may need a change.
        agent = self._answering_agent(spare_id)
        with self._lock:
            limit = self._spare_memory.pop(spare_id, None)
        with _translated("claim spare sandbox"):
            if limit is None:  # made by an earlier run
                limit = self._sandbox(spare_id).attrs.get("HostConfig", {}).get("Memory")
            if limit != spec.memory_bytes:
                self.client.api.update_container(
                    sandbox_name(spare_id),
                    mem_limit=spec.memory_bytes,
                    memswap_limit=spec.memory_bytes,
                )
            self.client.api.rename(sandbox_name(spare_id), sandbox_name(spec.container_id))
        with self._lock:
            self._agents[spec.container_id] = self._agents.pop(spare_id, agent)
            self._roots.pop(spare_id, None)
            self._forget_state(spare_id)

    def prune_volumes(self, grace_seconds: float) -> int:
        removed = 0
        now = time.time()
        with _translated("prune volumes"):
            dangling = self.client.volumes.list(
                filters={"label": f"{LABEL_INSTANCE}={self.instance}", "dangling": True}
            )
            for volume in dangling:
                if now - _timestamp(volume.attrs.get("CreatedAt")) < grace_seconds:
                    continue  # its sandbox may be being created
                with suppress(docker.errors.NotFound, docker.errors.APIError):
                    volume.remove(force=True)
                    removed += 1
        return removed

    def _run(
        self,
        ident: str,
        labels: dict[str, str],
        memory_bytes: int,
        egress: EgressPolicy | None = None,
    ) -> None:
        """Create and start one hardened sandbox named for ident, with its own volumes."""
        name = sandbox_name(ident)
        client = self.client
        try:
            runtimes = self.runtimes()
        except RuntimeMisconfigured as exc:
            raise SandboxRuntimeError(str(exc)) from exc
        try:
            with _translated("create sandbox"):
                # The engine makes the two volumes, labelled, as it creates the container:
                # two API calls fewer on the way to a started sandbox. Skills get a volume of
                # their own rather than a tmpfs: the archive API can write into it while the
                # sandbox runs, it survives restarts (a tmpfs comes back empty), and it is not
                # charged to the sandbox's memory limit.
                mounts = [
                    docker.types.Mount(DATA_PATH, name, type="volume", labels=labels),
                    docker.types.Mount(
                        SKILLS_PATH, skills_volume_name(ident), type="volume", labels=labels
                    ),
                ]
                environment = {"LOCALBOX_DISK_LIMIT": str(self.disk_limit)}
                pids_limit = self.pids_limit
                if runtimes.gvisor:
                    # gVisor's kernel runs several host threads per sandbox process (about 9
                    # on the ptrace platform) and holds host memory for each (megabytes for
                    # a forked interpreter). Going past the memory limit would take the whole
                    # sandbox down, so the sandbox user gets one process or thread per 16 MiB
                    # of it as RLIMIT_NPROC, which gVisor enforces, and the agent counts them
                    # too; the engine's pids limit is only the backstop.
                    tasks = min(self.pids_limit, max(32, memory_bytes // GVISOR_BYTES_PER_TASK))
                    environment["LOCALBOX_TASK_LIMIT"] = str(tasks)
                    pids_limit = self.pids_limit * GVISOR_THREADS_PER_TASK
                binds: dict[str, Mapping[str, str]] = {}
                network: str | None = None
                endpoints: dict[str, docker.types.EndpointConfig] | None = None
                if egress is not None:
                    # Its own internal network, whose only other member is the egress proxy.
                    attachment = self.egress.attach(ident, egress)
                    environment.update(attachment.environment)
                    binds.update(attachment.volumes)
                    network = attachment.network
                    endpoints = {
                        network: client.api.create_endpoint_config(ipv4_address=attachment.address)
                    }
                # NetworkingConfig takes {network: EndpointConfig}; the stubs say one endpoint.
                networking = (
                    docker.types.NetworkingConfig(endpoints)  # type: ignore[arg-type]
                    if endpoints
                    else None
                )
                host_config = client.api.create_host_config(
                    runtime=runtimes.networked if network else runtimes.isolated,
                    network_mode=network or "none",
                    cap_drop=["ALL"],
                    cap_add=AGENT_CAPABILITIES,
                    security_opt=["no-new-privileges"],
                    pids_limit=pids_limit,
                    mem_limit=memory_bytes,
                    memswap_limit=memory_bytes,
                    # A memory_limit is a ceiling, not memory held: when sandboxes together
                    # exhaust the host, the kernel kills sandbox code before anything else.
                    oom_score_adj=SANDBOX_OOM_SCORE_ADJ,
                    cgroup_parent=self.cgroup_parent or None,
                    nano_cpus=int(self.cpus * 1e9),
                    read_only=True,
                    mounts=mounts,
                    binds=binds or None,
                    tmpfs={"/tmp": f"rw,nosuid,nodev,size={self.tmp_size}"},
                    init=True,
                    log_config=docker.types.LogConfig(
                        type="json-file", config={"max-size": "1m", "max-file": "1"}
                    ),
                    # The engine starts sandboxes again itself after it (or the host) restarts.
                    restart_policy={"Name": "unless-stopped"},
                    ulimits=[docker.types.Ulimit(name="nofile", soft=4096, hard=4096)],
                )
                # The low-level calls: the SDK's containers.create would inspect the new
                # container once more before it could be started.
                created = client.api.create_container(
                    self.image,
                    name=name,
                    labels=labels,
                    user=AGENT_USER,
                    working_dir=DATA_PATH,
                    environment=environment,
                    stdin_open=True,  # the agent reads requests from its stdin
                    # Not attached at creation: else StdinOnce closes the agent's stdin when
                    # the first attach ends (a server restart would end the sandbox).
                    detach=True,
                    host_config=host_config,
                    networking_config=networking,
                )
                client.api.start(created["Id"])
        except SandboxRuntimeError:
            self._remove_quietly(ident)
            raise

    def destroy(self, container_id: str) -> None:
        self._drop_agent(container_id)
        with self._lock:
            self._spare_memory.pop(container_id, None)
            self._roots.pop(container_id, None)
            self._forget_state(container_id)
        name = sandbox_name(container_id)
        # A sandbox made for this container has volumes named for it; a claimed spare's
        # are named for the spare, so they are read from its mounts.
        volumes = [name, skills_volume_name(container_id)]
        with _translated("remove sandbox"):
            with suppress(docker.errors.NotFound):
                sandbox = self.client.containers.get(name)
                volumes = _own_volumes(sandbox) or volumes
                sandbox.remove(force=True)
            for volume in volumes:
                with suppress(docker.errors.NotFound):
                    self.client.volumes.get(volume).remove(force=True)
            self.egress.release(container_id)

    def start(self, container_id: str) -> None:
        sandbox = self._sandbox(container_id)
        with _translated("start sandbox"):
            sandbox.start()

    def list_sandboxes(self) -> list[SandboxInfo]:
        return [
            SandboxInfo(ident, state, created)
            for ident, state, created, _ in self._managed()
            if not ident.startswith(SPARE_PREFIX)
        ]

    def _managed(self) -> list[tuple[str, SandboxState, float, dict[str, str]]]:
        """(id, state, created, labels) of this instance's sandboxes; the id comes from the
        name."""
        with _translated("list sandboxes"):
            found = self.client.containers.list(
                all=True, filters={"label": [f"{LABEL_INSTANCE}={self.instance}"]}
            )
        managed = []
        for c in found:
            name = c.name or ""
            labels = c.labels or {}
            if LABEL_CONTAINER not in labels and LABEL_SPARE not in labels:
                continue  # not a sandbox (the egress proxy, say)
            if not name.startswith(NAME_PREFIX):
                continue
            state: SandboxState = "running" if c.status == "running" else "stopped"
            created = _timestamp(c.attrs.get("Created"))
            managed.append((name.removeprefix(NAME_PREFIX), state, created, labels))
        return managed

    def reconcile_egress(self, container_ids: Collection[str], grace_seconds: float) -> None:
        with _translated("reconcile egress"):
            self.egress.reconcile(container_ids, grace_seconds)

    def _sandbox(self, container_id: str) -> DockerContainer:
        with _translated("find sandbox"):
            return self.client.containers.get(sandbox_name(container_id))

    def _fileops(self, container_id: str, args: list[str], action: str) -> AttachChannel:
        """Start the sandbox's file helper (as root, symlinks never followed) and return the
        channel to its output."""
        with _translated(action):
            exec_id = self.client.api.exec_create(
                sandbox_name(container_id), FILEOPS + args, user="0", workdir=DATA_PATH
            )["Id"]
            raw = self.client.api.exec_start(exec_id, socket=True)
        return AttachChannel(raw, f"{container_id} fileops")

    def _fileops_output(self, container_id: str, args: list[str], action: str) -> bytes:
        return b"".join(_helper_output(self._fileops(container_id, args, action), action))

    def _data_root(self, container_id: str) -> str | None:
        """The sandbox's data volume as a directory this process can open, or None."""
        if not self.direct_volume_io:
            return None
        with self._lock:
            if container_id in self._roots:
                return self._roots[container_id]
        with _translated("find sandbox volume"):
            mounts = self._sandbox(container_id).attrs.get("Mounts") or []
        root = next(
            (
                str(m.get("Source"))
                for m in mounts
                if m.get("Destination") == DATA_PATH and m.get("Type") == "volume"
            ),
            None,
        )
        if root is not None and not volume_files.usable(root):
            root = None
        with self._lock:
            self._roots[container_id] = root
        return root

    def stage_file(self, container_id: str, path: str, source: BinaryIO, size: int) -> StagedFile:
        try:
            temp = volume_files.temporary_beside(path)
        except volume_files.NotAFile as exc:
            raise SandboxRuntimeError(f"write file: {exc}") from exc
        with self._lock:  # before it exists: a sweep never takes it for a leftover
            self._staging.setdefault(container_id, set()).add(temp)
        try:
            self._write_temporary(container_id, temp, source, size)
        except BaseException:
            # Whatever was written of it (the engine may have unpacked part of an archive).
            try:
                self._remove_temporary(container_id, temp)
            finally:
                self._unstage(container_id, temp)
            raise
        return StagedFile(path=path, temp=temp, size=size)

    def _write_temporary(self, container_id: str, temp: str, source: BinaryIO, size: int) -> None:
        root = self._data_root(container_id)
        if root is not None:
            try:
                volume_files.stage(root, temp, source, size, (SANDBOX_UID, SANDBOX_UID))
            except volume_files.NotAFile as exc:  # a symlink or file on the way
                raise SandboxFileNotFound(str(exc)) from exc
            except OSError as exc:
                raise SandboxRuntimeError(f"write file: {exc}") from exc
            return
        sandbox = self._sandbox(container_id)
        archive = tar_one_file(temp, source, size, uid=SANDBOX_UID, gid=SANDBOX_UID)
        with _translated("write file"):
            if not sandbox.put_archive(DATA_PATH, archive):
                raise SandboxRuntimeError("write file: the engine refused the archive")

    def commit_file(
        self,
        container_id: str,
        staged: StagedFile,
        *,
        size: int | None = None,
        tail: bytes = b"",
    ) -> None:
        settled = tail if size is not None else None
        try:
            self._place(container_id, staged, staged.size if size is None else size, settled)
        except BaseException:
            # The helper removes a temporary it refuses to place, but not one it never
            # reached (a directory on the way swapped for a symlink, an engine error).
            self._remove_temporary(container_id, staged.temp)
            raise
        finally:
            self._unstage(container_id, staged.temp)

    def _place(self, container_id: str, staged: StagedFile, size: int, tail: bytes | None) -> None:
        root = self._data_root(container_id)
        if root is not None:
            try:
                volume_files.place(root, staged.temp, staged.path, size, tail)
            except volume_files.NotAFile as exc:
                raise SandboxFileNotFound(str(exc)) from exc
            except OSError as exc:
                raise SandboxRuntimeError(f"place file: {exc}") from exc
            return
        args = ["place", staged.temp, staged.path, str(size)]
        if tail is not None:
            args.append(tail.hex())
        output = self._fileops_output(container_id, args, "place file")
        if output != b"ok\n":
            reason = output.removeprefix(b"missing ").strip()[:200]
            raise SandboxFileNotFound(reason.decode(errors="replace") or staged.path)

    def remove_stale_uploads(self, container_id: str, grace_seconds: float) -> int:
        with self._lock:
            if container_id in self._swept:
                return 0
            # The live set: a temporary is in it before it exists, so one the sweep finds
            # is either in it or already placed (a set's `in` needs no lock in CPython).
            staging = self._staging.setdefault(container_id, set())
            keep = sorted(staging)
        root = self._data_root(container_id)
        if root is not None:
            try:
                removed, left = volume_files.sweep(root, grace_seconds, staging)
            except OSError as exc:
                raise SandboxRuntimeError(f"remove stale uploads: {exc}") from exc
        else:
            # The helper gets what is being written now; an upload that starts meanwhile is
            # newer than any grace but 0, which only a start-up (nothing under way) passes.
            args = ["sweep", repr(float(grace_seconds)), *keep]
            output = self._fileops_output(container_id, args, "remove stale uploads")
            status, *counts = output.split()
            if status != b"ok" or len(counts) != 2 or not all(c.isdigit() for c in counts):
                raise SandboxRuntimeError(
                    f"remove stale uploads: unexpected answer {output[:80]!r}"
                )
            removed, left = int(counts[0]), int(counts[1])
        if removed:
            log.info("removed %d stale upload temporaries in %s", removed, container_id)
        if not left:
            with self._lock:
                # Swept clean: a later leftover can only be one of this process's own.
                if container_id not in self._dirty:
                    self._swept.add(container_id)
                self._dirty.discard(container_id)
        return removed

    def _forget_state(self, container_id: str) -> None:
        """Drop what this runtime keeps about the sandbox's temporaries and attaches (the
        caller holds the lock)."""
        self._attaching.pop(container_id, None)
        self._staging.pop(container_id, None)
        self._swept.discard(container_id)
        self._dirty.discard(container_id)
        self._cpu_cgroups.pop(container_id, None)

    def _unstage(self, container_id: str, temp: str) -> None:
        with self._lock:
            # The set itself stays (a sweep may hold it) until the sandbox is forgotten.
            self._staging.get(container_id, set()).discard(temp)

    def _remove_temporary(self, container_id: str, temp: str) -> None:
        """Remove a temporary a failed write may have left; if that fails too, the next
        remove_stale_uploads looks for it."""
        try:
            root = self._data_root(container_id)
            if root is None:
                self.delete_file(container_id, temp)
            elif not volume_files.remove_temporary(root, temp):
                raise OSError("it cannot be unlinked")
        except SandboxNotFound:
            pass  # and its volume with it
        except (SandboxRuntimeError, volume_files.NotAFile, OSError) as exc:
            log.warning("could not remove %s in %s: %s", temp, container_id, exc)
            with self._lock:
                self._swept.discard(container_id)
                self._dirty.add(container_id)

    def install_skills(self, container_id: str, archive: Iterator[bytes]) -> None:
        # The archive's entries are root-owned and not group- or world-writable, so user
        # code (uid 1000) can read the skills but not change them.
        sandbox = self._sandbox(container_id)
        with _translated("install skills"):
            if not sandbox.put_archive(SKILLS_PATH, archive):
                raise SandboxRuntimeError("install skills: the engine refused the archive")

    def open_file(self, container_id: str, path: str) -> tuple[int, Iterator[bytes]]:
        root = self._data_root(container_id)
        if root is not None:
            try:
                return volume_files.open_for_reading(root, path)
            except volume_files.NotAFile as exc:
                raise SandboxFileNotFound(str(exc)) from exc
            except OSError as exc:  # the volume itself went away, say
                raise SandboxRuntimeError(f"read file: {exc}") from exc
        chunks = _helper_output(
            self._fileops(container_id, ["read", path], "read file"), "read file"
        )
        head = b""
        try:
            for chunk in chunks:  # up to the status line
                head += chunk
                if b"\n" in head or len(head) > 4096:
                    break
        except BaseException:
            chunks.close()
            raise
        status_line, _, rest = head.partition(b"\n")
        status, _, value = status_line.partition(b" ")
        if status != b"ok" or not value.isdigit():
            chunks.close()
            raise SandboxFileNotFound(value.decode(errors="replace") or path)
        return int(value), itertools.chain([rest] if rest else [], chunks)

    def delete_file(self, container_id: str, path: str) -> None:
        self._fileops_output(container_id, ["delete", path], "delete file")
        self._unstage(container_id, path)  # a staged upload discarded

    def list_files(self, container_id: str) -> list[SandboxFile]:
        output = self._fileops_output(container_id, ["list"], "list files")
        files = []
        for entry in output.split(b"\0"):
            size, _, rest = entry.partition(b"\t")
            mtime, _, raw_path = rest.partition(b"\t")
            if not size.isdigit() or not mtime.isdigit():
                continue
            path = raw_path.decode("utf-8", "replace")
            files.append(SandboxFile(path=path, bytes=int(size), mtime=int(mtime) / 1e9))
        return files

    def disk_usage(self, container_id: str) -> int:
        output = self._fileops_output(container_id, ["usage"], "measure disk usage").strip()
        if not output:
            # Now and then (about once in 400 under concurrent uploads) the engine ends an
            # exec's stream before passing its short output on; measuring again is harmless.
            log.info("measuring the disk usage of %s gave no answer; measuring again", container_id)
            output = self._fileops_output(container_id, ["usage"], "measure disk usage").strip()
        if not output.isdigit():
            raise SandboxRuntimeError(f"measure disk usage: unexpected answer {output[:80]!r}")
        return int(output)

    def cancel(self, container_id: str, request_id: str) -> None:
        with self._lock:
            agent = self._agents.get(container_id)
        if agent is not None:
            try:
                agent.cancel(request_id)
            except AgentGone as exc:
                log.info("could not cancel a call in %s: %s", container_id, exc)

    def execute(self, container_id: str, request: ExecRequest) -> Iterator[ExecEvent]:
        with self._lock:
            known = self._agents.get(container_id)
        restarted = known is not None and known.stale()
        if restarted:
            # The sandbox (or the engine) restarted since the last call: attach again and
            # run the code in the fresh interpreter, saying that the state is gone.
            log.info("attach stream of %s closed while idle; attaching again", container_id)
            self._drop_agent(container_id)
        agent = self._agent(container_id)
        try:
            if not restarted:
                yield from agent.execute(request)
                return
            yield OutputChunk("stderr", RESTARTED_NOTICE)
            for event in agent.execute(request):
                yield (
                    replace(event, state_preserved=False) if isinstance(event, ExecDone) else event
                )
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

    def stop_stray_calls(self, container_id: str) -> None:
        with self._lock:
            attached = container_id in self._agents
        agent = self._agent(container_id)  # the first attach of this process stops strays
        if attached:
            try:
                agent.stop_strays()
            except AgentGone as exc:
                log.info("could not reach the agent of %s: %s", container_id, exc)
                self._drop_agent(container_id)

    def _agent(self, container_id: str) -> AgentClient:
        with self._lock:
            agent = self._agents.get(container_id)
            attaching = self._attaching.setdefault(container_id, threading.Lock())
        if agent is not None:
            return agent
        # One attach at a time per sandbox: a second one's stop must not reach a call that
        # went out over the first.
        with attaching:
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
            agent = AgentClient(AttachChannel(raw, container_id), container_id)
            # No call of this process runs over an earlier channel (a call whose channel
            # broke has ended for its caller): whatever runs there now is a stray, left by a
            # server killed mid-call, say. It is stopped before anything else is sent.
            try:
                agent.stop_strays()
            except AgentGone as exc:
                log.info("could not reach the agent of %s: %s", container_id, exc)
            with self._lock:
                self._agents[container_id] = agent
                drain = not self._draining
                self._draining = True
            if drain:
                threading.Thread(target=self._drain_idle, name="drain", daemon=True).start()
            return agent

    def _drain_idle(self) -> None:
        """While this runtime holds channels: read what arrives on those no call reads. Every
        channel to an agent hears all its answers, those to other server processes' calls
        too (replicas share sandboxes), and a channel nobody reads would, once full, stop
        the engine from passing the agent's output on to any of them."""
        ended: set[int] = set()
        while True:
            with self._lock:
                ended &= {id(a) for a in self._agents.values()}
                agents = [a for a in self._agents.values() if id(a) not in ended]
                if not agents:
                    self._draining = False
                    return
            idle = {}
            for agent in agents:
                if not agent.reading():
                    with suppress(OSError, ValueError):
                        idle[agent.channel.fileno()] = agent
            if not idle:
                time.sleep(DRAIN_SECONDS)
                continue
            poller = select.poll()
            for fd in idle:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll(DRAIN_SECONDS * 1000):
                if not idle[fd].drain():
                    ended.add(id(idle[fd]))  # closed: the next call attaches again

    def _answering_agent(self, ident: str) -> AgentClient:
        """The sandbox's agent once it answers a ping; an attach stream that died with an
        engine restart is made again once."""
        for attempt in (1, 2):
            agent = self._agent(ident)
            try:
                agent.ping(timeout=2.0)
                return agent
            except AgentGone as exc:
                self._drop_agent(ident)
                if attempt == 2:
                    raise SandboxRuntimeError(f"{ident} does not answer: {exc}") from exc
            except AgentWedged as exc:
                self._drop_agent(ident)
                raise SandboxRuntimeError(f"{ident} does not answer: {exc}") from exc
        raise AssertionError("unreachable")

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


def _helper_output(channel: AttachChannel, action: str) -> Generator[bytes, None, None]:
    """What the file helper writes, a chunk at a time, until it exits; closes the channel."""
    try:
        while True:
            chunk = channel.receive_bulk(60)
            if chunk is None:
                raise SandboxRuntimeError(f"{action}: the sandbox stopped answering")
            yield chunk
    except AgentGone:
        return
    finally:
        channel.close()


def _timestamp(value: object) -> float:
    """Seconds since the epoch of Docker's RFC 3339 times (nanoseconds are cut)."""
    text = str(value or "")
    try:
        return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return 0.0


def _own_volumes(sandbox: DockerContainer) -> list[str]:
    """The names of the sandbox's own volumes (its data and skills; not shared ones such as
    the egress proxy's certificates)."""
    return [
        str(mount["Name"])
        for mount in sandbox.attrs.get("Mounts") or []
        if mount.get("Type") == "volume"
        and mount.get("Name")
        and mount.get("Destination") in (DATA_PATH, SKILLS_PATH)
    ]
