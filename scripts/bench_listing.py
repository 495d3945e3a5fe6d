"""Benchmark: listing at scale, in one run.

- `GET /v1/containers?limit=100` with N container records in the database (inserted straight
  into the server's SQLite file before it starts, no sandboxes), beside `SELECT ... LIMIT 100`
  on the same file through sqlite3;
- `GET /v1/containers/{id}/files?limit=100` on one real container holding M files (written by
  one exec call), the first call and the steady state, beside
  `docker exec <sandbox> find /mnt/data -type f | wc -l`; then again after M more files appear
  behind localbox's back (written as root with `docker exec`: only the listing's sync sees
  them; the agent's watchdog stops stray processes of the sandbox user).

Starts its own localbox on a free port with a temporary data dir.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import Row, running_localbox

from server.store import Database

ENV = {"LOCALBOX_WARM_POOL": "0"}

MAKE_FILES = """
import os
os.makedirs("/mnt/data/{folder}", exist_ok=True)
for i in range({count}):
    with open(f"/mnt/data/{folder}/f{{i:05d}}.txt", "w") as f:
        f.write(str(i))
"""


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def ms(times: list[float]) -> str:
    return f"p50 {statistics.median(times) * 1e3:8.1f} ms  min {min(times) * 1e3:8.1f} ms"


def insert_containers(db_path: Path, count: int) -> None:
    """Create the tables as the server would, then insert count expired containers."""
    db = Database(f"sqlite:///{db_path}")
    db.create_tables()
    db.close()
    now = int(time.time())
    rows = [
        (f"cntr_bench{i:08d}", f"bench-{i}", now - count + i, "expired", 20, now - count + i)
        for i in range(count)
    ]
    with sqlite3.connect(db_path) as conn:
        conn.executemany(
            "INSERT INTO containers (id, name, created_at, status, expires_after_minutes,"
            " last_active_at, expires_at, memory_limit, network_policy_type, allowed_domains)"
            " VALUES (?, ?, ?, ?, ?, ?, ?+1200, '1g', 'disabled', '')",
            [(*r, r[2]) for r in rows],
        )


def sqlite_page(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "SELECT * FROM containers ORDER BY created_at DESC, id DESC LIMIT 101"
        ).fetchall()


def measure(containers: int, files: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of each case: "containers", "sqlite", "files_first", "files_steady", "find",
    "behind_first", "behind_steady", and "exec" (the call that made the files)."""
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        db_path = data / "localbox.db"
        insert_containers(db_path, containers)
        with (
            running_localbox(ENV, data_dir=data) as (base, _pid),
            httpx.Client(timeout=600) as http,
        ):
            url = f"{base}/containers?limit=100"
            assert len(http.get(url).json()["data"]) == min(100, containers)
            out["containers"] = timed(lambda: http.get(url).raise_for_status(), repeats * 5)
            out["sqlite"] = timed(lambda: sqlite_page(db_path), repeats * 5)
            cid = http.post(f"{base}/containers", json={"name": "bench-files"}).json()["id"]
            sandbox = f"localbox-{cid}"
            try:
                t0 = time.perf_counter()
                code = MAKE_FILES.format(folder="made", count=files)
                r = http.post(f"{base}/containers/{cid}/exec", json={"code": code})
                r.raise_for_status()
                assert r.json()["status"] == "completed", r.json()["status"]
                out["exec"] = [time.perf_counter() - t0]
                files_url = f"{base}/containers/{cid}/files?limit=100"

                def list_files() -> None:
                    http.get(files_url).raise_for_status()

                def find() -> None:
                    subprocess.run(
                        f"docker exec {sandbox} find /mnt/data -type f | wc -l",
                        shell=True,
                        check=True,
                        capture_output=True,
                    )

                out["files_first"] = timed(list_files, 1)
                out["files_steady"] = timed(list_files, repeats)
                out["find"] = timed(find, repeats)
                # Files that appear behind localbox's back: only the listing's sync sees them.
                more = MAKE_FILES.format(folder="behind", count=files)
                made = subprocess.run(
                    ["docker", "exec", "-u", "0", sandbox, "python3", "-c", more],
                    capture_output=True,
                    text=True,
                )
                assert made.returncode == 0, (made.returncode, made.stdout, made.stderr)
                out["behind_first"] = timed(list_files, 1)
                out["behind_steady"] = timed(list_files, repeats)
            finally:
                http.delete(f"{base}/containers/{cid}")
    return out


def rows(containers: int = 10_000, files: int = 10_000, repeats: int = 20) -> list[Row]:
    t = {k: statistics.median(v) * 1000 for k, v in measure(containers, files, repeats).items()}
    return [
        Row(f"GET /v1/containers?limit=100, {containers:,} records", t["containers"],
            "sqlite3 SELECT", t["sqlite"], "<= 10 ms"),
        Row(f"GET …/files, {files:,} files (first)", t["files_first"],
            "docker exec find -type f", t["find"], "<= 300 ms"),
        Row(f"GET …/files, {files:,} files (steady)", t["files_steady"],
            "docker exec find -type f", t["find"], "<= 300 ms"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--containers", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    t = measure(args.containers, args.files, args.repeats)
    print(f"containers list, {args.containers} records, limit=100")
    print(f"  GET /v1/containers?limit=100         {ms(t['containers'])}")
    print(f"  sqlite3 SELECT ... LIMIT 101         {ms(t['sqlite'])}")
    print(f"container files list, {args.files} files (made by one exec call)")
    print(f"  the exec call that made them        {t['exec'][0] * 1e3:8.1f} ms")
    print(f"  GET .../files?limit=100, first      {t['files_first'][0] * 1e3:8.1f} ms")
    print(f"  GET .../files?limit=100, steady     {ms(t['files_steady'])}")
    print(f"  docker exec find | wc -l            {ms(t['find'])}")
    print(f"after {args.files} more files written behind localbox's back")
    print(f"  GET .../files?limit=100, first      {t['behind_first'][0] * 1e3:8.1f} ms")
    print(f"  GET .../files?limit=100, steady     {ms(t['behind_steady'])}")


if __name__ == "__main__":
    main()
