"""A Docker engine restart while localbox runs: 503 while it is down, all well when it is back."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.api.test_exec import run
from tests.conftest import ROOT, LocalboxServer

PID_FILE = Path("/var/run/docker.pid")


def engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def stop_engine() -> None:
    if PID_FILE.exists():
        os.kill(int(PID_FILE.read_text()), signal.SIGTERM)
    elif shutil.which("systemctl"):
        subprocess.run(["systemctl", "stop", "docker.socket", "docker"], check=True)
    else:
        raise AssertionError("cannot tell how this Docker engine was started")
    deadline = time.monotonic() + 60
    while engine_answers() or PID_FILE.exists():
        assert time.monotonic() < deadline, "dockerd did not stop"
        time.sleep(0.2)


def start_engine() -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-docker.sh")], check=True)


def test_engine_restart_while_serving(fresh_server: LocalboxServer) -> None:
    client = fresh_server.client(max_retries=0)
    before = client.containers.create(name="before-restart")
    client.containers.files.create(before.id, file=("kept.txt", b"kept"))
    assert run(fresh_server, before.id, "x = 1")["status"] == "completed"

    stop_engine()
    try:
        health = httpx.get(f"{fresh_server.url}/health")
        assert health.status_code == 503
        assert health.json()["checks"]["docker"].startswith("down")
        with pytest.raises(openai.InternalServerError) as info:
            client.containers.create(name="while-down")
        assert info.value.status_code == 503
        with pytest.raises(openai.InternalServerError) as info:
            client.containers.files.list(before.id)
        assert info.value.status_code == 503
        # What needs no engine still answers.
        assert client.containers.retrieve(before.id).status == "running"
    finally:
        start_engine()

    deadline = time.monotonic() + 30
    while httpx.get(f"{fresh_server.url}/health").status_code != 200:
        assert time.monotonic() < deadline, "health did not recover"
        time.sleep(0.2)
    after = client.containers.create(name="after-restart")
    assert after.status == "running"
    files = list(client.containers.files.list(before.id))
    assert [f.path for f in files] == ["/mnt/data/kept.txt"]
    content = client.containers.files.content.retrieve(files[0].id, container_id=before.id)
    assert content.read() == b"kept"

    # The engine restarted the sandbox: the first call runs all the same, and says that the
    # Python state is gone; the next one keeps state again.
    first = run(fresh_server, before.id, "print('ran')")
    assert first["status"] == "completed", first
    assert first["stdout"] == "ran\n"
    assert "restarted since the last call" in first["stderr"]
    assert first["state_preserved"] is False
    assert run(fresh_server, before.id, "y = 2")["state_preserved"] is True
    assert run(fresh_server, before.id, "print(y)")["stdout"] == "2\n"
