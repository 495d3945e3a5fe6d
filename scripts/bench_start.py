"""Benchmark: how long until a new container answers, against raw Docker in the same run.

- POST /v1/containers with a warm pool, beside `docker run -d` of the same sandbox;
- create -> the first `print(1)` result, with a warm pool and without one (the cold path),
  beside `docker run -d` + `docker exec <it> python3 -c 'print(1)'`; the cold path and raw
  Docker take turns, a sample each, so that a change in the machine's load hits both;
- the interpreter's own start inside a sandbox.

Starts its own localbox servers on free ports with temporary data dirs.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import Row, p50, running_localbox, show

RAW_FLAGS = [
    "--network", "none", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
    "--pids-limit", "256", "--memory", "1g", "--memory-swap", "1g", "--cpus", "1",
    "--read-only", "--init", "--workdir", "/mnt/data",
    "--tmpfs", "/tmp:rw,nosuid,nodev,size=256m", "--ulimit", "nofile=4096:4096",
]  # fmt: skip


KERNEL_FLAGS = [
    "--network", "none", "-u", "0", "--cap-drop", "ALL",
    "--cap-add", "SETUID", "--cap-add", "SETGID", "--cap-add", "KILL",
    "--tmpfs", "/tmp", "--tmpfs", "/mnt/data:uid=1000,gid=1000",
]  # fmt: skip


def wait_for_pool(base: str, size: int, timeout: float = 300) -> None:
    """Until the server's warm pool holds `size` ready spares (read from /metrics)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = httpx.get(base.removesuffix("/v1") + "/metrics").text
        for line in text.splitlines():
            if line.startswith("localbox_warm_pool_ready ") and float(line.split()[1]) >= size:
                return
        time.sleep(0.2)
    raise RuntimeError("the warm pool did not fill")


def create_and_first(http: httpx.Client, name: str) -> tuple[float, float, str]:
    """(POST /v1/containers ms, create -> first print(1) result ms, container id)."""
    t0 = time.perf_counter()
    r = http.post("/containers", json={"name": name})
    t1 = time.perf_counter()
    r.raise_for_status()
    cid: str = r.json()["id"]
    out = http.post(f"/containers/{cid}/exec", json={"code": "print(1)"}).json()
    t2 = time.perf_counter()
    assert out["stdout"] == "1\n", out
    return (t1 - t0) * 1000, (t2 - t0) * 1000, cid


def warm_pool(n: int, pool: int = 2) -> tuple[list[float], list[float]]:
    """(create ms, create -> first result ms) for n containers, each made when the pool is
    full again (as a user's would be, with a pause between creates)."""
    creates, firsts = [], []
    env = {"LOCALBOX_WARM_POOL": str(pool)}
    with running_localbox(env) as (base, _), httpx.Client(base_url=base, timeout=120) as http:
        for i in range(n + 1):
            wait_for_pool(base, pool)
            create, first, cid = create_and_first(http, f"bench-{i}")
            if i:  # the first one warms the connection and the engine
                creates.append(create)
                firsts.append(first)
            http.delete(f"/containers/{cid}").raise_for_status()
    return creates, firsts


def cold_beside_raw(n: int, image: str, pause: float) -> dict[str, list[float]]:
    """The cold path (no pool) and raw Docker, one sample of each in turn, so that both see
    the same machine: {"create", "first", "run", "run_exec"} in ms."""
    seen: dict[str, list[float]] = {"create": [], "first": [], "run": [], "run_exec": []}
    env = {"LOCALBOX_WARM_POOL": "0"}
    with running_localbox(env) as (base, _), httpx.Client(base_url=base, timeout=120) as http:
        for i in range(n + 1):
            time.sleep(pause)
            create, first, cid = create_and_first(http, f"bench-{i}")
            http.delete(f"/containers/{cid}").raise_for_status()
            time.sleep(pause)
            run, run_exec = raw_docker_once(image)
            if i:  # the first of each warms the connection and the engine
                for key, value in zip(seen, (create, first, run, run_exec), strict=True):
                    seen[key].append(value)
    return seen


def spare_idle_cpu(seconds: float = 10.0) -> tuple[float, float]:
    """(% of a core, MiB of memory) that an idle ready spare uses, from its cgroup."""
    import docker

    client = docker.from_env()
    try:
        env = {"LOCALBOX_WARM_POOL": "1"}
        with running_localbox(env) as (base, _):
            wait_for_pool(base, 1)
            time.sleep(2)  # let the warm-up settle
            (spare,) = client.containers.list(filters={"label": "localbox.spare"}, sparse=True)
            first = client.api.stats(spare.id, stream=False)
            time.sleep(seconds)
            last = client.api.stats(spare.id, stream=False)
    finally:
        client.close()
    used = last["cpu_stats"]["cpu_usage"]["total_usage"]
    used -= first["cpu_stats"]["cpu_usage"]["total_usage"]
    return used / 1e9 / seconds * 100, last["memory_stats"].get("usage", 0) / (1 << 20)


def raw_docker_once(image: str) -> tuple[float, float]:
    """(docker run -d ms, docker run -d + docker exec python3 -c 'print(1)' ms)."""
    name = f"localbox-bench-{secrets.token_hex(4)}"
    cmd = ["docker", "run", "-d", "--name", name, "--label", "localbox.bench=true"]
    cmd += [*RAW_FLAGS, "-v", f"{name}:/mnt/data", image, "sleep", "infinity"]
    try:
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        t1 = time.perf_counter()
        out = subprocess.run(
            ["docker", "exec", name, "python3", "-c", "print(1)"], check=True, capture_output=True
        )
        t2 = time.perf_counter()
        assert out.stdout == b"1\n"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", name], capture_output=True)
    return (t1 - t0) * 1000, (t2 - t0) * 1000


def interpreter_start(image: str, n: int) -> list[float]:
    """The interpreter's start inside a sandbox, as the agent does it (ms)."""
    code = (
        "import sys, time, json; sys.path.insert(0, '/opt/localbox')\n"
        "from localbox_agent.kernel import PythonKernel\n"
        "times = []\n"
        f"for _ in range({n}):\n"
        "    k = PythonKernel(); t = time.perf_counter(); k.ensure()\n"
        "    times.append((time.perf_counter() - t) * 1000); k.stop()\n"
        "print(json.dumps(times))\n"
    )
    out = subprocess.run(
        ["docker", "run", "--rm", *KERNEL_FLAGS, "--entrypoint", "python3", image, "-c", code],
        check=True,
        capture_output=True,
    )
    times: list[float] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return times


def rows(n: int, image: str) -> list[Row]:
    pause = 1.0  # lets the previous container's removal settle, on both sides
    warm_create, warm_first = warm_pool(n)
    cold = cold_beside_raw(n, image, pause)
    kernel = interpreter_start(image, 5)
    idle_cpu, idle_mib = spare_idle_cpu()
    raw_run, raw_first = p50(cold["run"]), p50(cold["run_exec"])
    return [
        Row("POST /v1/containers (warm pool)", p50(warm_create), "docker run -d", raw_run,
            "<= 15 ms"),
        Row("create -> first print(1) (warm pool)", p50(warm_first),
            "docker run -d + docker exec python3 -c", raw_first, "<= 50 ms"),
        Row("POST /v1/containers (no pool)", p50(cold["create"]), "docker run -d", raw_run, ""),
        Row("create -> first print(1) (no pool)", p50(cold["first"]),
            "docker run -d + docker exec python3 -c", raw_first, "<= 1.3x"),
        Row("interpreter start in the sandbox", p50(kernel), "", None, ""),
        Row("idle spare: CPU", idle_cpu, "", None, "little", unit="% of a core"),
        Row("idle spare: memory", idle_mib, "", None, "", unit="MiB"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=15, help="containers per case")
    parser.add_argument(
        "--image", default=os.environ.get("LOCALBOX_SANDBOX_IMAGE", "localbox-sandbox:latest")
    )
    args = parser.parse_args()
    show(rows(args.n, args.image))


if __name__ == "__main__":
    main()
