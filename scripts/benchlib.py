"""Shared by the benchmarks: start a localbox of their own on a free port."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Row:
    """One benchmark figure beside its raw-Docker baseline from the same run."""

    what: str
    localbox: float
    baseline_what: str
    baseline: float | None
    target: str
    unit: str = "ms"

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.localbox / self.baseline  # type: ignore[operator]


def p50(values: list[float]) -> float:
    return statistics.median(values)


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"


def table(
    rows: list[Row], header: str = "| measure | localbox | raw Docker, same run | ratio | target |"
) -> str:
    """The rows as a Markdown table (the README's benchmark table)."""
    lines = [header, "|---|---|---|---|---|"]
    for r in rows:
        base = f"{_figure(r.baseline, r.unit)} ({r.baseline_what})" if r.baseline_what else ""
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        lines.append(
            f"| {r.what} | {_figure(r.localbox, r.unit)} | {base} | {ratio} | {r.target} |"
        )
    return "\n".join(lines)


def show(rows: list[Row]) -> None:
    print(table(rows), flush=True)
