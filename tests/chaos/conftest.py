"""Servers for the chaos tests: their data where the test says (a small disk, say), their log
beside it, and everything they made in Docker removed at the end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker

from server.store import Database
from tests.conftest import LocalboxServer, remove_sandboxes


@contextmanager
def serving_on(data_dir: Path, log_dir: Path, env: dict[str, str]) -> Iterator[LocalboxServer]:
    """A server whose data lives in data_dir and whose log is log_dir/server.log (so a full
    data disk does not swallow it); stopped, and its Docker objects removed, at the end."""
    server = LocalboxServer(data_dir=log_dir, env={**env, "LOCALBOX_DATA_DIR": str(data_dir)})
    server.start()
    try:
        yield server
    finally:
        server.close()
        id_file = data_dir / "instance-id"
        if id_file.exists():
            remove_sandboxes(id_file.read_text().strip())


def db_execute(server: LocalboxServer, sql: str, **params: object) -> list[tuple[object, ...]]:
    """Run one statement (with :named parameters) on a server's database, from outside it."""
    db = Database(server.database_url)
    try:
        return db.execute(sql, **params)
    finally:
        db.close()


def docker_objects(client: docker.DockerClient, container_id: str) -> list[str]:
    """Every Docker object (container, volume, network) labelled with this container id."""
    label = {"label": f"localbox.container_id={container_id}"}
    found = [f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=label)]
    found += [f"network {n.name}" for n in client.networks.list(filters=label)]
    return found
