"""Calls to one container through different replicas: they take turns in arrival order, keep
the interpreter's state, and the expiry sweep (on whichever replica runs it) never takes a
container while code runs in it on another."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import docker.errors

from tests.replicas.cluster import Cluster, brief, run_code

RESTARTED = "the sandbox restarted"
"""What localbox puts in a call's output when the sandbox restarted since the last call."""

LONG_SECONDS = 8


def _sandbox_started(docker_client: docker.DockerClient, container_id: str) -> tuple[str, int]:
    """(when the sandbox's process last started, how often the engine restarted it)."""
    attrs = docker_client.containers.get(f"localbox-{container_id}").attrs
    return attrs["State"]["StartedAt"], attrs["RestartCount"]


def _not_restarted(result: dict[str, Any]) -> None:
    assert result["state_preserved"] is True, brief(result)
    assert RESTARTED not in result["stdout"] + result["stderr"], brief(result)


def test_a_long_call_on_one_replica_and_a_short_one_on_another_take_turns(
    cluster: Cluster, made: list[str], docker_client: docker.DockerClient
) -> None:
    client = cluster.client(max_retries=0)
    c = client.containers.create(name="turns")
    made.append(c.id)
    before = _sandbox_started(docker_client, c.id)
    a, b = cluster.replicas[0], cluster.replicas[1]
    long_code = f"import time\ntime.sleep({LONG_SECONDS})\nx += 1\nprint(x)"
    with (
        cluster.http(a.base_url) as on_a,
        cluster.http(b.base_url) as on_b,
        ThreadPoolExecutor(1) as pool,
    ):
        first = run_code(on_a, c.id, "x = 41")
        assert first["status"] == "completed", brief(first)

        def long_call() -> tuple[dict[str, Any], float]:
            result = run_code(on_a, c.id, long_code, timeout=60)
            return result, time.monotonic()

        long_future = pool.submit(long_call)
        time.sleep(1.5)  # the long call is running on A
        short_started = time.monotonic()
        short = run_code(on_b, c.id, "print(x)", timeout=60)
        short_ended = time.monotonic()
        long, long_ended = long_future.result(timeout=90)

    assert long["status"] == "completed", brief(long)
    assert long["stdout"] == "42\n", brief(long)
    _not_restarted(long)
    assert short["status"] == "completed", brief(short)
    # 42, not 41: the short call ran after the long one had finished, in the same interpreter.
    assert short["stdout"] == "42\n", brief(short)
    _not_restarted(short)
    assert short_ended - short_started >= LONG_SECONDS - 1.5 - 1, "the short call did not wait"
    assert short_ended >= long_ended - 0.2, "the short call finished before the long one"
    assert _sandbox_started(docker_client, c.id) == before, "the sandbox was restarted"
    # And the container goes on answering through either replica.
    with cluster.http(b.base_url) as on_b:
        assert run_code(on_b, c.id, "print(x + 1)")["stdout"] == "43\n"


EXPIRY_MINUTES = 1
BUSY_SECONDS = 65
"""Longer than the containers' whole expiry: only the call keeps them alive."""
SWEEP_SECONDS = 1.0


def _exists(docker_client: docker.DockerClient, container_id: str) -> bool:
    try:
        docker_client.containers.get(f"localbox-{container_id}")
    except docker.errors.NotFound:
        return False
    return True


def test_expiry_never_takes_a_container_running_code_on_another_replica(
    cluster: Cluster, made: list[str], docker_client: docker.DockerClient
) -> None:
    """One container per replica, each running code longer than its expiry on that replica,
    so whichever replica sweeps, others' calls are running: every call completes, every
    container still runs afterwards, and then, left idle, each expires on schedule."""
    client = cluster.client(max_retries=0)
    ids = []
    for i in range(len(cluster.replicas)):
        c = client.containers.create(
            name=f"busy-{i}",
            expires_after={"anchor": "last_active_at", "minutes": EXPIRY_MINUTES},
        )
        made.append(c.id)
        ids.append(c.id)
    code = f"import time\nstate = 'kept'\ntime.sleep({BUSY_SECONDS})\nprint(state)"

    def busy(index: int) -> tuple[dict[str, Any], float]:
        with cluster.http(cluster.replicas[index].base_url) as http:
            result = run_code(http, ids[index], code, timeout=BUSY_SECONDS + 60)
        return result, time.time()

    with ThreadPoolExecutor(len(ids)) as pool:
        finished = list(pool.map(busy, range(len(ids))))
    for (result, _), cid in zip(finished, ids, strict=True):
        assert result["status"] == "completed", brief(result)
        assert result["stdout"] == "kept\n", brief(result)
        _not_restarted(result)
        assert _exists(docker_client, cid), f"the sandbox of {cid} was removed"
    # Right after: still running (listing marks nothing active, so it leaves the deadline be).
    listed = {c.id: c for c in client.containers.list(limit=100)}
    assert [listed[cid].status for cid in ids] == ["running"] * len(ids)
    for cid in ids:
        assert docker_client.containers.get(f"localbox-{cid}").status == "running"

    # Then idle: each expires a minute after its call ended, not before, and its sandbox goes.
    last_end = max(end for _, end in finished)
    deadline = last_end + 60 * EXPIRY_MINUTES + SWEEP_SECONDS + 15
    pending = set(ids)
    while pending:
        listed = {c.id: c for c in client.containers.list(limit=100)}
        for cid in list(pending):
            if listed[cid].status == "expired":
                pending.discard(cid)
                ended = finished[ids.index(cid)][1]
                assert time.time() >= ended + 60 * EXPIRY_MINUTES - 2, f"{cid} expired early"
        assert time.time() < deadline, f"never expired: {sorted(pending)}"
        time.sleep(0.5)
    for cid in ids:
        while _exists(docker_client, cid):
            assert time.time() < deadline, f"the sandbox of {cid} outlived its expiry"
            time.sleep(0.2)
        assert client.containers.retrieve(cid).status == "expired"
