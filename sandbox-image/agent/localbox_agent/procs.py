"""Processes: who runs as the sandbox user, killing them, and the cgroup's counters.

The agent runs as root (with only the capabilities it needs: setuid/setgid to drop to the
sandbox user, kill, and dac_override to see every file under /mnt/data); everything the
user's code starts runs as SANDBOX_UID. So "the user's processes" are exactly the processes
of that uid, whatever sessions or process groups they made for themselves.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import time
from collections.abc import Collection
from typing import Any

SANDBOX_UID = 1000
SANDBOX_GID = 1000


def drop_privileges() -> dict[str, Any]:
    """Popen arguments that run the child as the sandbox user, with no capabilities left."""
    return {"user": SANDBOX_UID, "group": SANDBOX_GID, "extra_groups": []}


def _is_users(pid: int) -> bool:
    """Whether pid runs as the sandbox user (real, effective or saved uid) and is not a
    zombie (those are dead already; their parent reaps them)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            fields = dict(line.split(b":", 1) for line in f if b":" in line)
        uids = [int(x) for x in fields[b"Uid"].split()[:3]]
    except (OSError, KeyError, ValueError):
        return False
    return SANDBOX_UID in uids and not fields.get(b"State", b"").strip().startswith(b"Z")


def user_pids() -> list[int]:
    """Every live process running as the sandbox user."""
    me = os.getpid()
    return [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and int(entry) not in (1, me) and _is_users(int(entry))
    ]


def kill_user_processes(keep: Collection[int] = ()) -> int:
    """SIGKILL every sandbox-user process not in keep, until none is left (a fork bomb racing
    the kills loses). Returns how many were killed."""
    killed = 0
    for _ in range(300):
        targets = [pid for pid in user_pids() if pid not in keep]
        if not targets:
            break
        for pid in targets:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.01)
    return killed


def make_expendable(pid: int) -> None:
    """Let the OOM killer take this process before the agent."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/oom_score_adj", "w") as f:
        f.write("1000")


def oom_kills() -> int:
    """How many times the kernel's OOM killer has struck in this sandbox's memory cgroup."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return 0


def _read_int(*paths: str) -> int | None:
    for path in paths:
        try:
            with open(path) as f:
                value = f.read().strip()
            return int(value) if value.isdigit() else None
        except OSError:
            continue
    return None


TASK_LIMIT = int(os.environ.get("LOCALBOX_TASK_LIMIT", "0") or 0)
"""Where the sandbox cannot see its pids cgroup (gVisor, whose kernel needs several host
threads per process, so the engine's limit is set well above this): the processes and threads
it may have, counted here."""


def limit_user_tasks() -> None:
    """Where TASK_LIMIT is set (gVisor): every process the sandbox user starts inherits it as
    RLIMIT_NPROC, so its kernel refuses a fork past it (EAGAIN) before a fork bomb's host
    threads and memory could take the whole sandbox down. The agent, as root, is not held
    to it (nor is anything it runs as root)."""
    if TASK_LIMIT:
        resource.setrlimit(resource.RLIMIT_NPROC, (TASK_LIMIT, TASK_LIMIT))


def task_count() -> int:
    """Every thread of every process the sandbox's kernel shows."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                count += len(os.listdir(f"/proc/{entry}/task"))
    return count


def pids_exhausted() -> bool:
    """Whether the sandbox is close to its process limit (a fork bomb, most likely)."""
    limit = _read_int("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
    current = _read_int("/sys/fs/cgroup/pids/pids.current", "/sys/fs/cgroup/pids.current")
    if (limit is None or current is None) and TASK_LIMIT:
        limit, current = TASK_LIMIT, task_count()
    return bool(limit and current is not None and current >= 0.9 * limit)
