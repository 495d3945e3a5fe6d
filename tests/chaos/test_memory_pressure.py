"""Sandboxes that all grow at once: the kernel kills sandbox code first, the server keeps
answering, a bystander keeps its state, the killed ones say so (`state_preserved: false`),
and creates are refused while memory is short.

The pressure is real but bounded: the server and its sandboxes run under one memory cgroup
of PARENT_LIMIT (the server started inside it, the sandboxes made under it by
LOCALBOX_SANDBOX_CGROUP_PARENT), so the OOM killer acts there, as it would for the whole host,
and the machine running the suite is not put at risk."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import openai

from tests.api.test_exec import run
from tests.conftest import LocalboxServer, serving

PARENT_LIMIT = 3 << 30
HOGS = 4
HOG_CODE = (
    "import time\n"
    "hold = [b'x' * (100 << 20) for _ in range(8)]\n"  # 800 MiB each, 3.2 GiB together
    "time.sleep(6)\n"
    "print('held')\n"
)


@dataclass
class MemoryCgroup:
    name: str
    """As Docker takes it for a cgroup parent: "/localbox-oom-…"."""
    path: Path
    """Its directory in the memory controller's hierarchy."""


def _remove_tree(path: Path) -> None:
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
        child.rmdir()
    path.rmdir()


@contextlib.contextmanager
def memory_cgroup(limit: int) -> Iterator[MemoryCgroup]:
    """A memory cgroup of its own with this limit and no swap (cgroup v1 or v2)."""
    name = f"localbox-oom-{secrets.token_hex(4)}"
    v1 = Path("/sys/fs/cgroup/memory")
    if (v1 / "memory.limit_in_bytes").exists():
        path = v1 / name
        path.mkdir()
        (path / "memory.limit_in_bytes").write_text(str(limit))
        with contextlib.suppress(OSError):  # only where the kernel accounts swap
            (path / "memory.memsw.limit_in_bytes").write_text(str(limit))
    else:
        root = Path("/sys/fs/cgroup")
        (root / "cgroup.subtree_control").write_text("+memory")
        path = root / name
        path.mkdir()
        (path / "memory.max").write_text(str(limit))
        with contextlib.suppress(OSError):
            (path / "memory.swap.max").write_text("0")
        (path / "cgroup.subtree_control").write_text("+memory")
    (path / "server").mkdir()
    try:
        yield MemoryCgroup(f"/{name}", path)
    finally:
        deadline = time.monotonic() + 30
        while True:
            try:
                _remove_tree(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


CAP_SYS_RESOURCE = 24


def oom_score_adj(pid: int) -> int:
    return int(Path(f"/proc/{pid}/oom_score_adj").read_text())


def may_lower_oom_scores() -> bool:
    """Whether processes started here hold CAP_SYS_RESOURCE (some containers drop it)."""
    status = Path("/proc/self/status").read_text()
    effective = next(x for x in status.splitlines() if x.startswith("CapEff:")).split()[1]
    return bool(int(effective, 16) >> CAP_SYS_RESOURCE & 1)


class Watcher(threading.Thread):
    """Asks the server to list containers and the bystander for its state, over and over."""

    def __init__(self, server: LocalboxServer, bystander: str) -> None:
        super().__init__()
        self.server, self.bystander = server, bystander
        self.stopping = threading.Event()
        self.answers = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                listed = httpx.get(f"{self.server.base_url}/containers", timeout=30)
                result = run(self.server, self.bystander, "print(marker)", timeout=30)
                if listed.status_code != 200 or result["stdout"] != "kept\n":
                    self.failures.append(f"{listed.status_code} {result}")
                else:
                    self.answers += 1
            except Exception as exc:  # any failure to answer is the finding
                self.failures.append(repr(exc))
            time.sleep(0.2)


def test_sandboxes_that_fill_memory_together_die_before_the_server(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    with memory_cgroup(PARENT_LIMIT) as cgroup:
        env = {
            "LOCALBOX_SANDBOX_CGROUP_PARENT": cgroup.name,
            "LOCALBOX_MIN_FREE_MEMORY": "1500m",  # more than two held hogs leave
            "LOCALBOX_WARM_POOL": "1",
        }
        with serving(tmp_path / "data", env, cgroup=cgroup.path / "server") as server:
            pressure(server, cgroup, docker_client)


def pressure(
    server: LocalboxServer, cgroup: MemoryCgroup, docker_client: docker.DockerClient
) -> None:
    assert server.process is not None
    server_pid = server.process.pid
    # Behind every sandbox and ordinary process where it may lower itself; else level with
    # ordinary processes, still behind every sandbox.
    assert oom_score_adj(server_pid) == (-500 if may_lower_oom_scores() else 0)
    client = server.client(max_retries=0)
    bystander = client.containers.create(name="bystander").id
    hogs = [client.containers.create(name=f"hog-{i}").id for i in range(HOGS)]
    for ident in [bystander, *hogs]:
        assert run(server, ident, "marker = 'kept'")["status"] == "completed"

    # Every sandbox of this server, the warm pool's spare included, is first in line.
    deadline = time.monotonic() + 60
    label = {"label": f"localbox.instance={server.instance_id}"}
    while time.monotonic() < deadline:
        made = docker_client.containers.list(filters=label)
        if len(made) == HOGS + 2:
            break
        time.sleep(0.5)
    assert len(made) == HOGS + 2, [c.name for c in made]
    for container in made:
        container.reload()
        assert container.attrs["HostConfig"]["OomScoreAdj"] == 1000
        assert container.attrs["HostConfig"]["CgroupParent"] == cgroup.name
        assert oom_score_adj(container.attrs["State"]["Pid"]) == 1000

    watcher = Watcher(server, bystander)
    watcher.start()
    results: dict[str, dict[str, Any]] = {}

    def hog(ident: str) -> None:
        results[ident] = run(server, ident, HOG_CODE, timeout=120)

    threads = [threading.Thread(target=hog, args=(ident,)) for ident in hogs]
    for t in threads:
        t.start()
    refusals: list[str] = []
    while any(t.is_alive() for t in threads):
        try:
            made_now = client.containers.create(name="during")
            client.containers.delete(made_now.id)
        except openai.RateLimitError as exc:
            refusals.append(f"{exc.code}: {exc.message}")
        time.sleep(0.3)
    for t in threads:
        t.join()
    watcher.stopping.set()
    watcher.join()

    killed = [i for i in hogs if results[i]["status"] != "completed"]
    survived = [i for i in hogs if i not in killed]
    assert killed, results  # 3.2 GiB of sandbox memory cannot fit in 3 GiB
    for ident in killed:
        result = results[ident]
        assert result["status"] == "error", result
        assert result["error"]["name"] in ("MemoryError", "SandboxRestarted"), result
        assert result["state_preserved"] is False, result
        # The sandbox works again, its state gone as it said.
        after = run(server, ident, "print('marker' in globals())")
        assert after["stdout"] == "False\n", after
    for ident in survived:
        assert results[ident]["stdout"] == "held\n", results[ident]
        assert run(server, ident, "print(marker)")["stdout"] == "kept\n"

    # The server answered throughout, under pressure, and was never the victim.
    assert watcher.failures == [], watcher.failures
    assert watcher.answers > 0
    assert server.process.poll() is None
    assert server.process.pid == server_pid
    assert run(server, bystander, "print(marker)")["stdout"] == "kept\n"
    # While the memory was taken, creates were refused by free memory; once the survivors
    # let go of theirs, they are not.
    for ident in survived:
        assert run(server, ident, "del hold")["status"] == "completed"
    assert refusals, "no create was refused while the sandboxes held the memory"
    assert all(r.startswith("insufficient_memory: ") for r in refusals), refusals
    assert "LOCALBOX_MIN_FREE_MEMORY" in refusals[0]
    after = client.containers.create(name="after")
    assert run(server, after.id, "print(1 + 1)")["stdout"] == "2\n"
