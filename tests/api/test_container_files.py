"""Container files through the openai SDK: uploads in three shapes, round trips, names, paging."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import openai
import pytest

from tests.conftest import LocalboxServer


@pytest.fixture
def container_id(client: openai.OpenAI) -> Iterator[str]:
    c = client.containers.create(name="files")
    yield c.id
    with contextlib.suppress(openai.NotFoundError):
        client.containers.delete(c.id)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sandbox_exec(docker_client: docker.DockerClient, container_id: str, cmd: str) -> bytes:
    sandbox = docker_client.containers.get(f"localbox-{container_id}")
    # As root: the agent kills every uid-1000 process that runs between calls, so a
    # `docker exec` as the sandbox user would not live long. Root stands in for code here.
    code, out = sandbox.exec_run(["sh", "-c", cmd], user="0")
    assert code == 0, out
    assert isinstance(out, bytes)
    return out


@pytest.mark.parametrize("size", [0, 1, 5 << 20, 50 << 20])
def test_round_trip_is_byte_exact(
    client: openai.OpenAI,
    container_id: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    size: int,
) -> None:
    data = os.urandom(size)
    src = tmp_path / f"blob-{size}.bin"
    src.write_bytes(data)
    created = client.containers.files.create(container_id, file=src)
    assert created.bytes == size
    assert created.path == f"/mnt/data/blob-{size}.bin"
    assert created.source == "user"
    assert created.object == "container.file"
    assert created.container_id == container_id

    got = client.containers.files.content.retrieve(created.id, container_id=container_id)
    assert sha(got.read()) == sha(data)
    out = tmp_path / "out.bin"
    got.write_to_file(out)
    assert sha(out.read_bytes()) == sha(data)
    # The bytes really are in the sandbox, where code can open them by name.
    inside = sandbox_exec(docker_client, container_id, f"sha256sum blob-{size}.bin")
    assert inside.split()[0].decode() == sha(data)


def test_three_upload_shapes(
    server: LocalboxServer, client: openai.OpenAI, container_id: str
) -> None:
    f = client.files.create(file=("notes.txt", b"from the files api"), purpose="assistants")
    # 1. multipart `file`
    a = client.containers.files.create(container_id, file=("a.txt", b"multipart"))
    # 2. JSON {"file_id"}
    b = client.containers.files.create(container_id, file_id=f.id)
    assert b.path == "/mnt/data/notes.txt"
    assert b.bytes == len(b"from the files api")
    # 3. multipart form field `file_id` (older SDKs)
    r = httpx.post(
        f"{server.base_url}/containers/{container_id}/files",
        files={"file_id": (None, f.id)},
    )
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["path"] == "/mnt/data/notes.txt"
    assert c["source"] == "user"
    # Same name again: the newer object replaces the earlier one.
    with pytest.raises(openai.NotFoundError):
        client.containers.files.retrieve(b.id, container_id=container_id)
    content = client.containers.files.content.retrieve(c["id"], container_id=container_id)
    assert content.read() == b"from the files api"
    names = sorted(x.path for x in client.containers.files.list(container_id))
    assert names == ["/mnt/data/a.txt", "/mnt/data/notes.txt"]
    assert a.source == "user"


def test_bare_stream_is_named_upload(client: openai.OpenAI, container_id: str) -> None:
    created = client.containers.files.create(container_id, file=io.BytesIO(b"raw"))
    assert created.path == "/mnt/data/upload"


def test_replacing_a_name_replaces_the_bytes(client: openai.OpenAI, container_id: str) -> None:
    first = client.containers.files.create(container_id, file=("same.txt", b"one"))
    second = client.containers.files.create(container_id, file=("same.txt", b"second"))
    assert second.id != first.id
    with pytest.raises(openai.NotFoundError):
        client.containers.files.retrieve(first.id, container_id=container_id)
    with pytest.raises(openai.NotFoundError):
        client.containers.files.content.retrieve(first.id, container_id=container_id)
    got = client.containers.files.content.retrieve(second.id, container_id=container_id)
    assert got.read() == b"second"
    assert [f.id for f in client.containers.files.list(container_id)] == [second.id]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("données été.csv", "données été.csv"),
        ("数据.txt", "数据.txt"),
        ("emoji 🚀.md", "emoji 🚀.md"),
        ("  padded.txt  ", "padded.txt"),
        (".hidden", ".hidden"),
    ],
)
def test_names_are_cleaned_to_a_safe_basename(
    client: openai.OpenAI,
    container_id: str,
    docker_client: docker.DockerClient,
    given: str,
    stored: str,
) -> None:
    created = client.containers.files.create(container_id, file=(given, b"x"))
    assert created.path == f"/mnt/data/{stored}"
    listing = sandbox_exec(docker_client, container_id, "ls -A /mnt/data").decode()
    assert listing.splitlines() == [stored]
    assert client.containers.files.retrieve(created.id, container_id=container_id).path == (
        f"/mnt/data/{stored}"
    )
    got = client.containers.files.content.retrieve(created.id, container_id=container_id)
    assert got.read() == b"x"


@pytest.mark.parametrize(
    ("given", "why"),
    [("..", "only dots"), ("...", "only dots"), ("dir/", "empty"), ("a" * 256, "255 bytes")],
)
def test_names_that_cannot_be_made_safe_are_refused(
    client: openai.OpenAI, container_id: str, given: str, why: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.containers.files.create(container_id, file=(given, b"x"))
    assert why in info.value.message
    assert info.value.param == "file"
    assert list(client.containers.files.list(container_id)) == []


def test_nul_in_a_name_is_refused(server: LocalboxServer, container_id: str) -> None:
    boundary = "localboxboundary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="evil\0.txt"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
        "x\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    r = httpx.post(
        f"{server.base_url}/containers/{container_id}/files",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 400
    assert "NUL" in r.json()["error"]["message"]


def test_download_headers(server: LocalboxServer, client: openai.OpenAI, container_id: str) -> None:
    created = client.containers.files.create(container_id, file=("résumé.csv", b"a,b\n"))
    r = httpx.get(
        f"{server.base_url}/containers/{container_id}/files/{created.id}/content",
        headers={"accept": "application/binary"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.csv" in r.headers["content-disposition"]
    assert r.headers["content-length"] == "4"
    assert r.content == b"a,b\n"


def test_files_written_in_the_sandbox_appear_and_disappear(
    client: openai.OpenAI, container_id: str, docker_client: docker.DockerClient
) -> None:
    sandbox_exec(
        docker_client,
        container_id,
        "mkdir -p out/deep && head -c 1234 /dev/zero > out/deep/result.bin && echo hi > top.txt",
    )
    files = {f.path: f for f in client.containers.files.list(container_id)}
    assert set(files) == {"/mnt/data/out/deep/result.bin", "/mnt/data/top.txt"}
    result = files["/mnt/data/out/deep/result.bin"]
    assert result.source == "assistant"
    assert result.bytes == 1234
    assert isinstance(result.bytes, int)
    assert files["/mnt/data/top.txt"].bytes == 3
    got = client.containers.files.content.retrieve(result.id, container_id=container_id)
    assert got.read() == b"\0" * 1234

    # Changed in place: the size follows; the id stays.
    sandbox_exec(docker_client, container_id, "head -c 99 /dev/zero > out/deep/result.bin")
    again = client.containers.files.retrieve(result.id, container_id=container_id)
    assert again.bytes == 99

    sandbox_exec(docker_client, container_id, "rm out/deep/result.bin")
    paths = [f.path for f in client.containers.files.list(container_id)]
    assert paths == ["/mnt/data/top.txt"]
    with pytest.raises(openai.NotFoundError):
        client.containers.files.retrieve(result.id, container_id=container_id)


def test_delete_removes_the_bytes_from_the_sandbox(
    client: openai.OpenAI, container_id: str, docker_client: docker.DockerClient
) -> None:
    created = client.containers.files.create(container_id, file=("gone.txt", b"bye"))
    assert client.containers.files.delete(created.id, container_id=container_id) is None
    assert sandbox_exec(docker_client, container_id, "ls -A /mnt/data") == b""
    with pytest.raises(openai.NotFoundError):
        client.containers.files.retrieve(created.id, container_id=container_id)
    with pytest.raises(openai.NotFoundError):
        client.containers.files.delete(created.id, container_id=container_id)
    with pytest.raises(openai.NotFoundError):
        client.containers.files.content.retrieve(created.id, container_id=container_id)


def test_delete_body_shape(
    server: LocalboxServer, client: openai.OpenAI, container_id: str
) -> None:
    created = client.containers.files.create(container_id, file=("d.txt", b"d"))
    r = httpx.delete(f"{server.base_url}/containers/{container_id}/files/{created.id}")
    assert r.json() == {"id": created.id, "object": "container.file.deleted", "deleted": True}


def test_paging_through_45_files(client: openai.OpenAI, container_id: str) -> None:
    ids = [
        client.containers.files.create(container_id, file=(f"f{i:02}.txt", b"x" * i)).id
        for i in range(45)
    ]
    asc = list(client.containers.files.list(container_id, order="asc", limit=10))
    by_key = sorted(asc, key=lambda f: (f.created_at, f.id))
    assert [f.id for f in asc] == [f.id for f in by_key]
    assert sorted(f.id for f in asc) == sorted(ids)
    desc = list(client.containers.files.list(container_id, limit=7))
    assert [f.id for f in desc] == [f.id for f in asc][::-1]
    page = client.containers.files.list(container_id, order="asc", limit=20)
    assert page.has_more is True
    nxt = client.containers.files.list(container_id, order="asc", limit=20, after=asc[19].id)
    assert [f.id for f in nxt.data] == [f.id for f in asc[20:40]]
    sizes = {f.path: f.bytes for f in asc}
    assert sizes["/mnt/data/f44.txt"] == 44


def test_unknown_and_foreign_files_are_404(client: openai.OpenAI, container_id: str) -> None:
    other = client.containers.create(name="other")
    try:
        theirs = client.containers.files.create(other.id, file=("t.txt", b"t"))
        with pytest.raises(openai.NotFoundError):
            client.containers.files.retrieve(theirs.id, container_id=container_id)
        with pytest.raises(openai.NotFoundError):
            client.containers.files.content.retrieve(theirs.id, container_id=container_id)
        with pytest.raises(openai.NotFoundError):
            client.containers.files.delete(theirs.id, container_id=container_id)
        with pytest.raises(openai.NotFoundError):
            client.containers.files.retrieve("cfile_nope", container_id=container_id)
        with pytest.raises(openai.NotFoundError):
            client.containers.files.list("cntr_nope")
        with pytest.raises(openai.NotFoundError):
            client.containers.files.create("cntr_nope", file=("x.txt", b"x"))
    finally:
        client.containers.delete(other.id)


def test_deleted_file_id_is_404_with_param(client: openai.OpenAI, container_id: str) -> None:
    f = client.files.create(file=("x.txt", b"x"), purpose="assistants")
    client.files.delete(f.id)
    with pytest.raises(openai.NotFoundError) as info:
        client.containers.files.create(container_id, file_id=f.id)
    assert info.value.param == "file_id"
    with pytest.raises(openai.NotFoundError) as info:
        client.containers.create(name="with-gone-file", file_ids=[f.id])
    assert info.value.param == "file_ids"
    assert client.containers.list(name="with-gone-file").data == []


def test_file_ids_at_creation(client: openai.OpenAI, docker_client: docker.DockerClient) -> None:
    a = client.files.create(file=("a.csv", b"1,2\n"), purpose="user_data")
    b = client.files.create(file=("b.bin", os.urandom(100_000)), purpose="assistants")
    c = client.containers.create(name="seeded", file_ids=[a.id, b.id])
    try:
        files = {f.path: f for f in client.containers.files.list(c.id)}
        assert set(files) == {"/mnt/data/a.csv", "/mnt/data/b.bin"}
        assert all(f.source == "user" for f in files.values())
        assert files["/mnt/data/b.bin"].bytes == 100_000
        assert sandbox_exec(docker_client, c.id, "cat a.csv") == b"1,2\n"
    finally:
        client.containers.delete(c.id)
    # Deleting the container leaves the Files-API files alone.
    assert client.files.retrieve(a.id).id == a.id
    assert client.files.content(b.id).read() == client.files.content(b.id).read()


def test_file_operations_refresh_last_active_at(client: openai.OpenAI, container_id: str) -> None:
    start = client.containers.list(limit=100)
    before = next(c.last_active_at for c in start if c.id == container_id)
    time.sleep(1.1)
    client.containers.files.list(container_id)
    after = next(
        c.last_active_at for c in client.containers.list(limit=100) if c.id == container_id
    )
    assert after > before


def test_many_files_changed_behind_our_back_keep_their_records_in_line(
    client: openai.OpenAI, container_id: str, docker_client: docker.DockerClient
) -> None:
    def listed() -> dict[str, tuple[str, int]]:
        files = client.containers.files.list(container_id, limit=100)
        return {f.path: (f.id, f.bytes) for f in files}

    sandbox_exec(
        docker_client,
        container_id,
        "mkdir -p many && for i in $(seq 1 1200); do printf %s $i > many/f$i.txt; done",
    )
    first = listed()
    assert len(first) == 1200
    assert first["/mnt/data/many/f1200.txt"][1] == 4
    assert listed() == first  # nothing changed: the same records

    # 300 removed, 300 grown, 300 created; the other 600 untouched.
    sandbox_exec(
        docker_client,
        container_id,
        "cd many && for i in $(seq 1 300); do rm f$i.txt; done"
        " && for i in $(seq 301 600); do printf 0123456789 >> f$i.txt; done"
        " && for i in $(seq 1201 1500); do printf x > f$i.txt; done",
    )
    second = listed()
    assert len(second) == 1200
    for i in range(1, 301):
        assert f"/mnt/data/many/f{i}.txt" not in second
    for i in range(301, 1201):
        path = f"/mnt/data/many/f{i}.txt"
        assert second[path][0] == first[path][0]  # the same record
        assert second[path][1] == len(str(i)) + (10 if i <= 600 else 0)
    for i in range(1201, 1501):
        path = f"/mnt/data/many/f{i}.txt"
        assert second[path][1] == 1
        assert second[path][0] not in {file_id for file_id, _ in first.values()}

    # Deleting through the API right after an unchanged listing is seen by the next one.
    victim = second["/mnt/data/many/f1500.txt"][0]
    client.containers.files.delete(victim, container_id=container_id)
    assert "/mnt/data/many/f1500.txt" not in listed()
    uploaded = client.containers.files.create(container_id, file=("late.txt", b"late"))
    assert listed()["/mnt/data/late.txt"] == (uploaded.id, 4)


BIG = 9 << 20  # past the size from which uploads are written while they arrive


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str, ending: bytes) -> bytes:
    """A multipart body built by hand: (name, filename or None, bytes) parts, then the
    closing boundary followed by ending."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        out += f"--{boundary}\r\ncontent-disposition: {disposition}\r\n\r\n".encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--".encode() + ending


@pytest.mark.parametrize(
    ("after", "ending"),
    [
        ([], b"\r\n"),  # what clients send: the size announced up front is exact
        ([], b""),  # no line break after the closing boundary: two bytes more
        ([], b"\r\nan epilogue\r\n"),  # an epilogue: fewer bytes than announced
        ([("purpose", None, b"x" * 5000)], b"\r\n"),  # a field after the file part
        ([("other", "o.bin", os.urandom(3 << 20))], b"\r\n"),  # another file after it
    ],
    ids=["exact", "no-final-crlf", "epilogue", "field-after", "file-after"],
)
def test_large_uploads_written_while_they_arrive_are_byte_exact(
    server: LocalboxServer,
    client: openai.OpenAI,
    container_id: str,
    after: list[tuple[str, str | None, bytes]],
    ending: bytes,
) -> None:
    data = os.urandom(BIG) + b"\r\n--almost-a-boundary\r\n" + os.urandom(1000)
    boundary = "b0undary7f3a"
    body = multipart([("file", "big ü.bin", data), *after], boundary, ending)
    r = httpx.post(
        f"{server.base_url}/containers/{container_id}/files",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert r.json()["bytes"] == len(data)
    assert r.json()["path"] == "/mnt/data/big ü.bin"
    got = client.containers.files.content.retrieve(r.json()["id"], container_id=container_id)
    assert sha(got.read()) == sha(data)
    listed = {f.path: f.bytes for f in client.containers.files.list(container_id)}
    assert listed == {"/mnt/data/big ü.bin": len(data)}


def test_a_large_body_with_only_a_file_id_copies_that_file(
    server: LocalboxServer, client: openai.OpenAI, container_id: str
) -> None:
    uploaded = client.files.create(file=("ref.txt", b"by reference"), purpose="user_data")
    boundary = "xyz123"
    body = multipart(
        [("other", "ignored.bin", os.urandom(BIG)), ("file_id", None, uploaded.id.encode())],
        boundary,
        b"\r\n",
    )
    r = httpx.post(
        f"{server.base_url}/containers/{container_id}/files",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "/mnt/data/ref.txt"
    assert [f.path for f in client.containers.files.list(container_id)] == ["/mnt/data/ref.txt"]


def test_a_large_upload_cut_short_leaves_no_file(
    server: LocalboxServer, client: openai.OpenAI, container_id: str
) -> None:
    boundary = "cutcut"
    body = multipart([("file", "cut.bin", os.urandom(BIG))], boundary, b"\r\n")
    host, port = "127.0.0.1", server.port
    with socket.create_connection((host, port)) as sock:
        head = (
            f"POST /v1/containers/{container_id}/files HTTP/1.1\r\nhost: {host}\r\n"
            f"authorization: Bearer {server.api_key}\r\n"
            f"content-type: multipart/form-data; boundary={boundary}\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body[: len(body) // 2])
        time.sleep(0.5)
    for _ in range(100):  # the server notices the disconnect, then removes the partial file
        if not list(client.containers.files.list(container_id)):
            break
        time.sleep(0.1)
    assert list(client.containers.files.list(container_id)) == []
    # The container still takes uploads.
    created = client.containers.files.create(container_id, file=("after.txt", b"fine"))
    assert created.bytes == 4


def test_malformed_large_bodies_are_400_and_leave_no_file(
    server: LocalboxServer, client: openai.OpenAI, container_id: str
) -> None:
    boundary = "brokenb"
    data = os.urandom(BIG)
    cases = {
        "no closing boundary": f"--{boundary}\r\ncontent-disposition: form-data; "
        f'name="file"; filename="x.bin"\r\n\r\n'.encode()
        + data,
        "file is a plain field": multipart([("file", None, data)], boundary, b"\r\n"),
        "no file, no file_id": multipart([("other", "o.bin", data)], boundary, b"\r\n"),
    }
    for case, body in cases.items():
        r = httpx.post(
            f"{server.base_url}/containers/{container_id}/files",
            content=body,
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            timeout=120,
        )
        assert r.status_code == 400, (case, r.text)
        assert r.json()["error"]["type"] == "invalid_request_error", case
    assert list(client.containers.files.list(container_id)) == []
