"""Benchmark: round trip of `print(1)` through POST /v1/containers/{id}/exec on a warm
container, beside `docker exec <sandbox> python3 -c 'print(1)'`, in one run.

Starts its own localbox on a free port with a temporary data dir.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import Row, p50, running_localbox


def percentile(ms: list[float], p: float) -> float:
    ordered = sorted(ms)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def describe(label: str, ms: list[float]) -> str:
    return (
        f"{label:<44} n={len(ms):<4} p50 {percentile(ms, 50):7.2f} ms   "
        f"p99 {percentile(ms, 99):7.2f} ms   mean {statistics.mean(ms):7.2f} ms"
    )


def measure(n: int, docker_n: int) -> tuple[list[float], list[float]]:
    """(ms per exec through the API, ms per docker exec) on one warm container."""
    env = {"LOCALBOX_WARM_POOL": "0"}
    with running_localbox(env) as (base, _), httpx.Client(timeout=120) as http:
        cid = http.post(f"{base}/containers", json={"name": "bench"}).json()["id"]
        url = f"{base}/containers/{cid}/exec"
        for _ in range(20):  # warm up: start the interpreter, fill caches
            http.post(url, json={"code": "print(1)"}).raise_for_status()
        api = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = http.post(url, json={"code": "print(1)"})
            api.append((time.perf_counter() - t0) * 1000)
            assert r.json()["stdout"] == "1\n", r.text
        raw = []
        for _ in range(docker_n):
            t0 = time.perf_counter()
            out = subprocess.run(
                ["docker", "exec", f"localbox-{cid}", "python3", "-c", "print(1)"],
                capture_output=True,
                check=True,
            )
            raw.append((time.perf_counter() - t0) * 1000)
            assert out.stdout == b"1\n"
        http.delete(f"{base}/containers/{cid}")
    return api, raw


def rows(n: int = 300, docker_n: int = 50) -> list[Row]:
    api, raw = measure(n, docker_n)
    return [
        Row(
            "exec print(1), warm container (stateful)",
            p50(api),
            "docker exec python3 -c",
            p50(raw),
            "<= 5 ms",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=300, help="calls through the API")
    parser.add_argument("--docker-n", type=int, default=50, help="docker exec calls")
    args = parser.parse_args()
    api, raw = measure(args.n, args.docker_n)
    print(f"print(1) round trip on a warm container ({os.cpu_count()} cores)")
    print(describe("POST /v1/containers/{id}/exec (stateful)", api))
    print(describe("docker exec <sandbox> python3 -c 'print(1)'", raw))


if __name__ == "__main__":
    main()
