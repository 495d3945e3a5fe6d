"""Capacity: how many containers may run, how much memory must stay free on the host (and, for
operators who want no overcommit, how much the running containers' memory limits may add up
to), how many bytes the Files API may hold, and how much disk must stay free. Each refusal
names its setting.

A `memory_limit` is a ceiling a sandbox may reach, not memory it holds (an idle one holds about
100 MiB): admission looks at the memory really free, and the kernel's OOM killer takes sandbox
code first if they all grow at once (see runtime/docker.py and host_memory.py).

A request that could never fit is a 400; one that would fit once something is deleted or
expires is a 429. Admissions in flight are counted too, so concurrent requests cannot together
overshoot a limit: in memory on SQLite (one server per database), and on PostgreSQL in the
database, where every server sharing it decides its admissions one at a time against the same
count (store/admissions.py).
"""

from __future__ import annotations

import secrets
import shutil
import threading
import time
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
    MemoryLimitOverHost,
    MemoryLow,
    TooManyContainers,
)
from server.store import ContainerRepository, DiskReserve, FileRepository
from server.store.admissions import AdmissionRepository, Occupancy


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


def _memory_of(running: dict[str, int]) -> int:
    """What running containers' memory limits add up to, from their count per limit."""
    return sum(MEMORY_LIMITS.get(limit, 0) * n for limit, n in running.items())


PENDING_SANDBOX_BYTES = 128 << 20
"""What a sandbox being started is taken to hold (an idle one holds about 100 MiB): admissions
in flight have not shown up in the host's free memory yet."""

ADMISSION_SECONDS = 120
"""How long an admission in flight counts in the database at most: a create takes seconds,
and the admissions of a server that died mid-create stop counting after this."""


@dataclass(frozen=True)
class Limits:
    max_containers: int
    max_files_bytes: int
    min_free_disk: int
    memory_budget: int = 0
    """What the running containers' memory limits may add up to; 0 is no such budget."""
    min_free_memory: int = 0
    """The free memory below which creates are refused."""
    host_memory: int = 0
    """The host's whole memory: a larger memory_limit could never be had (0: not checked)."""
    disk_paths: Sequence[Path] = ()
    """Where uploads and data land; each must keep min_free_disk free."""


@dataclass(frozen=True)
class Usage:
    running: int
    memory: int
    files_bytes: int


class Admission:
    """One container admitted and not yet recorded: counted in memory, or (when admissions
    are shared through the database) as the admissions row `row`."""

    def __init__(self, capacity: Capacity, memory: int, row: str | None = None) -> None:
        self._capacity = capacity
        self._memory = memory
        self._row = row
        self._counted = True

    def record(self, write: Callable[[], None]) -> None:
        """Write the container's record and stop counting it as in flight, in one step under
        the capacity lock (and the database's admission lock when shared): a concurrent
        admission, of this server or another, never counts it twice."""
        with self._capacity._lock:
            if self._row is not None and self._counted:
                self._capacity._admissions.recorded(self._row, write)
                self._counted = False
            else:
                write()
                self._release()

    def release(self) -> None:
        """Stop counting it (the create is over, or failed). Idempotent."""
        with self._capacity._lock:
            self._release()

    def _release(self) -> None:
        if not self._counted:
            return
        self._counted = False
        if self._row is None:
            self._capacity._release(self._memory)
        else:
            self._capacity._admissions.release(self._row)


class Capacity:
    def __init__(
        self,
        containers: ContainerRepository,
        files: FileRepository,
        limits: Limits,
        free: Callable[[Path], int] = free_bytes,
        reserve: DiskReserve | None = None,
        free_memory: Callable[[], int] | None = None,
        admissions: AdmissionRepository | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._containers = containers
        self._files = files
        self.limits = limits
        self._free = free
        self.free_memory = free_memory or (lambda: limits.host_memory or 1 << 62)
        """Bytes of memory free on the host now (host_memory.HostMemory.available)."""
        self._reserve = reserve
        self._admissions = admissions or AdmissionRepository(containers.database)
        """Where admissions in flight are counted when the database is shared (PostgreSQL)."""
        self._clock = clock
        # Held while an admission is decided or recorded. With admissions in the database it
        # also keeps this server to one connection waiting for the database's admission lock,
        # so that the holder always finds a connection free for the container's record.
        self._lock = threading.Lock()
        self._pending_containers = 0
        self._pending_memory = 0
        self._pending_file_bytes = 0

    def usage(self) -> Usage:
        """What the store holds now (admissions in flight not included)."""
        counts = self._containers.running_memory_limits()
        return Usage(sum(counts.values()), _memory_of(counts), self._files.total_bytes())

    @property
    def shared(self) -> bool:
        """Whether container admissions are decided through the database (PostgreSQL, which
        several servers may share) rather than in this process."""
        return self._admissions.shared

    def disk_free(self) -> int:
        """The least free space among the disks the data and uploads land on."""
        return min((self._free(path) for path in self.limits.disk_paths), default=0)

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

    def _check_memory_limit(self, memory_limit: str, memory: int) -> None:
        """400 for a memory limit this server could never give."""
        host = self.limits.host_memory
        if host and memory > host:
            raise MemoryLimitOverHost(
                f"memory_limit '{memory_limit}' ({human(memory)}) is more than this host's "
                f"whole memory ({human(host)}). Choose a smaller memory_limit.",
                "memory_limit",
            )
        budget = self.limits.memory_budget
        if budget and memory > budget:
            raise MemoryLimitOverBudget(
                f"memory_limit '{memory_limit}' ({human(memory)}) is more than this server's "
                f"whole memory budget of {human(budget)} (LOCALBOX_MEMORY_BUDGET). Choose a "
                "smaller memory_limit, or raise LOCALBOX_MEMORY_BUDGET.",
                "memory_limit",
            )

    def ensure_free_memory(self, starting: int = 0) -> None:
        """429 while the host has less free memory than LOCALBOX_MIN_FREE_MEMORY, counting
        `starting` sandboxes that are being started and do not show yet."""
        floor = self.limits.min_free_memory
        if floor == 0:
            return
        free = self.free_memory() - starting * PENDING_SANDBOX_BYTES
        if free < floor:
            raise MemoryLow(
                f"This host has only {human(max(free, 0))} of memory available, less than "
                f"LOCALBOX_MIN_FREE_MEMORY ({human(floor)}), so new containers are refused "
                "until memory is freed. Delete containers you no longer need or wait for some "
                "to expire, then try again; or lower LOCALBOX_MIN_FREE_MEMORY."
            )

    def room_for_a_spare(self) -> bool:
        """Whether the warm pool may start a spare: it must leave room for one more create."""
        try:
            self.ensure_free_memory(starting=1)
        except MemoryLow:
            return False
        return True

    @contextmanager
    def container_slot(self, memory_limit: str) -> Iterator[Admission]:
        """Admit one running container with this memory limit for the duration of the block,
        or until Admission.record writes its record (which then counts by itself)."""
        memory = MEMORY_LIMITS[memory_limit]
        self._check_memory_limit(memory_limit, memory)
        self.ensure_free_disk()
        with self._lock:
            if self.shared:
                admission = self._admit_shared(memory_limit, memory)
            else:
                now = self.usage()
                self._check_room(
                    memory_limit,
                    memory,
                    running=now.running + self._pending_containers,
                    used=now.memory + self._pending_memory,
                    starting=self._pending_containers,
                )
                self._pending_containers += 1
                self._pending_memory += memory
                admission = Admission(self, memory)
        try:
            yield admission
        finally:
            admission.release()

    def _admit_shared(self, memory_limit: str, memory: int) -> Admission:
        """Decide the admission in the database, against every server's containers and
        admissions in flight, and count it there (the caller holds the lock)."""
        row = secrets.token_hex(16)
        now = int(self._clock())

        def check(occupancy: Occupancy) -> None:
            self._check_room(
                memory_limit,
                memory,
                running=sum(occupancy.running.values()) + occupancy.admitting,
                used=_memory_of(occupancy.running) + occupancy.admitting_memory,
                starting=occupancy.admitting,
            )

        self._admissions.admit(row, memory, now, now + ADMISSION_SECONDS, check)
        return Admission(self, memory, row)

    def _check_room(
        self, memory_limit: str, memory: int, *, running: int, used: int, starting: int
    ) -> None:
        """429 unless one more container fits beside `running` ones (those in flight
        included) whose memory limits add up to `used`, `starting` of them not started yet."""
        if running >= self.limits.max_containers:
            raise TooManyContainers(
                f"This server already runs {running} containers, its limit "
                f"(LOCALBOX_MAX_CONTAINERS={self.limits.max_containers}). Delete a "
                "container or wait for one to expire, then try again."
            )
        budget = self.limits.memory_budget
        if budget and used + memory > budget:
            raise MemoryBudgetExhausted(
                f"A '{memory_limit}' container does not fit now: the running containers' "
                f"memory limits add up to {human(used)} of the {human(budget)} budget "
                "(LOCALBOX_MEMORY_BUDGET). Delete a container or wait for one to expire, "
                "choose a smaller memory_limit, or try again later.",
                "memory_limit",
            )
        self.ensure_free_memory(starting)

    def _release(self, memory: int) -> None:
        """No longer count one admission in flight (the caller holds the lock)."""
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
