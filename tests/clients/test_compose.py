"""localbox as an image: compose.yaml brings it up with the Docker socket, and a smoke test
runs create/upload/download/exec/delete against it. Sandboxes it made are cleaned up."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator

import docker
import httpx
import openai
import pytest

from tests.conftest import ROOT, free_port, remove_sandboxes

KEY = "sk-compose-test"


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


@pytest.fixture(scope="module")
def compose_url() -> Iterator[str]:
    port = free_port()
    project = f"localboxtest{secrets.token_hex(4)}"
    env = {**os.environ, "LOCALBOX_API_KEYS": KEY, "LOCALBOX_PORT": str(port)}
    base = [*compose_command(), "-p", project, "-f", str(ROOT / "compose.yaml")]
    up = subprocess.run(
        [*base, "up", "-d", "--no-build"], cwd=ROOT, env=env, capture_output=True, timeout=300
    )
    assert up.returncode == 0, up.stdout + up.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                logs = subprocess.run([*base, "logs"], env=env, capture_output=True, timeout=60)
                raise AssertionError(logs.stdout.decode(errors="replace"))
            time.sleep(0.5)
        yield url
    finally:
        subprocess.run([*base, "down", "-v"], env=env, capture_output=True, timeout=300)
        # The server in the container keeps its data in /data: that names its sandboxes.
        remove_sandboxes(hashlib.sha256(b"/data").hexdigest()[:16])


def test_compose_smoke(compose_url: str, docker_client: docker.DockerClient) -> None:
    with openai.OpenAI(base_url=f"{compose_url}/v1", api_key=KEY, max_retries=0) as client:
        wrong = openai.OpenAI(base_url=f"{compose_url}/v1", api_key="wrong", max_retries=0)
        with wrong, pytest.raises(openai.AuthenticationError):
            wrong.containers.list()
        c = client.containers.create(name="compose-smoke")
        sandbox = docker_client.containers.get(f"localbox-{c.id}")
        assert sandbox.labels["localbox.container_id"] == c.id
        f = client.containers.files.create(c.id, file=("in.txt", b"from the host"))
        got = client.containers.files.content.retrieve(f.id, container_id=c.id).read()
        assert got == b"from the host"
        r = httpx.post(
            f"{compose_url}/v1/containers/{c.id}/exec",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"code": "print(open('in.txt').read().upper())"},
            timeout=120,
        )
        assert r.status_code == 200, r.text
        assert r.json()["stdout"] == "FROM THE HOST\n"
        client.containers.delete(c.id)
        with pytest.raises(openai.NotFoundError):
            client.containers.retrieve(c.id)
