"""Benchmark: replicas. localbox on one PostgreSQL database and one data dir, as one replica and
then as three behind HAProxy (round-robin), beside one server reached directly (no balancer):
POST /v1/containers from the warm pool, and exec of print(1) on warm containers, p50 and p99,
with a few clients at once.

Each setup starts afresh, as the replica tests start theirs (tests/replicas/cluster.py): the
servers, the balancer and a database of their own on the tests' PostgreSQL
(scripts/ensure-postgres.sh) and Debian's haproxy (scripts/ensure-haproxy.sh).

Creates go in rounds of one per client at once, each round once every replica's pool is full
again (its /metrics), so they measure claims, not the refill; a round larger than the pools
there are gets cold starts too, which the last column counts. Execs: each client runs its share
of the calls on a container of its own, one after another; every call through the balancer may
land on another replica than the one before.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_exec import percentile  # noqa: E402

from tests.replicas.cluster import Cluster, run_code, running_cluster  # noqa: E402

BENCH_ENV = {
    # As a deployment runs: sweeps and reconciles at their defaults, little logging.
    "LOCALBOX_EXPIRY_SWEEP_SECONDS": "5",
    "LOCALBOX_RECONCILE_SECONDS": "60",
    "LOCALBOX_LOG_LEVEL": "warning",
}


@dataclass
class Figures:
    setup: str
    creates: list[float]
    """ms per POST /v1/containers"""
    warm: int
    cold: int
    execs: list[float]
    """ms per exec of print(1)"""
    exec_seconds: float
    """wall time of all the execs"""


def metric(url: str, name: str) -> float:
    """One sample of a server's /metrics, by its full name with labels."""
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise RuntimeError(f"no {name} in {url}/metrics")


def claims(cluster: Cluster) -> tuple[int, int]:
    """(creates from a spare, creates without one) so far, over every replica."""
    warm = cold = 0
    for replica in cluster.replicas:
        warm += int(metric(replica.url, 'localbox_warm_pool_claims_total{outcome="warm"}'))
        cold += int(metric(replica.url, 'localbox_warm_pool_claims_total{outcome="cold"}'))
        cold += int(metric(replica.url, 'localbox_warm_pool_claims_total{outcome="failed"}'))
    return warm, cold


def wait_for_pools(cluster: Cluster, size: int, timeout: float = 300) -> None:
    """Until every replica's pool holds `size` ready spares."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(metric(r.url, "localbox_warm_pool_ready") >= size for r in cluster.replicas):
            return
        time.sleep(0.1)
    raise RuntimeError("the warm pools did not fill")


def in_parallel(clients: int, work: Callable[[int], list[float]]) -> list[float]:
    with ThreadPoolExecutor(clients) as pool:
        return [ms for share in pool.map(work, range(clients)) for ms in share]


def measure_creates(
    cluster: Cluster, base: str, n: int, clients: int, pool: int
) -> tuple[list[float], int, int]:
    """(ms per create, creates from a spare, creates without) for n creates through base."""
    http = [cluster.http(base, timeout=300) for _ in range(clients)]
    try:
        for h in http:  # connections open, the first requests served
            h.get("containers?limit=1").raise_for_status()
        warm_before, cold_before = claims(cluster)
        seen: list[float] = []
        made: list[str] = []
        for _ in range(-(-n // clients)):
            wait_for_pools(cluster, pool)

            def create(i: int) -> list[float]:
                t0 = time.perf_counter()
                r = http[i].post("containers", json={"name": "bench"})
                ms = (time.perf_counter() - t0) * 1000
                r.raise_for_status()
                made.append(r.json()["id"])
                return [ms]

            seen += in_parallel(clients, create)
            while made:
                http[0].delete(f"containers/{made.pop()}").raise_for_status()
        warm_after, cold_after = claims(cluster)
    finally:
        for h in http:
            h.close()
    return seen, warm_after - warm_before, cold_after - cold_before


def measure_execs(cluster: Cluster, base: str, n: int, clients: int) -> tuple[list[float], float]:
    """(ms per exec of print(1), seconds for all) for n calls through base, each client on a
    container of its own."""
    http = [cluster.http(base, timeout=300) for _ in range(clients)]
    ids = []
    try:
        for h in http:
            r = h.post("containers", json={"name": "bench-exec"})
            r.raise_for_status()
            ids.append(r.json()["id"])
            for _ in range(10):  # the interpreter started, the connections open
                run_code(h, ids[-1], "print(1)")

        def calls(i: int) -> list[float]:
            seen = []
            for _ in range(-(-n // clients)):
                t0 = time.perf_counter()
                out = run_code(http[i], ids[i], "print(1)")
                seen.append((time.perf_counter() - t0) * 1000)
                if out["stdout"] != "1\n":
                    raise RuntimeError(f"exec answered {out}")
            return seen

        started = time.perf_counter()
        seen = in_parallel(clients, calls)
        seconds = time.perf_counter() - started
        for cid in ids:
            http[0].delete(f"containers/{cid}").raise_for_status()
    finally:
        for h in http:
            h.close()
    return seen, seconds


def measure(replicas: int, args: argparse.Namespace) -> list[Figures]:
    """The setups with `replicas` replicas: through the balancer, and with one replica also
    straight to the server."""
    env = {**BENCH_ENV, "LOCALBOX_WARM_POOL": str(args.pool)}
    figures = []
    with tempfile.TemporaryDirectory() as tmp, running_cluster(Path(tmp), replicas, env) as c:
        ways = [(f"{replicas} replica{'s' if replicas > 1 else ''}, HAProxy", c.base_url)]
        if replicas == 1:
            ways.insert(0, ("1 server, direct (no balancer)", c.replicas[0].base_url))
        for setup, base in ways:
            print(f"==> {setup}", file=sys.stderr, flush=True)
            creates, warm, cold = measure_creates(c, base, args.creates, args.clients, args.pool)
            execs, seconds = measure_execs(c, base, args.execs, args.clients)
            figures.append(Figures(setup, creates, warm, cold, execs, seconds))
    return figures


def table(figures: list[Figures]) -> str:
    lines = [
        "| setup | create p50 | create p99 | from a spare | exec print(1) p50 "
        "| exec print(1) p99 | execs/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        create = f"{percentile(f.creates, 50):.1f} ms | {percentile(f.creates, 99):.1f} ms"
        execs = f"{percentile(f.execs, 50):.1f} ms | {percentile(f.execs, 99):.1f} ms"
        rate = len(f.execs) / f.exec_seconds
        lines.append(
            f"| {f.setup} | {create} | {f.warm}/{f.warm + f.cold} | {execs} | {rate:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=60, help="creates per setup")
    parser.add_argument("--execs", type=int, default=200, help="exec calls per setup")
    parser.add_argument("--clients", type=int, default=3, help="clients at once")
    parser.add_argument("--pool", type=int, default=2, help="LOCALBOX_WARM_POOL of each replica")
    parser.add_argument("--replicas", type=int, default=3, help="replicas of the larger setup")
    args = parser.parse_args()
    figures = measure(1, args) + measure(args.replicas, args)
    print(table(figures))
    print()
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}"
    print(
        f"{len(figures[0].creates)} creates and {len(figures[0].execs)} execs per setup, "
        f"{args.clients} clients at once, a warm pool of {args.pool} per replica; {machine}."
    )


if __name__ == "__main__":
    main()
