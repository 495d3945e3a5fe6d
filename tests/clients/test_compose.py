"""localbox as an image: compose.yaml brings it up with the Docker socket, and a smoke test
runs create/upload/download/exec/delete against it. The project has a name of its own, and
only the sandboxes of its own instance are cleaned up: other deployments on the engine (their
data dir is /data too) keep theirs."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import docker
import docker.errors
import httpx
import openai
import pytest

from tests.conftest import ROOT, free_port, remove_sandboxes

KEY = "sk-compose-test"


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


@dataclass
class Deployment:
    url: str
    instance_id: str
    project: str
    base: list[str]
    env: dict[str, str]


def read_instance_id(client: docker.DockerClient, project: str) -> str:
    """The instance id the server keeps in its data volume."""
    (server,) = client.containers.list(filters={"label": f"com.docker.compose.project={project}"})
    code, out = server.exec_run(["cat", "/data/instance-id"])
    assert code == 0, out
    assert isinstance(out, bytes)
    return out.decode().strip()


@contextmanager
def compose_up(client: docker.DockerClient) -> Iterator[Deployment]:
    """One compose project of its own on a free port; down, with its sandboxes, at the end."""
    port = free_port()
    project = f"localboxtest{secrets.token_hex(6)}"
    env = {**os.environ, "LOCALBOX_API_KEYS": KEY, "LOCALBOX_PORT": str(port)}
    base = [*compose_command(), "-p", project, "-f", str(ROOT / "compose.yaml")]
    up = subprocess.run(
        [*base, "up", "-d", "--no-build"], cwd=ROOT, env=env, capture_output=True, timeout=300
    )
    assert up.returncode == 0, up.stdout + up.stderr
    url = f"http://127.0.0.1:{port}"
    instance_id = ""
    try:
        wait_healthy(url, base, env)
        instance_id = read_instance_id(client, project)
        yield Deployment(url, instance_id, project, base, env)
    finally:
        with suppress(AssertionError, ValueError, docker.errors.DockerException):
            instance_id = instance_id or read_instance_id(client, project)
        subprocess.run([*base, "down", "-v"], env=env, capture_output=True, timeout=300)
        if instance_id:
            remove_sandboxes(instance_id)


def wait_healthy(url: str, base: list[str], env: dict[str, str]) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            logs = subprocess.run([*base, "logs"], env=env, capture_output=True, timeout=60)
            raise AssertionError(logs.stdout.decode(errors="replace"))
        time.sleep(0.5)


@pytest.fixture(scope="module")
def deployment(docker_client: docker.DockerClient) -> Iterator[Deployment]:
    with compose_up(docker_client) as d:
        yield d


def test_compose_smoke(deployment: Deployment, docker_client: docker.DockerClient) -> None:
    compose_url = deployment.url
    with openai.OpenAI(base_url=f"{compose_url}/v1", api_key=KEY, max_retries=0) as client:
        wrong = openai.OpenAI(base_url=f"{compose_url}/v1", api_key="wrong", max_retries=0)
        with wrong, pytest.raises(openai.AuthenticationError):
            wrong.containers.list()
        c = client.containers.create(name="compose-smoke")
        sandbox = docker_client.containers.get(f"localbox-{c.id}")
        assert sandbox.labels["localbox.container_id"] == c.id
        assert sandbox.labels["localbox.instance"] == deployment.instance_id
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


def test_two_projects_on_one_engine_keep_their_own_sandboxes(
    deployment: Deployment, docker_client: docker.DockerClient
) -> None:
    """Both keep their data in /data; a second project's start-up reconcile (and its
    teardown) must leave the first one's sandboxes alone."""
    with openai.OpenAI(base_url=f"{deployment.url}/v1", api_key=KEY, max_retries=0) as client:
        c = client.containers.create(name="first-project")
        with compose_up(docker_client) as other:
            assert other.instance_id != deployment.instance_id
            restart = subprocess.run(
                [*other.base, "restart"], env=other.env, capture_output=True, timeout=120
            )
            assert restart.returncode == 0, restart.stderr
            wait_healthy(other.url, other.base, other.env)  # reconciled at start-up
            assert docker_client.containers.get(f"localbox-{c.id}").status == "running"
        # The other project is down, its sandboxes removed; ours is still there and works.
        assert client.containers.retrieve(c.id).status == "running"
        f = client.containers.files.create(c.id, file=("still.txt", b"here"))
        assert client.containers.files.content.retrieve(f.id, container_id=c.id).read() == b"here"
        client.containers.delete(c.id)
