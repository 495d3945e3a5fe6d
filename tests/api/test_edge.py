"""Slow and numerous clients: header and body deadlines, the connection cap, a slowloris.

All load here comes from this machine to 127.0.0.1, is bounded in count and time, and stops
by itself.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, LocalboxServer, _serve, serving

PARTIAL = b"GET /health HTTP/1.1\r\nHost: x\r\n"


def connect(server: LocalboxServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes the connection (fails past limit)."""
    started = time.monotonic()
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {limit} s (got {data!r})")
    return time.monotonic() - started


@pytest.fixture(scope="module")
def quick_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalboxServer]:
    yield from _serve(
        tmp_path_factory.mktemp("edge"),
        {"LOCALBOX_HEADER_TIMEOUT": "1", "LOCALBOX_BODY_TIMEOUT": "1"},
    )


def test_unfinished_headers_are_closed_after_the_header_timeout(
    quick_server: LocalboxServer,
) -> None:
    silent = connect(quick_server)  # connects and says nothing
    slow = connect(quick_server)
    slow.sendall(PARTIAL)
    # Meanwhile a real client is served at once.
    assert httpx.get(f"{quick_server.url}/health", timeout=2).status_code == 200
    assert closed_after(slow, 5) < 4
    assert closed_after(silent, 5) < 4
    silent.close()
    slow.close()
    metrics = httpx.get(f"{quick_server.url}/metrics").text
    pattern = r'localbox_connections_closed_total\{reason="header_timeout"\} (\S+)'
    (closed,) = re.findall(pattern, metrics)
    assert float(closed) >= 2


def test_the_next_request_on_a_kept_alive_connection_has_a_deadline_too(
    quick_server: LocalboxServer,
) -> None:
    sock = connect(quick_server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    sock.sendall(PARTIAL)
    assert closed_after(sock, 8) < 7
    sock.close()


def test_a_body_that_stops_arriving_is_closed(quick_server: LocalboxServer) -> None:
    sock = connect(quick_server)
    sock.sendall(
        b"POST /v1/containers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"name": '
    )
    assert closed_after(sock, 6) < 5
    sock.close()


def test_at_the_cap_with_every_connection_busy_a_new_one_gets_a_clean_503(
    tmp_path: Path,
) -> None:
    with serving(tmp_path / "data", {"LOCALBOX_MAX_CONNECTIONS": "20"}) as server:
        busy = []
        for _ in range(20):  # each in the middle of sending a request body: serving a request
            sock = connect(server)
            sock.sendall(
                b"POST /v1/containers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            busy.append(sock)
        time.sleep(0.5)
        r = httpx.get(f"{server.url}/health", timeout=5)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "too_many_connections"
        for sock in busy:
            sock.close()
        deadline = time.monotonic() + 5
        while httpx.get(f"{server.url}/health", timeout=5).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_a_slowloris_past_the_descriptor_limit_leaves_health_fast(tmp_path: Path) -> None:
    """The server may open 1024 files; one process opens 3000 unfinished requests against it
    for 8 s (within the default 10 s header deadline) while /health is timed."""
    with serving(tmp_path / "data", nofile=1024) as server:
        load = subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "slowloris.py"),
                f"--port={server.port}",
                "--connections=3000",
                "--seconds=8",
                "--probe-every=0.1",
                "--probe-timeout=3",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert load.returncode == 0, load.stderr
        report = json.loads(load.stdout)
        assert report["connections_opened"] >= 2900, report
        assert report["probes"] >= 30, report
        assert report["probe_failures"] == 0, report
        assert report["probe_max_ms"] < 1000, report
        # The server kept its descriptors: old unfinished requests were pushed out.
        assert report["closed_by_server"] >= 2000, report
        assert server.process is not None
        assert server.process.poll() is None
        assert httpx.get(f"{server.url}/health", timeout=2).status_code == 200
        log = server.log_text()
        assert len(log) < 20_000, log[-2000:]  # a warning now and then, not a line per socket
