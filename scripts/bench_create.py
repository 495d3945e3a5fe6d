"""Benchmark: median time of POST /v1/containers against `docker run -d` of the same sandbox.

Starts its own localbox on a free port with a temporary data dir, creates and deletes N
containers through the API, then does the same with `docker run -d` (same image, same
hardening flags) and prints both medians in one run.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import running_localbox


def bench_api(n: int, image: str) -> list[float]:
    with (
        running_localbox({"LOCALBOX_SANDBOX_IMAGE": image}) as (base, _),
        httpx.Client(base_url=base, timeout=60) as http,
    ):
        times = []
        for i in range(n + 1):
            t0 = time.perf_counter()
            r = http.post("/containers", json={"name": f"bench-{i}"})
            elapsed = time.perf_counter() - t0
            r.raise_for_status()
            if i:  # the first call warms up the connection and the engine
                times.append(elapsed)
            http.delete(f"/containers/{r.json()['id']}").raise_for_status()
        return times


def bench_docker_run(n: int, image: str) -> list[float]:
    times = []
    for i in range(n + 1):
        name = f"localbox-bench-{secrets.token_hex(4)}"
        cmd = [
            "docker", "run", "-d", "--name", name, "--label", "localbox.bench=true",
            "--network", "none", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--pids-limit", "256", "--memory", "1g", "--memory-swap", "1g", "--cpus", "1",
            "--user", "1000:1000", "--read-only", "--init", "--workdir", "/mnt/data",
            "--tmpfs", "/tmp:rw,nosuid,nodev,size=256m", "-v", f"{name}:/mnt/data",
            "--ulimit", "nofile=4096:4096", image,
        ]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        elapsed = time.perf_counter() - t0
        if i:
            times.append(elapsed)
        subprocess.run(["docker", "rm", "-f", name], check=True, capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", name], check=True, capture_output=True)
    return times


def describe(label: str, times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p90 = ms[int(0.9 * (len(ms) - 1))]
    return (
        f"{label:<28} n={len(ms):<4} median {statistics.median(ms):7.1f} ms   "
        f"p90 {p90:7.1f} ms   min {ms[0]:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=30, help="containers per side")
    parser.add_argument(
        "--image", default=os.environ.get("LOCALBOX_SANDBOX_IMAGE", "localbox-sandbox:latest")
    )
    args = parser.parse_args()
    api = bench_api(args.n, args.image)
    raw = bench_docker_run(args.n, args.image)
    print(f"create a sandbox ({os.cpu_count()} cores, image {args.image})")
    print(describe("POST /v1/containers", api))
    print(describe("docker run -d (same flags)", raw))
    print(f"ratio of medians: {statistics.median(api) / statistics.median(raw):.2f}x")


if __name__ == "__main__":
    main()
