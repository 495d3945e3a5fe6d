"""Finite capacity: request bodies per route, running containers, their memory, Files-API
storage and free disk. Never-fits is a 400 naming the setting; fits-later is a 429."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import LocalboxServer, _serve, serving


def rss_bytes(server: LocalboxServer) -> int:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def chunks(total: int, prefix: bytes = b"") -> Iterator[bytes]:
    yield prefix
    block = b"x" * (1 << 20)
    for _ in range(total >> 20):
        yield block


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalboxServer]:
    yield from _serve(
        tmp_path_factory.mktemp("limits"),
        {
            "LOCALBOX_MAX_CONTAINERS": "3",
            "LOCALBOX_MEMORY_BUDGET": "6g",
            "LOCALBOX_MAX_FILES_BYTES": "1m",
            "LOCALBOX_MAX_JSON_BYTES": "1m",
            "LOCALBOX_MAX_UPLOAD_BYTES": "8m",
        },
    )


# Bodies


def test_a_declared_oversize_json_body_is_refused_before_it_is_read(
    limited: LocalboxServer,
) -> None:
    with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/containers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 314572800\r\n\r\n"
            b'{"name": "'
        )
        started = time.monotonic()
        answer = b""
        while not answer.endswith(b"}}"):
            answer += sock.recv(65536)
        assert time.monotonic() - started < 2
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 413")
    error = json.loads(body)["error"]
    assert error["code"] == "request_too_large"
    assert "LOCALBOX_MAX_JSON_BYTES" in error["message"]


@pytest.mark.parametrize("route", ["/containers", "/containers/cntr_x/exec"])
def test_a_streamed_oversize_json_body_is_cut_at_the_json_cap(
    limited: LocalboxServer, route: str
) -> None:
    r = httpx.post(
        f"{limited.base_url}{route}",
        content=chunks(64 << 20, b'{"name": "'),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "request_too_large"
    assert "LOCALBOX_MAX_JSON_BYTES" in error["message"]


def test_a_300_mib_body_does_not_grow_the_server(tmp_path: Path) -> None:
    with serving(tmp_path / "data") as server:  # default caps: 16 MiB of JSON
        before = rss_bytes(server)
        r = httpx.post(
            f"{server.base_url}/containers/cntr_x/exec",
            content=chunks(300 << 20, b'{"code": "'),
            headers={"content-type": "application/json"},
            timeout=120,
        )
        assert r.status_code == 413
        assert rss_bytes(server) - before < 64 << 20


def test_uploads_keep_their_own_cap(limited: LocalboxServer) -> None:
    client = limited.client(max_retries=0)
    c = client.containers.create(name="uploads")
    try:
        two_mib = b"u" * (2 << 20)  # over the JSON cap, under the upload cap
        f = client.containers.files.create(c.id, file=("big.bin", two_mib))
        assert f.bytes == len(two_mib)
        with pytest.raises(openai.APIStatusError) as info:
            client.containers.files.create(c.id, file=("huge.bin", b"h" * (9 << 20)))
        assert info.value.status_code == 413
        assert "LOCALBOX_MAX_UPLOAD_BYTES" in info.value.message
        # Multipart to a route that takes no upload gets the JSON cap.
        r = httpx.post(f"{limited.base_url}/containers", files={"file": ("x", two_mib)})
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "request_too_large"
    finally:
        client.containers.delete(c.id)


# Containers and memory


def test_container_count_and_memory_budget(limited: LocalboxServer) -> None:
    client = limited.client(max_retries=0)
    with pytest.raises(openai.BadRequestError) as bad:
        client.containers.create(name="never", memory_limit="16g")
    assert bad.value.param == "memory_limit"
    assert bad.value.code == "memory_limit_over_budget"
    assert "LOCALBOX_MEMORY_BUDGET" in bad.value.message
    big = client.containers.create(name="big", memory_limit="4g")
    with pytest.raises(openai.RateLimitError) as later:
        client.containers.create(name="later", memory_limit="4g")
    assert later.value.status_code == 429
    assert later.value.code == "memory_budget_exhausted"
    assert "LOCALBOX_MEMORY_BUDGET" in later.value.message
    assert isinstance(later.value.body, dict)
    assert set(later.value.body) == {"message", "type", "param", "code"}
    small = [client.containers.create(name=f"small-{i}") for i in range(2)]  # 4g + 1g + 1g = 6g
    with pytest.raises(openai.RateLimitError) as full:
        client.containers.create(name="fourth", memory_limit="1g")
    assert full.value.code == "too_many_containers"
    assert "LOCALBOX_MAX_CONTAINERS" in full.value.message
    client.containers.delete(big.id)
    fits_now = client.containers.create(name="fits-now", memory_limit="4g")
    for c in [fits_now, *small]:
        client.containers.delete(c.id)


def test_the_sdk_retries_a_429_and_succeeds_once_room_is_made(limited: LocalboxServer) -> None:
    client = limited.client(max_retries=0)
    held = [client.containers.create(name=f"held-{i}") for i in range(3)]
    retrying = limited.client(max_retries=5)

    def free_one() -> None:
        time.sleep(0.6)
        client.containers.delete(held.pop().id)

    threading.Thread(target=free_one).start()
    made = retrying.containers.create(name="after-retry")
    for c in [made, *held]:
        client.containers.delete(c.id)


# Files-API storage and free disk


def test_files_storage_limit(limited: LocalboxServer) -> None:
    client = limited.client(max_retries=0)
    with pytest.raises(openai.BadRequestError) as never:
        client.files.create(file=("two.bin", b"2" * (2 << 20)), purpose="assistants")
    assert never.value.code == "file_over_storage_limit"
    assert "LOCALBOX_MAX_FILES_BYTES" in never.value.message
    first = client.files.create(file=("a.bin", b"a" * 600_000), purpose="assistants")
    with pytest.raises(openai.RateLimitError) as later:
        client.files.create(file=("b.bin", b"b" * 600_000), purpose="assistants")
    assert later.value.code == "files_storage_full"
    assert "LOCALBOX_MAX_FILES_BYTES" in later.value.message
    client.files.delete(first.id)
    second = client.files.create(file=("b.bin", b"b" * 600_000), purpose="assistants")
    client.files.delete(second.id)


def test_uploads_and_creates_are_refused_when_the_disk_is_nearly_full(tmp_path: Path) -> None:
    with serving(tmp_path / "data", {"LOCALBOX_MIN_FREE_DISK": "1000t"}) as server:
        client = server.client(max_retries=0)
        with pytest.raises(openai.RateLimitError) as create:
            client.containers.create(name="no-room")
        assert create.value.code == "disk_full"
        assert "LOCALBOX_MIN_FREE_DISK" in create.value.message
        with pytest.raises(openai.RateLimitError) as upload:
            client.files.create(file=("x.txt", b"x"), purpose="assistants")
        assert upload.value.code == "disk_full"
        r = httpx.post(f"{server.base_url}/containers/cntr_x/files", files={"file": ("x", b"x")})
        assert r.status_code == 429
        assert client.containers.list().data == []


def metric(server: LocalboxServer, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return float(next(x for x in text.splitlines() if x.startswith(f"{name} ")).split()[1])


def mem_available() -> int:
    line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if "MemAvailable" in x)
    return int(line.split()[1]) * 1024


def test_by_default_creates_are_admitted_by_free_memory_not_by_limits(tmp_path: Path) -> None:
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    env = {"LOCALBOX_MEMORY_BUDGET": "0"}
    with serving(tmp_path / "data", env) as server:
        assert metric(server, "localbox_memory_budget_bytes") == 0
        assert metric(server, "localbox_min_free_memory_bytes") == 1 << 30
        available = metric(server, "localbox_memory_available_bytes")
        assert 0 < available <= host
        assert abs(available - mem_available()) < 1 << 30
        client = server.client(max_retries=0)
        # Limits that add up to more than the host's memory: each is only a ceiling.
        made = [client.containers.create(name=f"big-{i}", memory_limit="16g") for i in range(3)]
        assert host < 3 * (16 << 30)
        assert metric(server, "localbox_memory_limit_bytes") == 3 * (16 << 30)
        # A limit beyond the host's whole memory could never be had: a 400, not a 429.
        with pytest.raises(openai.BadRequestError) as never:
            client.containers.create(name="never", memory_limit="64g")
        assert never.value.code == "memory_limit_over_host"
        assert never.value.param == "memory_limit"
        assert "whole memory" in never.value.message
        for c in made:
            client.containers.delete(c.id)


def test_a_floor_above_the_hosts_memory_refuses_every_create(tmp_path: Path) -> None:
    env = {"LOCALBOX_MIN_FREE_MEMORY": "1t", "LOCALBOX_WARM_POOL": "1"}
    with serving(tmp_path / "data", env) as server:
        client = server.client(max_retries=0)
        uploaded = client.files.create(file=("in.txt", b"data"), purpose="assistants")
        for kwargs in ({}, {"file_ids": [uploaded.id]}):
            with pytest.raises(openai.RateLimitError) as low:
                client.containers.create(name="refused", **kwargs)  # type: ignore[arg-type]
            assert low.value.code == "insufficient_memory"
            assert low.value.response.headers["retry-after"] == "1"
            message = low.value.message
            assert "LOCALBOX_MIN_FREE_MEMORY (1.0 TiB)" in message
            assert "Delete containers" in message
        # The warm pool does not start spares the host has no memory for.
        time.sleep(1.5)
        assert metric(server, "localbox_warm_pool_ready") == 0
        assert client.containers.list().data == []
        client.files.delete(uploaded.id)
