"""Benchmark: what gVisor (LOCALBOX_SANDBOX_RUNTIME=runsc) costs beside runc, in one run.

For each runtime, a localbox of its own measures: POST /v1/containers and create -> first
print(1), with a warm pool and without one; exec of print(1) on a warm container; an upload and
a download of 64 MiB through the API; and what an idle sandbox holds in memory (its cgroup's
working set, which under gVisor includes the gVisor kernel). The runtimes take turns, a sample
of each, so that a change in the machine's load hits both.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_files import Transfers, make_file
from bench_start import create_and_first, wait_for_pool
from benchlib import Row, p50, running_localbox, table

HEADER = "| measure | gVisor (runsc) | runc, same run | ratio | target |"

RUNTIMES = ("runc", "runsc")


@contextmanager
def servers(pool: int) -> Iterator[dict[str, httpx.Client]]:
    """A localbox per runtime (warm pool of `pool`), as an HTTP client on its /v1."""
    with ExitStack() as stack:
        clients = {}
        for runtime in RUNTIMES:
            env = {"LOCALBOX_SANDBOX_RUNTIME": runtime, "LOCALBOX_WARM_POOL": str(pool)}
            base, _ = stack.enter_context(running_localbox(env))
            clients[runtime] = stack.enter_context(httpx.Client(base_url=base, timeout=300))
        yield clients


def starts(n: int, pool: int) -> dict[str, dict[str, list[float]]]:
    """{runtime: {"create": [...], "first": [...]}} in ms, n containers each."""
    seen: dict[str, dict[str, list[float]]] = {r: {"create": [], "first": []} for r in RUNTIMES}
    with servers(pool) as clients:
        for i in range(n + 1):
            for runtime, http in clients.items():
                if pool:
                    wait_for_pool(str(http.base_url).rstrip("/"), pool)
                else:
                    time.sleep(0.5)  # lets the previous removal settle
                create, first, cid = create_and_first(http, f"bench-{i}")
                http.delete(f"/containers/{cid}").raise_for_status()
                if i:  # the first warms the connection and the engine
                    seen[runtime]["create"].append(create)
                    seen[runtime]["first"].append(first)
    return seen


def working_set_mib(container: str) -> float:
    """The sandbox's memory in use (cgroup usage less page cache), in MiB."""
    import docker

    client = docker.from_env()
    try:
        stats = client.api.stats(container, stream=False)["memory_stats"]
    finally:
        client.close()
    inner = stats.get("stats", {})
    cache = inner.get("total_inactive_file", inner.get("inactive_file", 0))
    return float(stats.get("usage", 0) - cache) / (1 << 20)


def steady(n: int, size: int) -> dict[str, dict[str, float]]:
    """{runtime: {"exec", "up", "down", "idle"}}: exec ms (p50), MiB/s up and down (p50 of
    3), idle MiB of a sandbox that has run one call."""
    out: dict[str, dict[str, float]] = {}
    with servers(0) as clients, tempfile.TemporaryDirectory() as tmp:
        payload = Path(tmp) / "payload.bin"
        expected = make_file(payload, size)
        for runtime, http in clients.items():
            cid = http.post("/containers", json={"name": "bench"}).json()["id"]
            try:
                for _ in range(20):  # warm up: the interpreter, caches
                    http.post(f"/containers/{cid}/exec", json={"code": "print(1)"})
                time.sleep(3)
                idle = working_set_mib(f"localbox-{cid}")
                execs = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    r = http.post(f"/containers/{cid}/exec", json={"code": "print(1)"})
                    execs.append((time.perf_counter() - t0) * 1000)
                    assert r.json()["stdout"] == "1\n", r.text
                moves = Transfers(http, str(http.base_url).rstrip("/"), cid, Path(tmp))
                ups, downs = [], []
                for _ in range(3):
                    elapsed, file_id = moves.upload(payload)
                    ups.append(size / (1 << 20) / elapsed)
                    downs.append(size / (1 << 20) / moves.download(file_id, expected))
                out[runtime] = {
                    "exec": p50(execs),
                    "up": p50(ups),
                    "down": p50(downs),
                    "idle": idle,
                }
            finally:
                http.delete(f"/containers/{cid}")
    return out


def rows(n: int = 10, execs: int = 200, size: int = 64 << 20) -> list[Row]:
    warm = starts(n, 2)
    cold = starts(n, 0)
    run = steady(execs, size)
    mib = f"{size >> 20} MiB"

    def pair(what: str, key: str, unit: str = "ms") -> Row:
        return Row(what, run["runsc"][key], "runc", run["runc"][key], "", unit)

    def start(what: str, seen: dict[str, dict[str, list[float]]], key: str) -> Row:
        return Row(what, p50(seen["runsc"][key]), "runc", p50(seen["runc"][key]), "")

    return [
        start("POST /v1/containers (warm pool)", warm, "create"),
        start("create -> first print(1) (warm pool)", warm, "first"),
        start("POST /v1/containers (no pool)", cold, "create"),
        start("create -> first print(1) (no pool)", cold, "first"),
        pair("exec print(1), warm container", "exec"),
        pair(f"upload {mib} (MiB/s)", "up", "MiB/s"),
        pair(f"download {mib} (MiB/s)", "down", "MiB/s"),
        pair("idle sandbox: memory", "idle", "MiB"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=10, help="containers per start case")
    parser.add_argument("--execs", type=int, default=200)
    args = parser.parse_args()
    print(table(rows(args.n, args.execs), HEADER), flush=True)


if __name__ == "__main__":
    main()
