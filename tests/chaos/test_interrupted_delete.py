"""A container delete cut short by kill -9 is finished by the restart's reconcile: the
container ends deleted (404, unlisted, never "expired"), with no Docker object left."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

import docker
import httpx
import openai
import pytest

from tests.chaos.conftest import db_execute, docker_objects
from tests.conftest import LocalboxServer, serving

ENV = {"LOCALBOX_RECONCILE_SECONDS": "3600"}


def volumes_of(client: docker.DockerClient, container_id: str) -> list[str]:
    """The names of the sandbox's volumes (a claimed spare's are named for the spare)."""
    mounts = client.containers.get(f"localbox-{container_id}").attrs["Mounts"]
    return [m["Name"] for m in mounts if m.get("Type") == "volume"]


def gone(client: docker.DockerClient, names: list[str]) -> bool:
    return not any(v.name in names for v in client.volumes.list())


def assert_deleted(
    server: LocalboxServer, client: docker.DockerClient, container_id: str, volumes: list[str]
) -> None:
    sdk = server.client(max_retries=0)
    with pytest.raises(openai.NotFoundError):
        sdk.containers.retrieve(container_id)
    assert container_id not in [c.id for c in sdk.containers.list(limit=100)]
    assert db_execute(server, "SELECT id FROM containers WHERE id = :id", id=container_id) == []
    assert docker_objects(client, container_id) == []
    assert gone(client, volumes)


def status(server: LocalboxServer, container_id: str) -> str | None:
    rows = db_execute(server, "SELECT status FROM containers WHERE id = :id", id=container_id)
    return str(rows[0][0]) if rows else None


@pytest.mark.parametrize("pool", ["0", "1"], ids=["cold", "claimed-spare"])
def test_kill_9_right_after_delete(
    tmp_path: Path, docker_client: docker.DockerClient, pool: str
) -> None:
    with serving(tmp_path / "data", {**ENV, "LOCALBOX_WARM_POOL": pool}) as server:
        client = server.client(max_retries=0)
        if pool == "1":
            time.sleep(1)  # let the pool's spare come up, so the create claims it
        c = client.containers.create(name="doomed")
        client.containers.files.create(c.id, file=("f.txt", b"f"))
        volumes = volumes_of(docker_client, c.id)
        process = server.process
        assert process is not None

        def delete() -> None:
            with contextlib.suppress(httpx.TransportError):  # killed under it
                httpx.delete(f"{server.base_url}/containers/{c.id}", timeout=30)

        sender = threading.Thread(target=delete)
        sender.start()
        # Kill as soon as the delete has begun: the record says so, or the sandbox is going.
        deadline = time.monotonic() + 30
        while status(server, c.id) == "running" and time.monotonic() < deadline:
            time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
        sender.join(30)
        process.wait(10)

        server.start()
        assert_deleted(server, docker_client, c.id, volumes)
        assert "marking it expired" not in server.log_text()


def test_a_delete_cut_short_after_the_sandbox_went(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    """The record already says "deleting" and the sandbox is gone, its volumes not: what a
    kill between removing the sandbox and its volumes leaves."""
    with serving(tmp_path / "data", ENV) as server:
        client = server.client(max_retries=0)
        c = client.containers.create(name="half-deleted")
        volumes = volumes_of(docker_client, c.id)
        server.stop(signal.SIGKILL)
        db_execute(server, "UPDATE containers SET status = 'deleting' WHERE id = :id", id=c.id)
        docker_client.containers.get(f"localbox-{c.id}").remove(force=True)
        assert not gone(docker_client, volumes)

        server.start()
        assert_deleted(server, docker_client, c.id, volumes)
