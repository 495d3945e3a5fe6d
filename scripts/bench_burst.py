"""Benchmark: a burst of 100 container creates with the defaults (the warm pool of 2, the cap
of 100, admission by free memory), as a test suite's setup makes them, beside a burst of 100
`docker run -d` of the same sandbox in the same run.

Prints create p50 and p99 (POST /v1/containers, and create -> first `print(1)` result), how
many creates the pool served, and what the 100 idle sandboxes hold in memory (the host's
MemAvailable before and after). Starts its own localbox on a free port.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_start import RAW_FLAGS, create_and_first, wait_for_pool
from benchlib import Row, p50, running_localbox, show

BURST = 100
WORKERS = 8


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def metric(base: str, name: str) -> float:
    text = httpx.get(base.removesuffix("/v1") + "/metrics").text
    return sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(name))


def localbox_burst(n: int, workers: int) -> dict[str, object]:
    with running_localbox() as (base, _), httpx.Client(base_url=base, timeout=300) as http:
        wait_for_pool(base, 2)
        time.sleep(2)  # the spares' warm-up settles
        before = mem_available()
        warm_before = metric(base, 'localbox_warm_pool_claims_total{outcome="warm"}')

        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda i: create_and_first(http, f"burst-{i}"), range(n)))
        wall = time.perf_counter() - started
        time.sleep(3)  # the sandboxes settle before their memory is read
        held = before - mem_available()
        warm = metric(base, 'localbox_warm_pool_claims_total{outcome="warm"}') - warm_before
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda r: http.delete(f"/containers/{r[2]}"), results))
    return {
        "create": [r[0] for r in results],
        "first": [r[1] for r in results],
        "wall": wall,
        "held": held,
        "warm": warm,
    }


def raw_burst(n: int, workers: int, image: str) -> tuple[list[float], list[float]]:
    """`docker run -d` of n sandboxes, then `docker exec` of python3 -c 'print(1)' in each,
    workers at a time: (run ms, run + exec ms) of each."""
    names = [f"localbox-bench-{secrets.token_hex(4)}" for _ in range(n)]

    def one(name: str) -> tuple[float, float]:
        cmd = ["docker", "run", "-d", "--name", name, "--label", "localbox.bench=true"]
        cmd += [*RAW_FLAGS, "-v", f"{name}:/mnt/data", image, "sleep", "infinity"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        t1 = time.perf_counter()
        exec_ = ["docker", "exec", name, "python3", "-c", "print(1)"]
        out = subprocess.run(exec_, check=True, capture_output=True)
        t2 = time.perf_counter()
        assert out.stdout == b"1\n"
        return (t1 - t0) * 1000, (t2 - t0) * 1000

    try:
        with ThreadPoolExecutor(workers) as pool:
            done = list(pool.map(one, names))
        return [d[0] for d in done], [d[1] for d in done]
    finally:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", *names], capture_output=True)


def rows(image: str, n: int = BURST, workers: int = WORKERS) -> list[Row]:
    box = localbox_burst(n, workers)
    time.sleep(5)  # the removals settle
    raw, raw_first = raw_burst(n, workers, image)
    create, first = box["create"], box["first"]
    held, warm, wall = box["held"], box["warm"], box["wall"]
    assert isinstance(create, list)
    assert isinstance(first, list)
    assert isinstance(held, int)
    assert isinstance(warm, float)
    assert isinstance(wall, float)
    raw_exec = "docker run -d + docker exec python3 -c"
    what = f"burst of {n} creates, {workers} at a time"
    return [
        Row(f"{what}: POST /v1/containers p50", p50(create), "docker run -d p50", p50(raw), ""),
        Row(f"{what}: POST /v1/containers p99", p99(create), "docker run -d p99", p99(raw), ""),
        Row(f"{what}: create -> first print(1) p50", p50(first), f"{raw_exec} p50",
            p50(raw_first), ""),
        Row(f"{what}: create -> first print(1) p99", p99(first), f"{raw_exec} p99",
            p99(raw_first), ""),
        Row(f"{what}: served by the warm pool", warm, "", None, "", unit="creates"),
        Row(f"{what}: all done", wall, "", None, "", unit="s"),
        Row(f"{n} idle containers: memory held", held / (1 << 30), "", None,
            "fits 24 GiB", unit="GiB"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=BURST)
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument(
        "--image", default=os.environ.get("LOCALBOX_SANDBOX_IMAGE", "localbox-sandbox:latest")
    )
    args = parser.parse_args()
    show(rows(args.image, args.n, args.workers))


if __name__ == "__main__":
    main()
