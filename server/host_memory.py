"""The host's memory as admission sees it, and the server's own place in the OOM killer's order.

Free memory is /proc/meminfo's MemAvailable (what can be had without swapping), capped by the
headroom of every memory cgroup above the server and above the sandboxes' cgroup parent (when
one is set): its limit minus its working set (usage less the inactive file cache, which the
kernel reclaims first; the figure the kubelet evicts by). cgroup v2 and v1 alike.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

log = logging.getLogger("localbox")

PROC = Path("/proc")
CGROUP_ROOT = Path("/sys/fs/cgroup")
UNLIMITED = 1 << 60
"""A cgroup limit at or above this is no limit (v1 writes "unlimited" as ~2**63)."""
SERVER_OOM_SCORE_ADJ = -500
"""Where the server puts itself: behind every sandbox (1000) and ordinary processes (0), like
dockerd, without becoming unkillable."""


def physical_memory() -> int:
    """The machine's physical memory in bytes."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def mem_available(proc: Path = PROC) -> int | None:
    """MemAvailable from /proc/meminfo, in bytes; None where the kernel does not say."""
    try:
        with open(proc / "meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def _stat(directory: Path, *names: str) -> int:
    text = _read(directory / "memory.stat") or ""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key in names and value.isdigit():
            return int(value)
    return 0


def cgroup_headroom(directory: Path) -> int | None:
    """This memory cgroup's limit less its working set; None when it has no limit."""
    if (directory / "memory.max").exists():  # v2
        limit = _number(_read(directory / "memory.max"))
        usage = _number(_read(directory / "memory.current"))
        inactive = _stat(directory, "inactive_file")
    else:  # v1
        limit = _number(_read(directory / "memory.limit_in_bytes"))
        usage = _number(_read(directory / "memory.usage_in_bytes"))
        inactive = _stat(directory, "total_inactive_file")
    if limit is None or limit >= UNLIMITED or usage is None:
        return None
    return max(limit - max(usage - inactive, 0), 0)


def _memory_root(root: Path) -> Path:
    """Where the memory controller's hierarchy is mounted: the root itself on v2."""
    v1 = root / "memory"
    return v1 if (v1 / "memory.limit_in_bytes").exists() else root


def own_cgroup(proc: Path = PROC) -> str | None:
    """The server's memory cgroup, as a path below the hierarchy's root."""
    text = _read(proc / "self" / "cgroup") or ""
    unified = None
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return path
        if controllers == "":
            unified = path
    return unified


def _ancestors(base: Path, path: str) -> Iterable[Path]:
    """The cgroup at path and each of its parents, up to (not including) the root."""
    parts = [p for p in path.split("/") if p]
    while parts:
        yield base.joinpath(*parts)
        parts.pop()


class HostMemory:
    """What admission reads: the host's whole memory and what is free now."""

    def __init__(
        self,
        *,
        sandbox_cgroup: str = "",
        proc: Path = PROC,
        cgroup_root: Path = CGROUP_ROOT,
    ) -> None:
        self.total = physical_memory()
        base = _memory_root(cgroup_root)
        paths: list[str] = []
        if (mine := own_cgroup(proc)) is not None:
            paths.append(mine)
        if sandbox_cgroup:
            paths.append(sandbox_cgroup)
        self._cgroups: Sequence[Path] = [d for p in paths for d in _ancestors(base, p)]
        self._proc = proc

    def available(self) -> int:
        """Bytes that can be had now without swapping, within every cgroup limit above."""
        free = mem_available(self._proc)
        candidates = [free if free is not None else self.total]
        for directory in self._cgroups:
            room = cgroup_headroom(directory)
            if room is not None:
                candidates.append(room)
        return min(candidates)


def lower_own_oom_score(value: int = SERVER_OOM_SCORE_ADJ, proc: Path = PROC) -> bool:
    """Ask the kernel to kill sandboxes (and ordinary processes) before this server under
    memory pressure; False where the server may not (it lacks CAP_SYS_RESOURCE)."""
    path = proc / "self" / "oom_score_adj"
    try:
        current = int(path.read_text())
        if current <= value:
            return True
        path.write_text(str(value))
    except (OSError, ValueError) as exc:
        log.info("could not lower the server's OOM score (sandboxes still go first): %s", exc)
        return False
    return True
