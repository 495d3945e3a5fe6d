"""A data disk that fills up (a 64 MiB tmpfs): uploads and creates are refused with the
documented disk_full, every delete still works and frees space, and the server starts again,
repairs what it finds and serves, however it was stopped, while the disk is full."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import httpx
import openai
import pytest

from tests.chaos.conftest import docker_objects, serving_on
from tests.chaos.disk import fill, free, tmpfs
from tests.conftest import LocalboxServer

CHUNK = 4 << 20
SLACK = 1 << 20
"""What the database itself may grow by meanwhile (its write-ahead log)."""
ENV = {
    "LOCALBOX_MIN_FREE_DISK": "0",  # let the disk really fill
    "LOCALBOX_EXPIRY_SWEEP_SECONDS": "1",  # it also makes the reserve again once there is room
    "LOCALBOX_RECONCILE_SECONDS": "3600",
}


def refused_for_disk(call: Callable[[], object]) -> None:
    """The call is refused as the README documents a full disk: 429 disk_full, retry-after."""
    with pytest.raises(openai.APIStatusError) as info:
        call()
    error = info.value
    assert error.status_code == 429, error.body
    assert isinstance(error.body, dict)
    assert error.body["code"] == "disk_full", error.body
    assert error.response.headers.get("retry-after") == "1"


def upload_until_refused(client: openai.OpenAI, uploaded: list[str]) -> None:
    payload = bytes(range(256)) * (CHUNK // 256)
    for i in range(32):
        f = client.files.create(file=(f"f{i}.bin", payload), purpose="assistants")
        uploaded.append(f.id)


def incoming(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "files" / ".incoming").iterdir())


def restart(server: LocalboxServer, sig: int) -> openai.OpenAI:
    server.stop(sig)
    server.start()
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    return server.client(max_retries=0)


def wait_for_reserve(disk: Path) -> None:
    """Until the sweep has made the reserve again, with the room freed."""
    deadline = time.monotonic() + 15
    while not (disk / ".reserve").exists():
        assert time.monotonic() < deadline, "the reserve was not made again"
        time.sleep(0.1)


def listed_files(client: openai.OpenAI) -> set[str]:
    return {f.id for f in client.files.list()}


def test_a_full_data_disk(tmp_path: Path, docker_client: docker.DockerClient) -> None:
    with (
        tmpfs(tmp_path / "disk", "64m") as disk,
        serving_on(disk, tmp_path / "logs", ENV) as server,
    ):
        client = server.client(max_retries=0)
        kept = client.containers.create(name="kept")
        doomed = client.containers.create(name="doomed")
        lost = client.containers.create(name="lost")

        # Uploads until the disk refuses one.
        uploaded: list[str] = []
        refused_for_disk(lambda: upload_until_refused(client, uploaded))
        assert len(uploaded) >= 5
        assert incoming(disk) == []  # the refused upload left nothing
        fill(disk / "filler")
        assert free(disk) == 0

        refused_for_disk(lambda: client.files.create(file=("x.txt", b"x"), purpose="assistants"))
        refused_for_disk(lambda: client.containers.create(name="no-room"))
        assert listed_files(client) == set(uploaded)  # reads still answer
        assert incoming(disk) == []

        # The server starts again on the full disk, killed or stopped cleanly (then SQLite's
        # log and shared-memory files are gone, and opening the database needs room).
        for sig in (signal.SIGKILL, signal.SIGTERM):
            client = restart(server, sig)
            assert listed_files(client) == set(uploaded)
        assert free(disk) < CHUNK

        # Deletes work and free the space.
        before = free(disk)
        assert client.files.delete(uploaded[0]).deleted
        assert free(disk) >= before + CHUNK - SLACK
        fill(disk / "filler")  # someone else takes that room again
        client.containers.delete(doomed.id)
        with pytest.raises(openai.NotFoundError):
            client.containers.retrieve(doomed.id)
        assert docker_objects(docker_client, doomed.id) == []
        for file_id in uploaded[1:]:
            assert client.files.delete(file_id).deleted
        assert listed_files(client) == set()
        assert free(disk) >= (len(uploaded) - 1) * CHUNK - SLACK

        # Full again, and a start-up with a record to repair: lost's sandbox vanished.
        fill(disk / "filler")
        docker_client.containers.get(f"localbox-{lost.id}").remove(force=True)
        client = restart(server, signal.SIGKILL)
        statuses = {c.id: c.status for c in client.containers.list()}
        assert statuses == {kept.id: "running", lost.id: "expired"}
        assert "vanished" in server.log_text()
        client.containers.delete(lost.id)

        # Code that has run is answered, even when the disk filled while it ran (else the
        # client would run it again).
        (disk / "filler").unlink()
        wait_for_reserve(disk)
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(
                httpx.post,
                f"{server.base_url}/containers/{kept.id}/exec",
                json={"code": "import time; time.sleep(3); open('made.txt', 'w').write('x')"},
                timeout=60,
            )
            time.sleep(1)
            fill(disk / "filler")
            answer = call.result()
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "completed"
        client.containers.delete(kept.id)
        assert client.containers.list().data == []
        assert docker_objects(docker_client, kept.id) == []

        # With room again, uploads work again.
        (disk / "filler").unlink()
        again = client.files.create(file=("again.txt", b"again"), purpose="assistants")
        assert client.files.content(again.id).read() == b"again"
        assert incoming(disk) == []
        assert (disk / ".reserve").stat().st_size == 8 << 20
