"""Instance ids: each data dir names its own sandboxes with a random id kept in the dir, so
deployments whose data dirs share a path (every compose project's is /data) cannot remove
each other's sandboxes; a data dir from before the id file keeps its sandboxes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import docker
import pytest

from server.domain import Container
from server.instance import DataDirInUse, hold_data_dir, legacy_instance_id, load_instance_id
from server.runtime import SandboxSpec
from server.runtime.docker import DockerRuntime
from server.store import ContainerRepository, Database
from tests.conftest import LocalboxServer, database_for, remove_sandboxes, serving

IMAGE = os.environ.get("LOCALBOX_SANDBOX_IMAGE", "localbox-sandbox:latest")


def test_a_new_data_dir_gets_a_random_id_that_stays(tmp_path: Path) -> None:
    first = load_instance_id(tmp_path / "a")
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert first != legacy_instance_id(tmp_path / "a")
    assert load_instance_id(tmp_path / "a") == first
    assert load_instance_id(tmp_path / "b") != first


def test_a_data_dir_from_before_keeps_the_hash_of_its_path(tmp_path: Path) -> None:
    (tmp_path / "localbox.db").touch()
    assert load_instance_id(tmp_path) == legacy_instance_id(tmp_path)
    assert (tmp_path / "instance-id").read_text().strip() == legacy_instance_id(tmp_path)


def test_a_damaged_id_file_stops_the_start_instead_of_adopting_strangers(tmp_path: Path) -> None:
    (tmp_path / "instance-id").write_text("../../etc\n")
    with pytest.raises(ValueError, match="instance id"):
        load_instance_id(tmp_path)


def test_an_existing_deployment_keeps_its_sandboxes_across_the_upgrade(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    """A data dir as the previous version left it: a database with a running container whose
    sandbox is labelled with the hash of the data dir's path, and no instance-id file."""
    data = (tmp_path / "data").resolve()
    data.mkdir()
    (data / "files").mkdir()  # a data dir a server has used, whichever database it had
    old_id = legacy_instance_id(data)
    with database_for(data) as url:
        db = Database(url)
        db.create_tables()
        cid = "cntr_" + "ab" * 24
        ContainerRepository(db).add(
            Container(
                id=cid,
                name="from-before",
                created_at=1,
                status="running",
                expires_after_minutes=10080,
                last_active_at=2_000_000_000,
                memory_limit="1g",
            )
        )
        db.close()
        DockerRuntime(IMAGE, old_id).create(SandboxSpec(container_id=cid, memory_bytes=1 << 30))
        try:
            with serving(data, database_url=url) as server:  # reconciles at start-up
                assert server.instance_id == old_id
                client = server.client(max_retries=0)
                assert client.containers.retrieve(cid).status == "running"
                f = client.containers.files.create(cid, file=("kept.txt", b"kept"))
                content = client.containers.files.content.retrieve(f.id, container_id=cid)
                assert content.read() == b"kept"
                sandbox = docker_client.containers.get(f"localbox-{cid}")
                assert sandbox.labels["localbox.instance"] == old_id
        finally:
            remove_sandboxes(old_id)


def test_two_deployments_at_the_same_path_keep_their_own_sandboxes(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    """Deployment A serves from DIR, then moves away; deployment B starts fresh at the same
    DIR (as two compose projects both use /data). B's start-up reconcile must not take A's
    sandbox, and A finds it when it comes back."""
    path = tmp_path / "data"
    with serving(path) as a:
        a_id = a.instance_id
        kept = a.client(max_retries=0).containers.create(name="a's")
        away = tmp_path / "a-away"
        a.stop()
        path.rename(away)
        try:
            with serving(path) as b:
                assert b.instance_id != a_id
                assert b.client(max_retries=0).containers.list().data == []
                assert docker_client.containers.get(f"localbox-{kept.id}").status == "running"
        finally:
            if path.exists():
                path.rename(tmp_path / "b-done")
            away.rename(path)
        a.start()
        assert a.client(max_retries=0).containers.retrieve(kept.id).status == "running"


def test_a_data_dir_is_held_alone_on_sqlite_and_shared_only_by_replicas(tmp_path: Path) -> None:
    alone = hold_data_dir(tmp_path, shared=False)
    try:
        for shared in (False, True):
            with pytest.raises(DataDirInUse, match=f"pid {os.getpid()}"):
                hold_data_dir(tmp_path, shared=shared)
    finally:
        os.close(alone)
    replicas = [hold_data_dir(tmp_path, shared=True) for _ in range(3)]
    try:
        with pytest.raises(DataDirInUse, match="replicas on one PostgreSQL"):
            hold_data_dir(tmp_path, shared=False)
    finally:
        for fd in replicas:
            os.close(fd)
    os.close(hold_data_dir(tmp_path, shared=False))  # free again once they are gone


def test_a_second_server_on_a_sqlite_data_dir_refuses_to_start(tmp_path: Path) -> None:
    """Two servers on one SQLite data dir would each take the other's sandboxes for leftovers;
    the second one says why it does not start, and the first serves on."""
    data_dir = tmp_path / "data"
    sqlite = f"sqlite:///{data_dir.resolve() / 'localbox.db'}"
    with serving(data_dir, database_url=sqlite) as first:
        second = LocalboxServer(data_dir, database_url=sqlite, log_path=tmp_path / "second.log")
        with pytest.raises(RuntimeError, match="exited early"):
            second.start()
        assert second.process is not None
        assert second.process.returncode == 2
        assert "uses the data dir" in second.log_text()
        assert f"pid {first.process.pid if first.process else ''}" in second.log_text()
        assert first.client().containers.list().data == []
