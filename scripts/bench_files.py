"""Benchmark: container-file upload and download throughput and the server's peak RSS,
beside `docker cp` of the same file into and out of the same sandbox, in one run.

Starts its own localbox on a free port (with a raised upload limit) and a temporary data dir.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import running_localbox


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256, help="file size in MiB")
    args = parser.parse_args()
    size = args.mib << 20
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "payload.bin"
        expected = make_file(src, size)
        limit = {"LOCALBOX_MAX_UPLOAD_BYTES": str(size + (1 << 20))}
        with running_localbox(limit) as (base, pid), httpx.Client(timeout=600) as http:
            cid = http.post(f"{base}/containers", json={"name": "bench"}).json()["id"]
            # Warm up every code path once with a small file before measuring memory.
            http.post(f"{base}/containers/{cid}/files", files={"file": ("w", b"w")})
            rss_before = rss_kib(pid, "VmRSS")

            t0 = time.perf_counter()
            with src.open("rb") as f:
                r = http.post(f"{base}/containers/{cid}/files", files={"file": ("p.bin", f)})
            r.raise_for_status()
            upload_s = time.perf_counter() - t0
            file_id = r.json()["id"]

            t0 = time.perf_counter()
            digest = hashlib.sha256()
            url = f"{base}/containers/{cid}/files/{file_id}/content"
            with http.stream("GET", url) as resp:
                for chunk in resp.iter_bytes(1 << 20):
                    digest.update(chunk)
            download_s = time.perf_counter() - t0
            assert digest.hexdigest() == expected, "download differs from upload"
            peak = rss_kib(pid, "VmHWM")

            sandbox = f"localbox-{cid}"
            t0 = time.perf_counter()
            subprocess.run(["docker", "cp", str(src), f"{sandbox}:/mnt/data/cp.bin"], check=True)
            cp_in_s = time.perf_counter() - t0
            out = Path(tmp) / "back.bin"
            t0 = time.perf_counter()
            subprocess.run(["docker", "cp", f"{sandbox}:/mnt/data/cp.bin", str(out)], check=True)
            cp_out_s = time.perf_counter() - t0
            http.delete(f"{base}/containers/{cid}")

    mib = size / (1 << 20)
    print(f"container file transfer, {mib:.0f} MiB, {os.cpu_count()} cores")
    print(f"{'upload   (POST .../files)':<30} {mib / upload_s:8.1f} MiB/s  {upload_s:6.2f} s")
    print(f"{'download (GET .../content)':<30} {mib / download_s:8.1f} MiB/s  {download_s:6.2f} s")
    print(f"{'docker cp into the sandbox':<30} {mib / cp_in_s:8.1f} MiB/s  {cp_in_s:6.2f} s")
    print(f"{'docker cp out of the sandbox':<30} {mib / cp_out_s:8.1f} MiB/s  {cp_out_s:6.2f} s")
    print(
        f"server RSS before {rss_before / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB "
        f"(growth {(peak - rss_before) / 1024:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
