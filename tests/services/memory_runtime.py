"""MemoryRuntime: a SandboxRuntime kept in dicts, for fast service tests only."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator
from typing import BinaryIO

from server.runtime import (
    RuntimeUnavailable,
    SandboxFile,
    SandboxFileNotFound,
    SandboxInfo,
    SandboxNotFound,
    SandboxRuntimeError,
    SandboxSpec,
    SpareInfo,
    StagedFile,
)
from server.runtime.base import RESERVED_PREFIX


class MemoryRuntime:
    def __init__(self) -> None:
        self.sandboxes: dict[str, SandboxInfo] = {}
        self.files: dict[str, dict[str, bytes]] = {}
        self.skills: dict[str, bytes] = {}
        self.down = False
        self.egress_ids: set[str] = set()
        self.temporaries: dict[str, dict[str, bytes]] = {}
        """Per sandbox, staged uploads not yet committed (by temporary path)."""
        self.strays_stopped: set[str] = set()
        self.sandbox_runtime = "memory"

    def ping(self) -> None:
        if self.down:
            raise RuntimeUnavailable("down")

    def preflight(self) -> None:
        pass

    def resizes_memory(self) -> bool:
        return True

    def cpu_usage(self, container_id: str) -> float | None:
        return None

    def set_cpu_low(self, container_id: str, low: bool) -> bool:
        return False

    def create(self, spec: SandboxSpec) -> None:
        self.ping()
        self.sandboxes[spec.container_id] = SandboxInfo(spec.container_id, "running", 0.0)
        self.files[spec.container_id] = {}

    def destroy(self, container_id: str) -> None:
        self.ping()
        self.sandboxes.pop(container_id, None)
        self.files.pop(container_id, None)
        self.skills.pop(container_id, None)

    def start(self, container_id: str) -> None:
        self.sandboxes[container_id] = SandboxInfo(container_id, "running", 0.0)

    def reconcile_egress(self, container_ids: Collection[str], grace_seconds: float) -> None:
        self.ping()
        self.egress_ids = set(container_ids)

    def list_sandboxes(self) -> list[SandboxInfo]:
        self.ping()
        return [s for s in self.sandboxes.values() if not s.container_id.startswith("spare_")]

    def create_spare(self, spare_id: str, memory_bytes: int) -> None:
        self.create(SandboxSpec(spare_id, memory_bytes))

    def list_spares(self) -> list[SpareInfo]:
        self.ping()
        return [
            SpareInfo(s.container_id, s.state, s.created_at)
            for s in self.sandboxes.values()
            if s.container_id.startswith("spare_")
        ]

    def claim_spare(self, spare_id: str, spec: SandboxSpec) -> None:
        if spare_id not in self.sandboxes:
            raise SandboxNotFound(spare_id)
        del self.sandboxes[spare_id]
        self.sandboxes[spec.container_id] = SandboxInfo(spec.container_id, "running", 0.0)
        self.files[spec.container_id] = self.files.pop(spare_id)

    def prune_volumes(self, grace_seconds: float) -> int:
        return 0

    def _files(self, container_id: str) -> dict[str, bytes]:
        self.ping()
        if container_id not in self.files:
            raise SandboxNotFound(container_id)
        return self.files[container_id]

    def install_skills(self, container_id: str, archive: Iterator[bytes]) -> None:
        self._files(container_id)
        self.skills[container_id] = b"".join(archive)

    def stage_file(self, container_id: str, path: str, source: BinaryIO, size: int) -> StagedFile:
        self._files(container_id)
        data = source.read(size)
        if len(data) != size:
            raise SandboxRuntimeError(f"source ended {size - len(data)} bytes short")
        temp = f"{path.rpartition('/')[0]}/" if "/" in path else ""
        temp += f"{RESERVED_PREFIX}{uuid.uuid4().hex}"
        self.temporaries.setdefault(container_id, {})[temp] = data
        return StagedFile(path, temp, size)

    def commit_file(
        self,
        container_id: str,
        staged: StagedFile,
        *,
        size: int | None = None,
        tail: bytes = b"",
    ) -> None:
        data = self.temporaries.get(container_id, {}).pop(staged.temp, None)
        if data is None:
            raise SandboxFileNotFound(staged.temp)
        if size is not None:
            data = data[:size].ljust(size, b"\0")
            data = data[: size - len(tail)] + tail
        elif len(data) != staged.size:
            raise SandboxFileNotFound(staged.temp)
        self._files(container_id)[staged.path] = data

    def stop_stray_calls(self, container_id: str) -> None:
        self.strays_stopped.add(container_id)

    def remove_stale_uploads(self, container_id: str, grace_seconds: float) -> int:
        return len(self.temporaries.pop(container_id, {}))

    def open_file(self, container_id: str, path: str) -> tuple[int, Iterator[bytes]]:
        data = self._files(container_id).get(path)
        if data is None:
            raise SandboxFileNotFound(path)
        return len(data), iter([data])

    def delete_file(self, container_id: str, path: str) -> None:
        self._files(container_id).pop(path, None)
        self.temporaries.get(container_id, {}).pop(path, None)

    def disk_usage(self, container_id: str) -> int:
        return sum(len(d) for d in self._files(container_id).values())

    def cancel(self, container_id: str, request_id: str) -> None:
        pass

    def list_files(self, container_id: str) -> list[SandboxFile]:
        return [SandboxFile(p, len(d), 1.0) for p, d in self._files(container_id).items()]
