"""Benchmark: container-file upload and download throughput and the server's RSS growth,
beside `docker cp` of the same file into and out of the same sandbox, in one run.

For each size, rounds of (upload, docker cp in, download, docker cp out) are interleaved, so
that other load on the machine falls on both sides alike; medians are reported, with the
ratio to docker cp. Starts its own localbox on a free port (with a raised upload limit) and
a temporary data dir.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import Row, running_localbox


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 8 << 20))
            digest.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


class Transfers:
    """The four transfers of one file, each returning its duration in seconds."""

    def __init__(self, http: httpx.Client, base: str, cid: str, tmp: Path) -> None:
        self.http, self.base, self.cid, self.tmp = http, base, cid, tmp
        self.sandbox = f"localbox-{cid}"

    def upload(self, src: Path) -> tuple[float, str]:
        t0 = time.perf_counter()
        with src.open("rb") as f:
            r = self.http.post(
                f"{self.base}/containers/{self.cid}/files", files={"file": ("p.bin", f)}
            )
        r.raise_for_status()
        return time.perf_counter() - t0, str(r.json()["id"])

    def download(self, file_id: str, expected: str) -> float:
        """Into a file, as docker cp does; both are checked after the clock stops."""
        back = self.tmp / "down.bin"
        t0 = time.perf_counter()
        url = f"{self.base}/containers/{self.cid}/files/{file_id}/content"
        with self.http.stream("GET", url) as resp, back.open("wb") as out:
            resp.raise_for_status()
            for chunk in resp.iter_raw(1 << 20):
                out.write(chunk)
        elapsed = time.perf_counter() - t0
        with back.open("rb") as f:
            assert hashlib.file_digest(f, "sha256").hexdigest() == expected, "download differs"
        back.unlink()
        return elapsed

    def cp_in(self, src: Path) -> float:
        t0 = time.perf_counter()
        subprocess.run(["docker", "cp", str(src), f"{self.sandbox}:/mnt/data/cp.bin"], check=True)
        return time.perf_counter() - t0

    def cp_out(self, expected: str) -> float:
        back = self.tmp / "back.bin"
        t0 = time.perf_counter()
        subprocess.run(["docker", "cp", f"{self.sandbox}:/mnt/data/cp.bin", str(back)], check=True)
        elapsed = time.perf_counter() - t0
        with back.open("rb") as f:
            assert hashlib.file_digest(f, "sha256").hexdigest() == expected, "docker cp differs"
        back.unlink()
        subprocess.run(["docker", "exec", self.sandbox, "rm", "/mnt/data/cp.bin"], check=True)
        return elapsed


def measure(sizes: list[int], rounds: int) -> tuple[list[tuple[int, dict[str, float]]], float]:
    """Median seconds of each transfer per size ({"up", "in", "down", "out"}), and the
    server's peak RSS growth in MiB."""
    env = {
        "LOCALBOX_MAX_UPLOAD_BYTES": str(max(sizes) + (1 << 20)),
        # Room for the uploaded file, the docker cp copy and the next upload's check.
        "LOCALBOX_SANDBOX_DISK_BYTES": str(3 * max(sizes) + (64 << 20)),
        "LOCALBOX_WARM_POOL": "0",
    }
    results = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_localbox(env) as (base, pid),
        httpx.Client(timeout=600) as http,
    ):
        cid = http.post(f"{base}/containers", json={"name": "bench"}).json()["id"]
        bench = Transfers(http, base, cid, Path(tmp))
        try:
            # Warm up every code path once with a small file before measuring memory.
            warm = Path(tmp) / "warm"
            warm_sha = make_file(warm, 1 << 10)
            bench.download(bench.upload(warm)[1], warm_sha)
            rss_before = rss_kib(pid, "VmRSS")
            for size in sizes:
                src = Path(tmp) / "payload.bin"
                expected = make_file(src, size)
                times: dict[str, list[float]] = {"up": [], "in": [], "down": [], "out": []}
                for _ in range(rounds):
                    elapsed, file_id = bench.upload(src)
                    times["up"].append(elapsed)
                    times["in"].append(bench.cp_in(src))
                    times["down"].append(bench.download(file_id, expected))
                    times["out"].append(bench.cp_out(expected))
                results.append((size, {k: statistics.median(v) for k, v in times.items()}))
                src.unlink()
            peak = rss_kib(pid, "VmHWM")
        finally:
            http.delete(f"{base}/containers/{cid}")
    return results, (peak - rss_before) / 1024


def rows(sizes: tuple[int, ...] = (256 << 20, 1 << 30), rounds: int = 3) -> list[Row]:
    results, growth = measure(list(sizes), rounds)
    out = []
    for size, t in results:
        mib = size / (1 << 20)
        label = f"{mib:.0f} MiB" if mib < 1024 else f"{mib / 1024:.0f} GiB"
        out.append(
            Row(
                f"upload {label} (MiB/s)",
                mib / t["up"],
                "docker cp in",
                mib / t["in"],
                ">= 0.8x",
                unit="MiB/s",
            )
        )
        out.append(Row(f"download {label} (MiB/s)", mib / t["down"], "docker cp out",
                       mib / t["out"], ">= 0.8x", unit="MiB/s"))  # fmt: skip
    out.append(Row("server RSS growth over the transfers", growth, "", None, "< 64 MiB", "MiB"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes", default="256,1024", help="file sizes in MiB, comma-separated (256,1024)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size")
    args = parser.parse_args()
    results, growth = measure([int(s) << 20 for s in args.sizes.split(",")], args.rounds)
    print(f"container file transfer, median of {args.rounds} rounds, {os.cpu_count()} cores")
    for size, t in results:
        mib = size / (1 << 20)
        up, cp_in, down, cp_out = (mib / t[k] for k in ("up", "in", "down", "out"))
        print(
            f"{mib:6.0f} MiB  upload   {up:7.1f} MiB/s  docker cp in  {cp_in:7.1f} MiB/s"
            f"  ratio {up / cp_in:4.2f}"
        )
        print(
            f"{mib:6.0f} MiB  download {down:7.1f} MiB/s  docker cp out {cp_out:7.1f} MiB/s"
            f"  ratio {down / cp_out:4.2f}"
        )
    print(f"server RSS peak growth {growth:.1f} MiB")


if __name__ == "__main__":
    main()
