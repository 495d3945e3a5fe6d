"""Shared by the benchmarks: start a localbox of their own on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_localbox(
    env: dict[str, str] | None = None, data_dir: Path | None = None
) -> Iterator[tuple[str, int]]:
    """Serve localbox with data_dir (a temporary one by default); yields (base URL of /v1,
    server pid)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        data = str(data_dir or tmp)
        full_env = {
            **os.environ,
            "LOCALBOX_PORT": str(port),
            "LOCALBOX_DATA_DIR": data,
            "LOCALBOX_LOG_LEVEL": "warning",
            **(env or {}),
        }
        proc = subprocess.Popen([sys.executable, "-m", "server"], cwd=ROOT, env=full_env)
        try:
            for _ in range(600):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            yield f"http://127.0.0.1:{port}/v1", proc.pid
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
