"""Capacity: how many containers may run, how much memory their limits may add up to, how many
bytes the Files API may hold, and how much disk must stay free. Each refusal names its setting.

A request that could never fit is a 400; one that would fit once something is deleted or
expires is a 429. Admissions in flight are counted too, so concurrent requests cannot together
overshoot a limit.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from server.domain import MEMORY_LIMITS
from server.errors import (
    DiskFull,
    FileOverStorageLimit,
    FilesStorageFull,
    MemoryBudgetExhausted,
    MemoryLimitOverBudget,
    TooManyContainers,
)
from server.store import ContainerRepository, DiskReserve, FileRepository


def human(n: int) -> str:
    """Bytes for people: 1536 -> "1.5 KiB"."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class Limits:
    max_containers: int
    memory_budget: int
    max_files_bytes: int
    min_free_disk: int
    disk_paths: Sequence[Path] = ()
    """Where uploads and data land; each must keep min_free_disk free."""


@dataclass(frozen=True)
class Usage:
    running: int
    memory: int
    files_bytes: int


class Capacity:
    def __init__(
        self,
        containers: ContainerRepository,
        files: FileRepository,
        limits: Limits,
        free: Callable[[Path], int] = free_bytes,
        reserve: DiskReserve | None = None,
    ) -> None:
        self._containers = containers
        self._files = files
        self.limits = limits
        self._free = free
        self._reserve = reserve
        self._lock = threading.Lock()
        self._pending_containers = 0
        self._pending_memory = 0
        self._pending_file_bytes = 0

    def usage(self) -> Usage:
        """What the store holds now (admissions in flight not included)."""
        counts = self._containers.running_memory_limits()
        memory = sum(MEMORY_LIMITS.get(limit, 0) * n for limit, n in counts.items())
        return Usage(sum(counts.values()), memory, self._files.total_bytes())

    def keep_reserve(self) -> bool:
        """Make the data disk's reserve again if it was given to deletes and there is room
        for it now; whether it is held."""
        return self._reserve is None or self._reserve.restore()

    def ensure_free_disk(self) -> None:
        """429 while the disk holding the data (or the upload spool) is nearly full, or
        while the room the data disk keeps for deletes (the reserve) cannot be kept."""
        if not self.keep_reserve():
            assert self._reserve is not None
            raise DiskFull(
                f"The disk that holds localbox's data is full: it cannot keep the "
                f"{human(self._reserve.size)} it holds back so that deletes always work. "
                "Uploads and new containers are refused until space is freed (delete files "
                "or containers you no longer need)."
            )
        floor = self.limits.min_free_disk
        if floor == 0:
            return
        for path in self.limits.disk_paths:
            free = self._free(path)
            if free < floor:
                raise DiskFull(
                    f"The disk that holds {path} has only {human(free)} free, less than "
                    f"LOCALBOX_MIN_FREE_DISK ({human(floor)}). Uploads and new containers are "
                    "refused until space is freed."
                )

    @contextmanager
    def container_slot(self, memory_limit: str) -> Iterator[None]:
        """Admit one running container with this memory limit for the duration of the block
        (until its record is written and counts by itself)."""
        memory = MEMORY_LIMITS[memory_limit]
        budget = self.limits.memory_budget
        if memory > budget:
            raise MemoryLimitOverBudget(
                f"memory_limit '{memory_limit}' ({human(memory)}) is more than this server's "
                f"whole memory budget of {human(budget)} (LOCALBOX_MEMORY_BUDGET). Choose a "
                "smaller memory_limit, or raise LOCALBOX_MEMORY_BUDGET.",
                "memory_limit",
            )
        self.ensure_free_disk()
        with self._lock:
            now = self.usage()
            running = now.running + self._pending_containers
            used = now.memory + self._pending_memory
            if running >= self.limits.max_containers:
                raise TooManyContainers(
                    f"This server already runs {running} containers, its limit "
                    f"(LOCALBOX_MAX_CONTAINERS={self.limits.max_containers}). Delete a "
                    "container or wait for one to expire, then try again."
                )
            if used + memory > budget:
                raise MemoryBudgetExhausted(
                    f"A '{memory_limit}' container does not fit now: the running containers' "
                    f"memory limits add up to {human(used)} of the {human(budget)} budget "
                    "(LOCALBOX_MEMORY_BUDGET). Delete a container or wait for one to expire, "
                    "choose a smaller memory_limit, or try again later.",
                    "memory_limit",
                )
            self._pending_containers += 1
            self._pending_memory += memory
        try:
            yield
        finally:
            with self._lock:
                self._pending_containers -= 1
                self._pending_memory -= memory

    @contextmanager
    def file_bytes(self, size: int) -> Iterator[None]:
        """Admit a Files-API upload of size bytes for the duration of the block."""
        limit = self.limits.max_files_bytes
        if size > limit:
            raise FileOverStorageLimit(
                f"The file is {human(size)}, more than the Files API may hold in all "
                f"({human(limit)}, LOCALBOX_MAX_FILES_BYTES).",
                "file",
            )
        self.ensure_free_disk()
        with self._lock:
            used = self._files.total_bytes() + self._pending_file_bytes
            if used + size > limit:
                raise FilesStorageFull(
                    f"Files-API storage is full: {human(used)} of {human(limit)} is used "
                    f"(LOCALBOX_MAX_FILES_BYTES) and this file needs {human(size)}. Delete "
                    "files you no longer need, then try again.",
                    "file",
                )
            self._pending_file_bytes += size
        try:
            yield
        finally:
            with self._lock:
                self._pending_file_bytes -= size
