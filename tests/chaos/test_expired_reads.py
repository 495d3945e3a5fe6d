"""A container past its deadline before the sweep has run reads as expired and is never
revived: reads answer "expired", operations that need it running answer the documented 400,
and its last_active_at and deadline stay where they were. Time is moved by moving the
container's timestamps back in the database (the server has no clock to turn from outside)."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import openai
import pytest

from tests.chaos.conftest import db_execute
from tests.conftest import LocalboxServer, serving

ENV = {"LOCALBOX_EXPIRY_SWEEP_SECONDS": "3600", "LOCALBOX_RECONCILE_SECONDS": "3600"}


def timestamps(server: LocalboxServer, container_id: str) -> tuple[object, ...]:
    return db_execute(
        server,
        "SELECT status, last_active_at, expires_at FROM containers WHERE id = :id",
        id=container_id,
    )[0]


def age(server: LocalboxServer, container_id: str, seconds: int) -> None:
    db_execute(
        server,
        "UPDATE containers SET last_active_at = last_active_at - :s, expires_at = expires_at - :s "
        "WHERE id = :id",
        s=seconds,
        id=container_id,
    )


def assert_expired_and_not_revived(server: LocalboxServer, container_id: str) -> None:
    client = server.client(max_retries=0)
    before = timestamps(server, container_id)
    listed = {c.id: c.status for c in client.containers.list(limit=100)}
    assert listed[container_id] == "expired"
    got = client.containers.retrieve(container_id)
    assert got.status == "expired"
    assert got.last_active_at == before[1]
    for call in (
        lambda: client.containers.files.list(container_id),
        lambda: client.containers.files.create(container_id, file=("x.txt", b"x")),
    ):
        with pytest.raises(openai.BadRequestError) as info:
            call()
        assert isinstance(info.value.body, dict)
        assert info.value.body["message"] == "Container is expired."
    r = httpx.post(f"{server.base_url}/containers/{container_id}/exec", json={"code": "1"})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Container is expired."
    assert client.containers.retrieve(container_id).status == "expired"
    assert timestamps(server, container_id)[1:] == before[1:]


def test_past_its_deadline_before_the_sweep(tmp_path: Path) -> None:
    with serving(tmp_path / "data", ENV) as server:
        client = server.client(max_retries=0)
        c = client.containers.create(
            name="one-minute", expires_after={"anchor": "last_active_at", "minutes": 1}
        )
        client.containers.files.create(c.id, file=("f.txt", b"f"))
        fresh = client.containers.create(name="fresh")

        # Two minutes pass for c while the server runs; its sweep is an hour away.
        age(server, c.id, 120)
        assert timestamps(server, c.id)[0] == "running"  # not swept
        assert_expired_and_not_revived(server, c.id)
        assert client.containers.retrieve(fresh.id).status == "running"

        # After a restart, before or after the first sweep: expired all the same.
        server.stop(signal.SIGKILL)
        server.start()
        assert_expired_and_not_revived(server, c.id)

        client = server.client(max_retries=0)
        client.containers.delete(c.id)
        with pytest.raises(openai.NotFoundError):
            client.containers.retrieve(c.id)


def test_past_its_deadline_while_the_server_was_down(tmp_path: Path) -> None:
    """The case the chaos run saw: the server is down while the deadline passes, and the
    first reads after the start come before the first sweep has done its work."""
    with serving(tmp_path / "data", ENV) as server:
        client = server.client(max_retries=0)
        c = client.containers.create(
            name="one-minute", expires_after={"anchor": "last_active_at", "minutes": 1}
        )
        server.stop()
        age(server, c.id, 3600)
        server.start()
        assert_expired_and_not_revived(server, c.id)
