"""Expiry on schedule, restarts that keep everything, reconciliation, with real Docker.

The module's server sweeps every second. The one-minute container is created first and
checked last, so the other tests run while it ages.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import httpx
import openai
import pytest

from server.store import Database
from tests.conftest import LocalboxServer, _serve

SWEEP = 1.0


@pytest.fixture(scope="module")
def life_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalboxServer]:
    yield from _serve(
        tmp_path_factory.mktemp("localbox-life"),
        {
            "LOCALBOX_EXPIRY_SWEEP_SECONDS": str(SWEEP),
            "LOCALBOX_RECONCILE_SECONDS": "2",
        },
    )


@pytest.fixture(scope="module")
def short_lived(life_server: LocalboxServer) -> tuple[str, float]:
    c = life_server.client().containers.create(
        name="one-minute", expires_after={"anchor": "last_active_at", "minutes": 1}
    )
    life_server.client().containers.files.create(c.id, file=("f.txt", b"f"))
    return c.id, time.time()


def _sandbox_exists(docker_client: docker.DockerClient, container_id: str) -> bool:
    try:
        docker_client.containers.get(f"localbox-{container_id}")
    except docker.errors.NotFound:
        return False
    return True


def _volume_exists(docker_client: docker.DockerClient, container_id: str) -> bool:
    try:
        docker_client.volumes.get(f"localbox-{container_id}")
    except docker.errors.NotFound:
        return False
    return True


def test_kill_9_and_restart_keep_containers_and_files(
    life_server: LocalboxServer, short_lived: tuple[str, float], docker_client: docker.DockerClient
) -> None:
    client = life_server.client(max_retries=0)
    c = client.containers.create(name="survivor")
    payload = bytes(range(256)) * 4000
    f = client.containers.files.create(c.id, file=("keep.bin", payload))

    life_server.stop(signal.SIGKILL)
    assert _sandbox_exists(docker_client, c.id)
    assert docker_client.containers.get(f"localbox-{c.id}").status == "running"
    life_server.start()

    client = life_server.client(max_retries=0)
    got = client.containers.retrieve(c.id)
    assert got.status == "running"
    assert client.containers.files.retrieve(f.id, container_id=c.id).bytes == len(payload)
    content = client.containers.files.content.retrieve(f.id, container_id=c.id).read()
    assert content == payload


def test_sigterm_is_graceful_and_leaves_sandboxes(
    life_server: LocalboxServer, short_lived: tuple[str, float], docker_client: docker.DockerClient
) -> None:
    c = life_server.client().containers.create(name="term")
    assert life_server.process is not None
    life_server.stop(signal.SIGTERM)
    assert _sandbox_exists(docker_client, c.id)
    log = life_server.log_text()
    assert "Traceback" not in log
    life_server.start()
    assert life_server.client().containers.retrieve(c.id).status == "running"


def test_orphans_go_and_stopped_sandboxes_start_on_start(
    life_server: LocalboxServer, short_lived: tuple[str, float], docker_client: docker.DockerClient
) -> None:
    client = life_server.client(max_retries=0)
    kept = client.containers.create(name="stopped-then-started")
    life_server.stop()
    docker_client.containers.get(f"localbox-{kept.id}").stop(timeout=1)
    orphan_id = "cntr_" + "0" * 48
    labels = {
        "localbox.managed": "true",
        "localbox.instance": life_server.instance_id,
        "localbox.container_id": orphan_id,
    }
    docker_client.volumes.create(name=f"localbox-{orphan_id}", labels=labels)
    docker_client.containers.run(
        "localbox-sandbox:latest",
        name=f"localbox-{orphan_id}",
        labels=labels,
        detach=True,
        network_mode="none",
        volumes={f"localbox-{orphan_id}": {"bind": "/mnt/data", "mode": "rw"}},
    )
    life_server.start()
    client = life_server.client(max_retries=0)
    assert not _sandbox_exists(docker_client, orphan_id)
    assert not _volume_exists(docker_client, orphan_id)
    assert docker_client.containers.get(f"localbox-{kept.id}").status == "running"
    assert client.containers.retrieve(kept.id).status == "running"


def test_a_sandbox_removed_behind_our_back_expires_the_container(
    life_server: LocalboxServer, short_lived: tuple[str, float], docker_client: docker.DockerClient
) -> None:
    client = life_server.client(max_retries=0)
    c = client.containers.create(name="vanishing")
    docker_client.containers.get(f"localbox-{c.id}").remove(force=True)
    deadline = time.monotonic() + 15
    while client.containers.retrieve(c.id).status != "expired":
        assert time.monotonic() < deadline, "reconcile did not mark the container expired"
        time.sleep(0.25)
    assert "vanished" in life_server.log_text()


def test_deleted_containers_are_404_and_unlisted(life_server: LocalboxServer) -> None:
    client = life_server.client(max_retries=0)
    c = client.containers.create(name="to-delete")
    client.containers.delete(c.id)
    with pytest.raises(openai.NotFoundError):
        client.containers.retrieve(c.id)
    assert c.id not in [x.id for x in client.containers.list(limit=100)]


def test_one_minute_container_expires_on_schedule(
    life_server: LocalboxServer, short_lived: tuple[str, float], docker_client: docker.DockerClient
) -> None:
    cid, created = short_lived
    client = life_server.client(max_retries=0)
    # Listing does not count as activity, so polling the list leaves the deadline alone.
    deadline = created + 60 + SWEEP + 5
    while True:
        listed = {c.id: c for c in client.containers.list(limit=100)}
        if listed[cid].status == "expired":
            break
        assert time.time() < deadline, "the container did not expire in time"
        time.sleep(0.5)
    expired_at = time.time()
    assert expired_at >= created + 59
    # The record turns "expired" first; the sweep then removes the sandbox and its volume,
    # all within the same deadline.
    while _sandbox_exists(docker_client, cid) or _volume_exists(docker_client, cid):
        assert time.time() < deadline, "the sandbox outlived the sweep"
        time.sleep(0.2)

    got = client.containers.retrieve(cid)
    assert got.status == "expired"
    with pytest.raises(openai.BadRequestError) as info:
        client.containers.files.list(cid)
    assert isinstance(info.value.body, dict)
    assert info.value.body["message"] == "Container is expired."
    with pytest.raises(openai.BadRequestError) as info:
        client.containers.files.create(cid, file=("x.txt", b"x"))
    assert isinstance(info.value.body, dict)
    assert info.value.body["message"] == "Container is expired."
    r = httpx.post(f"{life_server.base_url}/containers/{cid}/exec", json={"code": "1"})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Container is expired."
    assert client.containers.retrieve(cid).status == "expired"
    client.containers.delete(cid)
    with pytest.raises(openai.NotFoundError):
        client.containers.retrieve(cid)


def test_deadline_passed_while_down_expires_at_first_sweep(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    servers = _serve(tmp_path / "d", {"LOCALBOX_EXPIRY_SWEEP_SECONDS": "1"})
    server = next(servers)
    try:
        c = server.client().containers.create(name="down")
        server.stop()
        # Move the deadline into the past while the server is down, as an hour of downtime would.
        db = Database(server.database_url)
        db.execute("UPDATE containers SET expires_at = expires_at - 3600 WHERE id = :id", id=c.id)
        db.close()
        server.start()
        deadline = time.monotonic() + 10
        while server.client().containers.retrieve(c.id).status != "expired":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        # The record turns "expired" first; the same sweep then removes the sandbox.
        while _sandbox_exists(docker_client, c.id):
            assert time.monotonic() < deadline, "the sandbox outlived the sweep"
            time.sleep(0.2)
    finally:
        for _ in servers:
            pass
