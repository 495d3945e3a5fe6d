"""Servers for the chaos tests: their data where the test says (a small disk, say), their log
beside it, and everything they made in Docker removed at the end."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import docker

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
        server.stop()
        id_file = data_dir / "instance-id"
        if id_file.exists():
            remove_sandboxes(id_file.read_text().strip())


def db_execute(data_dir: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Run one statement on a server's SQLite database, from outside the server."""
    with closing(sqlite3.connect(data_dir / "localbox.db", timeout=30)) as db, db:
        return list(db.execute(sql, params).fetchall())


def docker_objects(client: docker.DockerClient, container_id: str) -> list[str]:
    """Every Docker object (container, volume, network) labelled with this container id."""
    label = {"label": f"localbox.container_id={container_id}"}
    found = [f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=label)]
    found += [f"network {n.name}" for n in client.networks.list(filters=label)]
    return found
