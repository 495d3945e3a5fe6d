"""GET /health reports the database and Docker; requests answer 503 while Docker is away."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import SANDBOX_RUNTIME, LocalboxServer, _serve


def test_health_ok(server: LocalboxServer) -> None:
    r = httpx.get(f"{server.url}/health")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",
        "checks": {"database": "ok", "docker": "ok"},
        "sandbox_runtime": SANDBOX_RUNTIME,
    }


@pytest.fixture
def dockerless_server(tmp_path: Path) -> Iterator[LocalboxServer]:
    yield from _serve(tmp_path, {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})


def test_health_names_docker_when_it_is_down(dockerless_server: LocalboxServer) -> None:
    r = httpx.get(f"{dockerless_server.url}/health")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["docker"] == "down"  # no exception text for unauthenticated callers
    assert "sock" not in r.text
    assert "health: docker is down" in dockerless_server.log_text()  # the reason is logged

    client = dockerless_server.client(max_retries=0)
    with pytest.raises(openai.InternalServerError) as info:
        client.containers.create(name="no-engine")
    assert info.value.status_code == 503
    assert "Docker" in info.value.message
    assert client.containers.list().data == []
