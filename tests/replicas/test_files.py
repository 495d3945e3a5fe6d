"""Uploads to one container through every replica at once: no 5xx, every name listed once,
every listed file holding the bytes of the upload that made it."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tests.replicas.cluster import REPLICA_HEADER, Cluster

SAME = "same.txt"


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


@dataclass(frozen=True)
class Answer:
    upload: Upload
    status: int
    body: str
    file_id: str
    replica: str


def _uploads() -> list[Upload]:
    """24 distinct names (most small, two large enough to be streamed into the sandbox as they
    arrive) and the same name six times with different bytes."""
    uploads = []
    for i in range(24):
        size = (9 << 20) + i if i in (5, 17) else 1000 + 997 * i
        uploads.append(Upload(f"file-{i:02d}.bin", os.urandom(size)))
    uploads += [Upload(SAME, f"version {i}\n".encode() * (i + 1)) for i in range(6)]
    # Interleaved, so that the same name arrives on different replicas amid the others.
    return [uploads[i] for i in sorted(range(len(uploads)), key=lambda i: (i * 7) % 30)]


def test_concurrent_uploads_through_every_replica(cluster: Cluster, made: list[str]) -> None:
    client = cluster.client(max_retries=0, timeout=120)
    c = client.containers.create(name="uploads")
    made.append(c.id)
    uploads = _uploads()

    def send(upload: Upload) -> Answer:
        with cluster.http(timeout=120) as http:
            r = http.post(f"containers/{c.id}/files", files={"file": (upload.name, upload.data)})
        file_id = r.json().get("id", "") if r.status_code == 200 else ""
        return Answer(
            upload, r.status_code, r.text[:300], file_id, r.headers.get(REPLICA_HEADER, "")
        )

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(send, uploads))

    failed = [(a.upload.name, a.status, a.replica, a.body) for a in answers if a.status != 200]
    assert not failed, failed
    served_by = {a.replica for a in answers}
    assert served_by == {cluster.name(i) for i in range(len(cluster.replicas))}, served_by

    listed = list(client.containers.files.list(c.id, limit=100))
    paths = sorted(f.path for f in listed)
    expected = sorted({f"/mnt/data/{u.name}" for u in uploads})
    assert paths == expected, "each name listed exactly once"
    by_id = {a.file_id: a.upload for a in answers}
    for f in listed:
        name = f.path.removeprefix("/mnt/data/")
        upload = by_id.get(f.id)
        assert upload is not None, f"{f.path} is listed as {f.id}, which no upload answered"
        assert upload.name == name
        assert f.bytes == len(upload.data), f.path
        got = client.containers.files.content.retrieve(f.id, container_id=c.id).read()
        assert got == upload.data, f"{f.path} does not hold the bytes of its upload"
    # The same name: the file listed is one of its uploads, and the others are gone.
    same = [a.file_id for a in answers if a.upload.name == SAME]
    kept = [f.id for f in listed if f.path == f"/mnt/data/{SAME}"]
    assert len(kept) == 1
    assert kept[0] in same
    with cluster.http() as http:
        for file_id in same:
            if file_id != kept[0]:
                r = http.get(f"containers/{c.id}/files/{file_id}")
                assert r.status_code == 404, (file_id, r.status_code, r.text)
