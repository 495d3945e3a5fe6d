"""The Docker engine out of reach (without stopping the engine other tests share): the data
dir's server is started again with DOCKER_HOST on a socket that does not exist. Every route
answers 503 with Retry-After (the SDKs retry those) or succeeds, never a 500; once the
engine is back, everything works, and what was deleted meanwhile is gone from Docker too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import openai
import pytest

from tests.api.test_skills import folder
from tests.chaos.conftest import docker_objects
from tests.conftest import LocalboxServer, serving
from tests.responses.helpers import MODEL, python
from tests.responses.scripted_upstream import ScriptedUpstream, Turn

BIG = 9 << 20  # above the size that is written into the sandbox while it arrives


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as scripted:
        yield scripted


def check(response: httpx.Response, what: str, answers: dict[str, int]) -> None:
    """2xx, or 503 with Retry-After; never anything else."""
    answers[what] = response.status_code
    if response.status_code == 503:
        assert response.headers.get("retry-after"), what
        return
    assert response.is_success, f"{what}: {response.status_code} {response.text[:300]}"


def test_every_route_during_an_engine_outage(
    tmp_path: Path, docker_client: docker.DockerClient, upstream: ScriptedUpstream
) -> None:
    env = {"LOCALBOX_MODEL_BASE_URL": upstream.base_url, "LOCALBOX_RECONCILE_SECONDS": "3600"}
    with serving(tmp_path / "data", env) as server:
        client = server.client(max_retries=0)
        c = client.containers.create(name="through-the-outage")
        doomed = client.containers.create(name="deleted-during-the-outage")
        cf = client.containers.files.create(c.id, file=("kept.txt", b"kept"))
        f = client.files.create(file=("in.txt", b"in"), purpose="assistants")
        skill = client.skills.create(files=folder())

        server.stop()
        server.env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine.sock"
        server.start()
        answers = down(server, c.id, cf.id, f.id, skill.id, doomed.id, upstream)
        assert answers["GET /health"] == 503
        for route in ("GET /v1/containers/{id}", "GET /v1/files", "DELETE /v1/containers/{id}"):
            assert answers[route] == 200, route
        for route in ("POST /v1/containers", "GET /v1/containers/{id}/files"):
            assert answers[route] == 503, route
        # The SDK retries the 503s, then gives up with them.
        sdk = server.client(max_retries=1)
        with pytest.raises(openai.InternalServerError) as info:
            sdk.containers.files.list(c.id)
        assert info.value.status_code == 503

        server.stop()
        del server.env["DOCKER_HOST"]
        server.start()
        client = server.client(max_retries=0)
        assert [x.path for x in client.containers.files.list(c.id)] == ["/mnt/data/kept.txt"]
        content = client.containers.files.content.retrieve(cf.id, container_id=c.id).read()
        assert content == b"kept"
        with pytest.raises(openai.NotFoundError):
            client.containers.retrieve(doomed.id)
        assert docker_objects(docker_client, doomed.id) == []


def down(
    server: LocalboxServer,
    cid: str,
    cfid: str,
    fid: str,
    skill_id: str,
    doomed: str,
    upstream: ScriptedUpstream,
) -> dict[str, int]:
    """Every route, while the engine is out of reach; returns the status of each."""
    answers: dict[str, int] = {}
    base = server.base_url
    with httpx.Client(timeout=60) as http:

        def call(what: str, method: str, url: str, **kwargs: object) -> None:
            check(http.request(method, base + url, **kwargs), what, answers)  # type: ignore[arg-type]

        check(http.get(f"{server.url}/health"), "GET /health", answers)
        check(http.get(f"{server.url}/metrics"), "GET /metrics", answers)
        call("POST /v1/containers", "POST", "/containers", json={"name": "new"})
        call(
            "POST /v1/containers (file_ids, skills)",
            "POST",
            "/containers",
            json={
                "name": "new",
                "file_ids": [fid],
                "skills": [{"type": "skill_reference", "skill_id": skill_id}],
            },
        )
        call("GET /v1/containers", "GET", "/containers")
        call("GET /v1/containers/{id}", "GET", f"/containers/{cid}")
        files = f"/containers/{cid}/files"
        call("POST …/files (multipart)", "POST", files, files={"file": ("a.txt", b"a")})
        call("POST …/files (streamed)", "POST", files, files={"file": ("b.bin", bytes(BIG))})
        call("POST …/files (file_id)", "POST", files, json={"file_id": fid})
        call("POST …/files (form file_id)", "POST", files, files={"file_id": (None, fid)})
        call("GET /v1/containers/{id}/files", "GET", files)
        call("GET …/files/{file_id}", "GET", f"{files}/{cfid}")
        call("GET …/files/{file_id}/content", "GET", f"{files}/{cfid}/content")
        call("DELETE …/files/{file_id}", "DELETE", f"{files}/{cfid}")
        call("POST …/exec", "POST", f"/containers/{cid}/exec", json={"code": "1"})
        call(
            "POST …/exec (stream)",
            "POST",
            f"/containers/{cid}/exec",
            json={"code": "1", "stream": True},
        )
        upstream.script(Turn(tool_calls=(python("print(1)"),)), Turn(text="done"))
        call(
            "POST /v1/responses (code_interpreter)",
            "POST",
            "/responses",
            json={
                "model": MODEL,
                "input": "run it",
                "tools": [{"type": "code_interpreter", "container": cid}],
            },
        )
        call("GET /v1/files", "GET", "/files")
        call("GET /v1/files/{id}/content", "GET", f"/files/{fid}/content")
        call("GET /v1/skills", "GET", "/skills")
        call("DELETE /v1/containers/{id}", "DELETE", f"/containers/{doomed}")
    return answers


def test_a_sandbox_the_engine_has_not_started_again(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    """After an engine restart, until the engine (or the reconcile) starts a sandbox again,
    file operations on it answer 503 and it is started: the SDK's retry then succeeds."""
    with serving(tmp_path / "data", {"LOCALBOX_RECONCILE_SECONDS": "3600"}) as server:
        client = server.client(max_retries=0)
        c = client.containers.create(name="stopped")
        client.containers.files.create(c.id, file=("kept.txt", b"kept"))
        docker_client.containers.get(f"localbox-{c.id}").stop(timeout=1)

        answers: dict[str, int] = {}
        check(httpx.get(f"{server.base_url}/containers/{c.id}/files"), "list", answers)
        assert answers["list"] == 503
        retrying = server.client(max_retries=3)
        assert [f.path for f in retrying.containers.files.list(c.id)] == ["/mnt/data/kept.txt"]
        assert docker_client.containers.get(f"localbox-{c.id}").status == "running"
