"""A server whose sandboxes are attacked, with a bystander container that must keep working."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.test_exec import run
from tests.conftest import LocalboxServer, _serve

MAX_OUTPUT = 64 * 1024
DISK = 20 << 20


@pytest.fixture(scope="module")
def abuse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalboxServer]:
    yield from _serve(
        tmp_path_factory.mktemp("localbox-abuse"),
        {
            "LOCALBOX_EXEC_MAX_OUTPUT_BYTES": str(MAX_OUTPUT),
            "LOCALBOX_SANDBOX_DISK_BYTES": str(DISK),
        },
    )


@pytest.fixture(scope="module")
def bystander(abuse_server: LocalboxServer) -> str:
    """Another container that must keep working whatever its neighbour does."""
    cid = abuse_server.client().containers.create(name="bystander").id
    assert run(abuse_server, cid, "neighbour_state = 7")["status"] == "completed"
    return cid


@pytest.fixture
def victim(abuse_server: LocalboxServer) -> Iterator[str]:
    client = abuse_server.client()
    cid = client.containers.create(name="victim").id
    yield cid
    client.containers.delete(cid)


def bystander_fine(server: LocalboxServer, bystander: str) -> None:
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    assert run(server, bystander, "print(neighbour_state)")["stdout"] == "7\n"
