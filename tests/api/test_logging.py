"""Logs: one line per record that no client or sandbox can forge or flood, JSON on request,
and one access line per request with its id, container, route, status and duration."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx

from server.logs import ContextFilter, JsonFormatter, TextFormatter, request_context, untrusted
from tests.conftest import serving

HOSTILE = "\x1b[2J\x1b[31mred\r\n2026-01-01 00:00:00,000 INFO localbox: FORGED\x07" + "x" * 20_000


def record(message: str, *args: object) -> logging.LogRecord:
    rec = logging.LogRecord("localbox.test", logging.INFO, __file__, 1, message, args, None)
    ContextFilter().filter(rec)
    return rec


def test_text_lines_are_escaped_and_truncated() -> None:
    line = TextFormatter().format(record("agent says: %s", HOSTILE))
    assert "\n" not in line
    assert "\r" not in line
    assert "\x1b" not in line
    assert "\x07" not in line
    assert "\\x1b[31mred\\r\\n" in line
    assert len(line) < 5_000
    assert "more characters]" in line


def test_json_lines_carry_the_request_context() -> None:
    token = request_context.set({"request_id": "req_1", "container_id": "cntr_2"})
    try:
        line = JsonFormatter().format(record("hello %s", HOSTILE))
    finally:
        request_context.reset(token)
    assert "\n" not in line
    assert "\x1b" not in line
    entry = json.loads(line)
    assert entry["request_id"] == "req_1"
    assert entry["container_id"] == "cntr_2"
    assert entry["message"].startswith("hello \x1b[2J")  # kept, but only as JSON escapes
    assert len(line) < 5_000


def test_untrusted_helper_for_sandbox_text() -> None:
    assert untrusted(b"\x1b[31mhi\n" + b"y" * 500, limit=20) == (
        "\\x1b[31mhi\\nyyyyyyyyyyyy… [488 more characters]"
    )


def test_json_log_format_gives_one_object_per_line(tmp_path: Path) -> None:
    env = {"LOCALBOX_LOG_FORMAT": "json", "LOCALBOX_LOG_LEVEL": "info"}
    with serving(tmp_path / "data", env) as server:
        missing = "cntr_" + "1" * 48
        r = httpx.get(f"{server.base_url}/containers/{missing}")
        assert r.status_code == 404
        assert httpx.get(f"{server.url}/health").status_code == 200
        server.stop()
        lines = server.log_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    access = [e for e in entries if e["logger"] == "localbox.access"]
    (line,) = [e for e in access if e.get("container_id") == missing]
    assert line["request_id"] == r.headers["x-request-id"]
    assert line["route"] == "/v1/containers/{container_id}"
    assert line["method"] == "GET"
    assert line["status"] == 404
    assert isinstance(line["duration_ms"], float)
    # Health checks and scrapes are not logged at INFO.
    assert not [e for e in access if e["route"] == "/health"]
    assert any(e["logger"].startswith("uvicorn") for e in entries)  # uvicorn's lines too


def test_a_sandbox_flooding_stderr_cannot_flood_or_forge_the_log(tmp_path: Path) -> None:
    """100 writes of 1 MiB, with terminal escapes and a forged log line, to the stderr the
    server reads (the agent's, which the sandbox's processes share)."""
    with serving(tmp_path / "data", {"LOCALBOX_LOG_LEVEL": "info"}) as server:
        client = server.client(max_retries=0)
        c = client.containers.create(name="flood")
        before = len(server.log_text().encode())
        code = (
            "for i in $(seq 100); do "
            "printf '\\033[2J\\033[31m\\n2026-01-01 00:00:00,000 INFO localbox: FORGED\\n' "
            ">/proc/1/fd/2; "
            "head -c 1048576 /dev/zero | tr '\\0' x >/proc/1/fd/2; "
            "done; echo done"
        )
        r = httpx.post(
            f"{server.base_url}/containers/{c.id}/exec",
            json={"code": code, "language": "bash", "timeout": 120},
            timeout=180,
        )
        assert r.status_code == 200, r.text
        py = httpx.post(
            f"{server.base_url}/containers/{c.id}/exec",
            json={"code": "import os\nos.write(2, b'\\x1b[31m\\nFORGED too\\n' * 1000)"},
            timeout=180,
        )
        assert py.status_code == 200, py.text
        assert client.containers.retrieve(c.id).status == "running"
        log = server.log_text()
    grown = len(log.encode()) - before
    assert grown < 256 * 1024, f"the log grew by {grown} bytes"
    assert "\x1b" not in log
    assert not [line for line in log.splitlines() if "FORGED" in line and line.startswith("20")]
