"""Benchmark: how long until a new container answers, against raw Docker in the same run.

- POST /v1/containers with a warm pool, beside `docker run -d` of the same sandbox;
- create -> the first `print(1)` result, with a warm pool and without one (the cold path),
  beside `docker run -d` + `docker exec <it> python3 -c 'print(1)'`;
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


def through_api(n: int, pool: int, pause: float) -> tuple[list[float], list[float]]:
    """(create ms, create -> first result ms) for n containers, each made when the pool
    is full again (a pause between creates, as a user's would be)."""
    env = {"LOCALBOX_WARM_POOL": str(pool)}
    creates, firsts = [], []
    with running_localbox(env) as (base, _), httpx.Client(base_url=base, timeout=120) as http:
        for i in range(n + 1):
            if pool:
                wait_for_pool(base, pool)
            else:
                time.sleep(pause)
            t0 = time.perf_counter()
            r = http.post("/containers", json={"name": f"bench-{i}"})
            t1 = time.perf_counter()
            r.raise_for_status()
            cid = r.json()["id"]
            out = http.post(f"/containers/{cid}/exec", json={"code": "print(1)"}).json()
            t2 = time.perf_counter()
            assert out["stdout"] == "1\n", out
            if i:  # the first one warms the connection and the engine
                creates.append((t1 - t0) * 1000)
                firsts.append((t2 - t0) * 1000)
            http.delete(f"/containers/{cid}").raise_for_status()
    return creates, firsts


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


def raw_docker(n: int, image: str, pause: float) -> tuple[list[float], list[float]]:
    """(docker run -d ms, docker run -d + docker exec python3 -c 'print(1)' ms)."""
    runs, firsts = [], []
    for i in range(n + 1):
        time.sleep(pause)
        name = f"localbox-bench-{secrets.token_hex(4)}"
        cmd = ["docker", "run", "-d", "--name", name, "--label", "localbox.bench=true"]
        cmd += [*RAW_FLAGS, "-v", f"{name}:/mnt/data", image, "sleep", "infinity"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        t1 = time.perf_counter()
        out = subprocess.run(
            ["docker", "exec", name, "python3", "-c", "print(1)"], check=True, capture_output=True
        )
        t2 = time.perf_counter()
        assert out.stdout == b"1\n"
        if i:
            runs.append((t1 - t0) * 1000)
            firsts.append((t2 - t0) * 1000)
        subprocess.run(["docker", "rm", "-f", name], check=True, capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", name], check=True, capture_output=True)
    return runs, firsts


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
    pause = 2.0  # lets the previous container's removal settle, on both sides
    warm_create, warm_first = through_api(n, pool=2, pause=pause)
    cold_create, cold_first = through_api(n, pool=0, pause=pause)
    raw_run, raw_first = raw_docker(n, image, pause)
    kernel = interpreter_start(image, 5)
    idle_cpu, idle_mib = spare_idle_cpu()
    return [
        Row("POST /v1/containers (warm pool)", p50(warm_create), "docker run -d", p50(raw_run),
            "<= 15 ms"),
        Row("create -> first print(1) (warm pool)", p50(warm_first),
            "docker run -d + docker exec python3 -c", p50(raw_first), "<= 50 ms"),
        Row("POST /v1/containers (no pool)", p50(cold_create), "docker run -d", p50(raw_run), ""),
        Row("create -> first print(1) (no pool)", p50(cold_first),
            "docker run -d + docker exec python3 -c", p50(raw_first), "<= 1.3x"),
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
