"""The Files API through the openai SDK: upload, list, retrieve, content, delete."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import openai
import pytest

from server.store import Database
from tests.conftest import LocalboxServer, _serve, serving


def test_upload_retrieve_content_delete(client: openai.OpenAI, tmp_path: Path) -> None:
    data = os.urandom(5 << 20)
    src = tmp_path / "model.bin"
    src.write_bytes(data)
    f = client.files.create(file=src, purpose="assistants")
    assert re.match(r"^file-[0-9a-f]{24}$", f.id)
    assert f.object == "file"
    assert f.bytes == len(data)
    assert f.filename == "model.bin"
    assert f.purpose == "assistants"
    assert client.files.retrieve(f.id).bytes == len(data)
    got = client.files.content(f.id).read()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    deleted = client.files.delete(f.id)
    assert deleted.deleted is True
    assert deleted.id == f.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(f.id)


def test_list_pages_and_filters_by_purpose(fresh_server: LocalboxServer) -> None:
    client = fresh_server.client(max_retries=0)
    made = [
        client.files.create(file=(f"{i}.txt", b"x"), purpose="batch" if i % 2 else "assistants")
        for i in range(12)
    ]
    ids = [f.id for f in sorted(made, key=lambda f: (f.created_at, f.id))]
    assert [f.id for f in client.files.list(limit=5, order="asc")] == ids
    assert [f.id for f in client.files.list(limit=5)] == ids[::-1]
    batch = [f.id for f in client.files.list(purpose="batch", order="asc")]
    assert batch == [
        f.id for f in sorted(made, key=lambda f: (f.created_at, f.id)) if f.purpose == "batch"
    ]
    page = client.files.list(limit=3, order="asc", after=ids[2])
    assert [f.id for f in page.data] == ids[3:6]


def test_bad_purpose_and_missing_parts(server: LocalboxServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("x.txt", b"x"), purpose="nonsense")  # type: ignore[arg-type]
    assert info.value.param == "purpose"
    r = httpx.post(f"{server.base_url}/files", files={"file": ("x.txt", b"x")})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "purpose"
    r = httpx.post(f"{server.base_url}/files", files={"purpose": (None, "assistants")})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "file"


def test_content_headers(server: LocalboxServer, client: openai.OpenAI) -> None:
    f = client.files.create(file=("chart.png", b"\x89PNG...."), purpose="vision")
    r = httpx.get(f"{server.base_url}/files/{f.id}/content")
    assert r.headers["content-type"] == "image/png"
    assert 'filename="chart.png"' in r.headers["content-disposition"]
    assert r.content == b"\x89PNG...."


MAX = 1 << 20


@pytest.fixture
def small_limit_server(tmp_path: Path) -> Iterator[LocalboxServer]:
    yield from _serve(tmp_path / "small", {"LOCALBOX_MAX_UPLOAD_BYTES": str(MAX)})


def test_uploads_over_the_limit_are_413_and_leave_nothing(
    small_limit_server: LocalboxServer, docker_client: docker.DockerClient
) -> None:
    client = small_limit_server.client(max_retries=0)
    c = client.containers.create(name="limited")
    too_big = os.urandom(MAX + 1000)
    with pytest.raises(openai.APIStatusError) as info:
        client.containers.files.create(c.id, file=("big.bin", too_big))
    assert info.value.status_code == 413
    assert "LOCALBOX_MAX_UPLOAD_BYTES" in info.value.message
    with pytest.raises(openai.APIStatusError) as info:
        client.files.create(file=("big.bin", too_big), purpose="assistants")
    assert info.value.status_code == 413
    assert list(client.containers.files.list(c.id)) == []
    assert list(client.files.list()) == []
    sandbox = docker_client.containers.get(f"localbox-{c.id}")
    assert sandbox.exec_run(["ls", "-A", "/mnt/data"]).output == b""
    blobs = [p for p in (small_limit_server.data_dir / "files").rglob("*") if p.is_file()]
    assert blobs == []
    # Exactly at the limit is fine.
    ok = client.containers.files.create(c.id, file=("ok.bin", os.urandom(MAX)))
    assert ok.bytes == MAX


def test_declared_oversize_body_is_refused_before_it_is_read(
    small_limit_server: LocalboxServer,
) -> None:
    with socket.create_connection(("127.0.0.1", small_limit_server.port), timeout=10) as s:
        s.sendall(
            b"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 10737418240\r\n\r\n--b\r\n"
        )
        reply = ""
        while "}}" not in reply and (chunk := s.recv(65536)):
            reply += chunk.decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413")
    assert "file_too_large" in reply


def test_client_disconnect_mid_upload_leaves_nothing(
    small_limit_server: LocalboxServer, docker_client: docker.DockerClient
) -> None:
    client = small_limit_server.client(max_retries=0)
    c = client.containers.create(name="disconnect")
    with socket.create_connection(("127.0.0.1", small_limit_server.port), timeout=10) as s:
        s.sendall(
            f"POST /v1/containers/{c.id}/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            "Content-Length: 500000\r\n\r\n--b\r\n"
            'Content-Disposition: form-data; name="file"; filename="half.bin"\r\n\r\n'.encode()
            + b"y" * 100_000
        )
    assert list(client.containers.files.list(c.id)) == []
    sandbox = docker_client.containers.get(f"localbox-{c.id}")
    assert sandbox.exec_run(["ls", "-A", "/mnt/data"]).output == b""
    assert httpx.get(f"{small_limit_server.url}/health").status_code == 200


def test_expires_after_sets_expires_at(server: LocalboxServer, client: openai.OpenAI) -> None:
    f = client.files.create(
        file=("e.txt", b"e"),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert f.expires_at == f.created_at + 3600
    assert client.files.retrieve(f.id).expires_at == f.expires_at
    listed = {g.id: g for g in client.files.list(purpose="assistants")}
    assert listed[f.id].expires_at == f.expires_at
    plain = client.files.create(file=("p.txt", b"p"), purpose="user_data")
    assert plain.expires_at is None
    r = httpx.get(f"{server.base_url}/files/{plain.id}")
    assert "expires_at" not in r.json()  # optional in the spec, not nullable: left out


def test_batch_files_expire_after_thirty_days_by_default(client: openai.OpenAI) -> None:
    f = client.files.create(file=("b.jsonl", b"{}\n"), purpose="batch")
    assert f.expires_at == f.created_at + 2_592_000
    g = client.files.create(
        file=("b.jsonl", b"{}\n"),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 86400},
    )
    assert g.expires_at == g.created_at + 86400


@pytest.mark.parametrize(
    ("expires_after", "param"),
    [
        ({"anchor": "last_active_at", "seconds": 3600}, "expires_after.anchor"),
        ({"seconds": 3600}, "expires_after.anchor"),
        ({"anchor": "created_at"}, "expires_after.seconds"),
        ({"anchor": "created_at", "seconds": 3599}, "expires_after.seconds"),
        ({"anchor": "created_at", "seconds": 2_592_001}, "expires_after.seconds"),
        ({"anchor": "created_at", "seconds": "soon"}, "expires_after.seconds"),
    ],
)
def test_bad_expires_after_is_400_with_param(
    client: openai.OpenAI, expires_after: dict[str, object], param: str
) -> None:
    before = {f.id for f in client.files.list()}
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(
            file=("x.txt", b"x"),
            purpose="assistants",
            expires_after=expires_after,  # type: ignore[arg-type]
        )
    assert info.value.param == param
    assert {f.id for f in client.files.list()} == before


def test_the_sweep_removes_an_expired_file_for_real(tmp_path: Path) -> None:
    """A real server sweeping every second: a file whose expires_at has passed is 404 at once,
    and the sweep then removes its record and its bytes."""
    with serving(tmp_path / "data", {"LOCALBOX_EXPIRY_SWEEP_SECONDS": "1"}) as server:
        client = server.client(max_retries=0)
        f = client.files.create(
            file=("soon.txt", b"soon"),
            purpose="assistants",
            expires_after={"anchor": "created_at", "seconds": 3600},
        )
        kept = client.files.create(file=("kept.txt", b"kept"), purpose="assistants")
        blob = server.data_dir / "files" / f.id
        assert blob.exists()
        db = Database(server.database_url)
        # The shortest expiry allowed is an hour: move the deadline into the past instead.
        db.execute("UPDATE files SET expires_at = expires_at - 7200 WHERE id = :id", id=f.id)
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(f.id)
        with pytest.raises(openai.NotFoundError):
            client.files.content(f.id)
        with pytest.raises(openai.NotFoundError) as info:
            client.containers.create(name="late", file_ids=[f.id])
        assert info.value.param == "file_ids"
        assert f.id not in {g.id for g in client.files.list()}

        deadline = time.monotonic() + 15
        while True:
            rows = db.execute("SELECT count(*) FROM files WHERE id = :id", id=f.id)
            if rows[0][0] == 0 and not blob.exists():
                break
            assert time.monotonic() < deadline, "the sweep did not remove the expired file"
            time.sleep(0.1)
        db.close()
        assert client.files.retrieve(kept.id).id == kept.id
        assert (server.data_dir / "files" / kept.id).exists()
        metrics = httpx.get(f"{server.url}/metrics").text
        assert "localbox_files_expired_total 1.0" in metrics
