"""A sandbox's CPU cgroup, read and weighted from the host (cgroup v1 and v2 alike).

The server finds a sandbox's cgroup from its first process (/proc/<pid>/cgroup), reads the CPU
time it used and sets its weight there directly: under any runtime (gVisor's runsc has no
`update`), without a call to the engine. Where the server does not run on the host (in a
container of its own, say), the cgroups are not there to be found, and nothing is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")

NORMAL_SHARES, LOW_SHARES = 1024, 2
"""cgroup v1 cpu.shares: the engine's default, and the least a cgroup can weigh."""
NORMAL_WEIGHT, LOW_WEIGHT = 100, 1
"""cgroup v2 cpu.weight: the default, and the least."""


@dataclass(frozen=True)
class CpuCgroup:
    usage: Path
    """cpu.stat (v2) or cpuacct.usage (v1)."""
    weight: Path
    """cpu.weight (v2) or cpu.shares (v1)."""

    @property
    def v2(self) -> bool:
        return self.weight.name == "cpu.weight"

    def usage_seconds(self) -> float | None:
        """CPU time the cgroup's processes used so far; None once the cgroup is gone."""
        try:
            if self.v2:
                for line in self.usage.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) / 1e6
                return None
            return int(self.usage.read_text()) / 1e9
        except (OSError, ValueError):
            return None

    def set_low(self, low: bool) -> bool:
        """Weigh the cgroup least (low) or as the engine made it; False if it cannot be."""
        if self.v2:
            value = LOW_WEIGHT if low else NORMAL_WEIGHT
        else:
            value = LOW_SHARES if low else NORMAL_SHARES
        try:
            self.weight.write_text(str(value))
            return True
        except OSError:
            return False


def _v1_file(root: Path, relative: str, mounts: tuple[str, ...], name: str) -> Path | None:
    for mount in mounts:
        path = root / mount / relative / name
        if path.exists():
            return path
    return None


def cpu_cgroup(pid: int, proc: Path = PROC, root: Path = CGROUP_ROOT) -> CpuCgroup | None:
    """The CPU cgroup process pid is in, if this host shows it to us (cpu and cpuacct may be
    one v1 hierarchy or two)."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    usage: Path | None = None
    weight: Path | None = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":
            v2 = root / relative
            if relative and (v2 / "cpu.stat").exists() and (v2 / "cpu.weight").exists():
                return CpuCgroup(v2 / "cpu.stat", v2 / "cpu.weight")
            continue
        names = controllers.split(",")
        if "cpuacct" in names:
            mounts = ("cpu,cpuacct", "cpuacct,cpu", "cpuacct")
            usage = _v1_file(root, relative, mounts, "cpuacct.usage") or usage
        if "cpu" in names:
            mounts = ("cpu,cpuacct", "cpuacct,cpu", "cpu")
            weight = _v1_file(root, relative, mounts, "cpu.shares") or weight
    if usage is not None and weight is not None:
        return CpuCgroup(usage, weight)
    return None
