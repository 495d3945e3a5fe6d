"""Real servers on a real PostgreSQL: big files, a database that drops its connections, servers
starting at once, and a second data dir refused the database."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from server.domain import File
from server.store import Database, FileRepository
from tests.api.test_exec import run
from tests.conftest import LocalboxServer, remove_sandboxes, serving

THREE_GIB = 3 << 30
AFTER_2038 = 4_102_444_800  # 2100-01-01
# The sandbox's disk watchdog counts blocks used, and a sparse file uses none.
ENV = {"LOCALBOX_EXPIRY_SWEEP_SECONDS": "3600"}


def test_a_sparse_3_gib_container_file_lists(tmp_path: Path, postgres_database: str) -> None:
    with serving(tmp_path / "data", ENV, database_url=postgres_database) as server:
        client = server.client(max_retries=0)
        cid = client.containers.create(name="big").id
        made = run(server, cid, f"open('/mnt/data/big.bin', 'wb').truncate({THREE_GIB})")
        assert made["status"] == "completed", made
        listed = {f.path: f.bytes for f in client.containers.files.list(cid)}
        assert listed["/mnt/data/big.bin"] == THREE_GIB
        client.containers.delete(cid)


def test_a_time_past_2038_is_served(tmp_path: Path, postgres_database: str) -> None:
    with serving(tmp_path / "data", ENV, database_url=postgres_database) as server:
        db = Database(postgres_database)
        FileRepository(db).add(
            File(
                id="file-2100",
                filename="late.txt",
                bytes=THREE_GIB,
                created_at=AFTER_2038,
                purpose="assistants",
            )
        )
        db.close()
        f = server.client(max_retries=0).files.retrieve("file-2100")
        assert (f.created_at, f.bytes) == (AFTER_2038, THREE_GIB)


def test_the_first_request_after_the_database_dropped_connections_succeeds(
    tmp_path: Path, postgres_database: str
) -> None:
    with serving(tmp_path / "data", ENV, database_url=postgres_database) as server:
        client = server.client(max_retries=0)
        c = client.containers.create(name="before")
        assert [x.id for x in client.containers.list()] == [c.id]
        db = Database(postgres_database)
        ended = db.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        db.close()
        assert ended[0][0] >= 1
        assert [x.id for x in client.containers.list()] == [c.id]
        assert client.containers.retrieve(c.id).status == "running"
        client.containers.delete(c.id)


def test_servers_starting_at_once_on_an_empty_database_all_serve(
    tmp_path: Path, postgres_database: str
) -> None:
    data = tmp_path / "data"
    servers = [
        LocalboxServer(data_dir=data, env=ENV, database_url=postgres_database) for _ in range(3)
    ]
    failures: list[BaseException] = []

    def start(server: LocalboxServer) -> None:
        try:
            server.start()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        made = [s.client(max_retries=0).containers.create(name=f"on-{s.port}") for s in servers]
        for s in servers:  # every server sees every server's containers: one database
            assert {c.id for c in s.client(max_retries=0).containers.list()} == {c.id for c in made}
    finally:
        for s in servers:
            s.close()
        if (data / "instance-id").exists():
            remove_sandboxes(servers[0].instance_id)


def test_a_server_with_another_data_dir_is_refused_and_the_first_keeps_its_containers(
    tmp_path: Path, postgres_database: str
) -> None:
    with serving(tmp_path / "a", ENV, database_url=postgres_database) as first:
        client = first.client(max_retries=0)
        c = client.containers.create(name="kept")
        second = LocalboxServer(tmp_path / "b", env=ENV, database_url=postgres_database)
        with pytest.raises(RuntimeError, match="exited early") as info:
            second.start()
        message = str(info.value)
        assert "refusing to start" in message
        assert f"LOCALBOX_DATA_DIR={(tmp_path / 'a').resolve()}" in message
        assert "LOCALBOX_DATABASE_URL" in message
        assert client.containers.retrieve(c.id).status == "running"
        assert run(first, c.id, "print(6 * 7)")["stdout"] == "42\n"
