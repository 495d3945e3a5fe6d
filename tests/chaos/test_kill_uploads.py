"""kill -9 of the server in the middle of work: a large upload, a replacement, a long call.

A real server on its own data dir is killed with SIGKILL and started again on the same one;
what clients were told before the kill must hold after it, and nothing half-done may show.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import openai
import pytest

from tests.conftest import LocalboxServer, serving

MIB = 1 << 20
BIG = 200 * MIB
KILL_AFTER = 64 * MIB
"""Bytes sent before the kill; the rest never arrives."""
TEMP = ".localbox-upload-"


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LocalboxServer]:
    """A server of the test's own, to kill and start again on the same data dir."""
    with serving(tmp_path / "data") as server:
        yield server


def sandbox_names(docker_client: docker.DockerClient, container_id: str) -> list[str]:
    """What `ls -a /mnt/data` shows in the sandbox (as root: the agent kills the sandbox
    user's processes between calls)."""
    sandbox = docker_client.containers.get(f"localbox-{container_id}")
    code, out = sandbox.exec_run(["ls", "-A", "/mnt/data"], user="0")
    assert code == 0, out
    assert isinstance(out, bytes)
    return sorted(out.decode().split())


def bytes_in_sandbox(docker_client: docker.DockerClient, container_id: str) -> int:
    """The apparent size of everything in the sandbox's /mnt/data."""
    sandbox = docker_client.containers.get(f"localbox-{container_id}")
    code, out = sandbox.exec_run(["du", "-sb", "/mnt/data"], user="0")
    assert code == 0, out
    assert isinstance(out, bytes)
    return int(out.split()[0])


def kill_mid_upload(
    server: LocalboxServer,
    docker_client: docker.DockerClient,
    client: openai.OpenAI,
    container_id: str,
    name: str,
    listed: list[tuple[str, int]],
) -> None:
    """Stream a BIG multipart upload to name, and SIGKILL the server once part of it is in
    the sandbox; the files listed meanwhile must be those listed before (the upload's bytes
    are under a temporary name)."""
    boundary = "k1ll-b0undary"
    head = (
        f'--{boundary}\r\ncontent-disposition: form-data; name="file"; filename="{name}"\r\n'
        "content-type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    sent_enough = threading.Event()
    killed = threading.Event()
    block = os.urandom(MIB)

    def body() -> Iterator[bytes]:
        yield head
        for sent in range(0, BIG, MIB):
            if sent == KILL_AFTER:
                sent_enough.set()
                killed.wait(60)
            yield block
        yield tail

    failures: list[BaseException] = []

    def upload() -> None:
        try:
            httpx.post(
                f"{server.base_url}/containers/{container_id}/files",
                content=body(),
                headers={
                    "content-type": f"multipart/form-data; boundary={boundary}",
                    "content-length": str(len(head) + BIG + len(tail)),
                },
                timeout=120,
            )
        except httpx.HTTPError as exc:
            failures.append(exc)

    uploading = threading.Thread(target=upload)
    uploading.start()
    try:
        assert sent_enough.wait(120)
        deadline = time.monotonic() + 30
        while bytes_in_sandbox(docker_client, container_id) < KILL_AFTER // 2:
            assert time.monotonic() < deadline, "the upload never reached the sandbox"
            time.sleep(0.1)
        # Part of it is in the sandbox: not under its name, and never listed.
        files = client.containers.files.list(container_id)
        assert [(f.path, f.bytes) for f in files] == listed
        server.stop(signal.SIGKILL)
    finally:
        killed.set()
        uploading.join(60)
    assert failures, "the upload should have been cut off by the kill"


def test_a_killed_upload_leaves_no_file_and_no_temporary(
    own_server: LocalboxServer, docker_client: docker.DockerClient
) -> None:
    server = own_server
    client = server.client(max_retries=0)
    container = client.containers.create(name="kill-upload")
    kill_mid_upload(server, docker_client, client, container.id, "big.bin", [])
    left = sandbox_names(docker_client, container.id)

    server.start()  # the same data dir: reconciled at start-up
    client = server.client(max_retries=0)
    assert [f.path for f in client.containers.files.list(container.id)] == []
    assert [n for n in left if not n.startswith(TEMP)] == []  # the partial was a temporary
    assert sandbox_names(docker_client, container.id) == []  # and it is gone
    # The container works as before, and takes the upload again.
    again = client.containers.files.create(container.id, file=("big.bin", b"whole"))
    assert again.bytes == 5
    assert [f.path for f in client.containers.files.list(container.id)] == ["/mnt/data/big.bin"]


def test_a_killed_replacement_keeps_the_acknowledged_bytes(
    own_server: LocalboxServer, docker_client: docker.DockerClient
) -> None:
    server = own_server
    client = server.client(max_retries=0)
    container = client.containers.create(name="kill-replace")
    old = os.urandom(3 * MIB + 17)
    kept = client.containers.files.create(container.id, file=("kept.bin", old))
    assert kept.bytes == len(old)
    listed = [("/mnt/data/kept.bin", len(old))]
    kill_mid_upload(server, docker_client, client, container.id, "kept.bin", listed)

    server.start()
    client = server.client(max_retries=0)
    files = list(client.containers.files.list(container.id))
    assert [(f.path, f.bytes) for f in files] == listed
    content = client.containers.files.content.retrieve(files[0].id, container_id=container.id)
    assert hashlib.sha256(content.read()).hexdigest() == hashlib.sha256(old).hexdigest()
    assert sandbox_names(docker_client, container.id) == ["kept.bin"]


def exec_call(server: LocalboxServer, container_id: str, code: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/containers/{container_id}/exec",
        json={"code": code, "timeout": 120},
        timeout=180,
    )


def test_a_call_cut_off_by_a_kill_does_not_hold_up_the_next(own_server: LocalboxServer) -> None:
    server = own_server
    client = server.client(max_retries=0)
    container = client.containers.create(name="kill-call")
    assert exec_call(server, container.id, "x = 41").json()["status"] == "completed"
    cut_off: list[BaseException] = []

    def long_call() -> None:
        try:
            exec_call(server, container.id, "import time\ntime.sleep(60)")
        except httpx.HTTPError as exc:
            cut_off.append(exc)

    caller = threading.Thread(target=long_call)
    caller.start()
    time.sleep(2)  # the call is running in the sandbox
    server.stop(signal.SIGKILL)
    caller.join(30)
    assert cut_off

    server.start()
    started = time.monotonic()
    first = exec_call(server, container.id, "print(x + 1)")
    took = time.monotonic() - started
    assert first.status_code == 200, first.text
    assert took < 5, f"the first call after the restart took {took:.1f} s"
    result = first.json()
    assert result["status"] == "completed", result
    assert result["stdout"] == "42\n"  # the stray call was interrupted: the state is kept
    assert result["state_preserved"] is True
