"""The warm pool: spare sandboxes that creates claim, refilled, reconciled, never listed."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import httpx
import pytest

from server.config import Settings
from tests.api.test_docker_restart import start_engine, stop_engine
from tests.api.test_exec import run
from tests.conftest import SANDBOX_RUNTIME, LocalboxServer, serving

# Spares without the extra imports start faster; one test below keeps the default imports.
POOL_ENV = {"LOCALBOX_WARM_POOL": "2", "LOCALBOX_WARM_IMPORTS": ""}


def spares(docker_client: docker.DockerClient, server: LocalboxServer) -> list[str]:
    """Docker ids of the server's spare sandboxes (not yet claimed)."""
    # Sparse: no inspect per container, which a spare removed meanwhile would fail.
    found = docker_client.containers.list(
        all=True,
        sparse=True,
        filters={"label": [f"localbox.instance={server.instance_id}", "localbox.spare"]},
    )
    return sorted(c.id for c in found if c.attrs["Names"][0].startswith("/localbox-spare_"))


def wait_for_spares(
    docker_client: docker.DockerClient, server: LocalboxServer, count: int, timeout: float = 90
) -> list[str]:
    """Wait until the server holds exactly `count` spares and has warmed them (its metrics
    say how many are ready)."""
    deadline = time.monotonic() + timeout
    while True:
        names = spares(docker_client, server)
        if len(names) == count and ready_spares(server) == count:
            return names
        assert time.monotonic() < deadline, f"pool never held {count} ready spares: {names}"
        time.sleep(0.2)


def ready_spares(server: LocalboxServer) -> int:
    text = httpx.get(f"{server.url}/metrics").text
    for line in text.splitlines():
        if line.startswith("localbox_warm_pool_ready "):
            return int(float(line.split()[1]))
    raise AssertionError("no localbox_warm_pool_ready in /metrics")


@pytest.fixture
def pool_server(tmp_path: Path) -> Iterator[LocalboxServer]:
    with serving(tmp_path / "data", POOL_ENV) as server:
        yield server


def test_a_create_claims_a_spare_and_the_pool_refills(
    pool_server: LocalboxServer, docker_client: docker.DockerClient
) -> None:
    client = pool_server.client(max_retries=0)
    before = wait_for_spares(docker_client, pool_server, 2)

    if SANDBOX_RUNTIME == "runsc":
        # gVisor cannot change a running sandbox's limits: another limit than the pool's
        # starts a sandbox of its own, and the spares stay.
        other = client.containers.create(name="cold", memory_limit="4g")
        made = docker_client.containers.get(f"localbox-{other.id}")
        assert made.labels.get("localbox.spare") is None
        assert made.attrs["HostConfig"]["Memory"] == 4 << 30
        assert set(spares(docker_client, pool_server)) == set(before)
        client.containers.delete(other.id)
        c = client.containers.create(name="warm")  # the pool's own limit
    else:
        c = client.containers.create(name="warm", memory_limit="4g")
    sandbox = docker_client.containers.get(f"localbox-{c.id}")
    assert sandbox.labels.get("localbox.spare") == "true", "the create did not use a spare"
    assert sandbox.id in before
    if SANDBOX_RUNTIME != "runsc":
        assert sandbox.attrs["HostConfig"]["Memory"] == 4 << 30  # the live update
    assert sandbox.id not in spares(docker_client, pool_server)

    # The spare's warm-up left nothing behind; state is kept from the first call on.
    first = run(
        pool_server, c.id, "x = 41\nprint(sorted(k for k in globals() if 'warm' in k), len(In))"
    )
    assert first["status"] == "completed", first
    assert first["stdout"] == "[] 2\n"
    assert run(pool_server, c.id, "print(x + 1)")["stdout"] == "42\n"

    # Spares are never containers: the list holds the one container, and the pool refills.
    assert [x.id for x in client.containers.list()] == [c.id]
    wait_for_spares(docker_client, pool_server, 2)
    assert [x.id for x in client.containers.list()] == [c.id]

    # Deleting the container removes the claimed spare and its own volume.
    volume = next(m["Name"] for m in sandbox.attrs["Mounts"] if m["Destination"] == "/mnt/data")
    client.containers.delete(c.id)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(f"localbox-{c.id}")
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(volume)


def test_file_ids_are_copied_into_a_claimed_spare(
    pool_server: LocalboxServer, docker_client: docker.DockerClient
) -> None:
    client = pool_server.client(max_retries=0)
    wait_for_spares(docker_client, pool_server, 2)
    f = client.files.create(file=("data.csv", b"a,b\n1,2\n"), purpose="user_data")
    c = client.containers.create(name="with-file", file_ids=[f.id])
    assert docker_client.containers.get(f"localbox-{c.id}").labels.get("localbox.spare")
    listed = [x.path for x in client.containers.files.list(c.id)]
    assert listed == ["/mnt/data/data.csv"]
    got = run(pool_server, c.id, "print(open('/mnt/data/data.csv').read().split()[1])")
    assert got["stdout"] == "1,2\n"


def test_a_burst_larger_than_the_pool_falls_back_to_cold_starts(
    pool_server: LocalboxServer, docker_client: docker.DockerClient
) -> None:
    wait_for_spares(docker_client, pool_server, 2)
    client = pool_server.client(max_retries=0)
    with ThreadPoolExecutor(5) as ex:
        made = list(ex.map(lambda i: client.containers.create(name=f"burst-{i}"), range(5)))
    assert len({c.id for c in made}) == 5
    warm = [
        c.id
        for c in made
        if docker_client.containers.get(f"localbox-{c.id}").labels.get("localbox.spare")
    ]
    assert len(warm) == 2, "two creates should have claimed the two spares"
    for c in made:
        assert run(pool_server, c.id, "print(7)")["stdout"] == "7\n"
    listed = {c.id for c in client.containers.list()}
    assert listed == {c.id for c in made}


def test_spares_left_by_a_killed_server_are_reaped_and_the_count_restored(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    with serving(tmp_path / "data", POOL_ENV) as server:
        old = wait_for_spares(docker_client, server, 2)
        server.stop(signal.SIGKILL)
        assert spares(docker_client, server) == old  # a crash leaves them behind
        # One of them stopped meanwhile, as after a host reboot without the engine's restart.
        docker_client.containers.get(old[0]).stop(timeout=1)
        server.start()
        new = wait_for_spares(docker_client, server, 2)
        assert not set(new) & set(old), "old spares should be replaced, not kept"
        # A graceful stop removes the spares (the next start makes new ones).
        server.stop(signal.SIGTERM)
        assert spares(docker_client, server) == []
        dangling = docker_client.volumes.list(
            filters={"label": f"localbox.instance={server.instance_id}", "dangling": True}
        )
        assert [v.name for v in dangling if "spare_" in v.name] == []


def test_the_default_imports_are_loaded_in_spares(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    default_imports = Settings.model_fields["warm_imports"].default
    assert default_imports == "numpy,pandas,matplotlib.pyplot"
    env = {"LOCALBOX_WARM_POOL": "1", "LOCALBOX_WARM_IMPORTS": default_imports}
    with serving(tmp_path / "data", env) as server:
        wait_for_spares(docker_client, server, 1, timeout=180)
        client = server.client(max_retries=0)
        c = client.containers.create(name="imports")
        code = (
            "import sys\n"
            "print([m in sys.modules for m in ('numpy', 'pandas', 'matplotlib.pyplot')])\n"
            "print('np' in dir(), 'pandas' in dir())"
        )
        got = run(server, c.id, code)
        assert got["stdout"] == "[True, True, True]\nFalse False\n", got


def test_the_pool_survives_an_engine_restart(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    env = {**POOL_ENV, "LOCALBOX_WARM_POOL": "1", "LOCALBOX_RECONCILE_SECONDS": "2"}
    with serving(tmp_path / "data", env) as server:
        wait_for_spares(docker_client, server, 1)
        stop_engine()
        start_engine()
        client = server.client(max_retries=0)
        deadline = time.monotonic() + 60
        while True:  # the engine takes a moment to answer the server again
            try:
                c = client.containers.create(name="after-engine-restart")
                break
            except Exception:
                assert time.monotonic() < deadline, "no create after the engine restart"
                time.sleep(0.5)
        got = run(server, c.id, "print(3)")
        assert got["status"] == "completed", got
        assert got["stdout"] == "3\n"
        wait_for_spares(docker_client, server, 1)
