"""kill -9 of one replica: what it acknowledged stays retrievable through the balancer, the
containers it last served go on running code (once its hold on them has lapsed), creates go
on, and the replica serves again when it is started."""

from __future__ import annotations

import os
import threading
import time
from contextlib import suppress

import httpx

from tests.replicas.cluster import Cluster, brief, run_code

VICTIM = 1


def test_kill_9_of_a_replica_loses_nothing_acknowledged(cluster: Cluster, made: list[str]) -> None:
    # Generous: a container the dead replica held may wait until its hold expires.
    client = cluster.client(max_retries=2, timeout=180)
    ids = []
    payloads: dict[str, tuple[str, bytes]] = {}
    for i in range(6):  # round-robin: each replica makes two
        c = client.containers.create(name=f"survive-{i}")
        made.append(c.id)
        ids.append(c.id)
        data = os.urandom(50_000 + i)
        f = client.containers.files.create(c.id, file=(f"keep-{i}.bin", data))
        payloads[c.id] = (f.id, data)
    stored = client.files.create(file=("notes.txt", b"kept in the data dir"), purpose="assistants")
    victim = cluster.replicas[VICTIM]
    # State set through the victim: it is the last replica these containers were used through.
    held = ids[:3]
    with cluster.http(victim.base_url) as on_victim:
        for i, cid in enumerate(held):
            assert run_code(on_victim, cid, f"x = {i}")["status"] == "completed"

    cluster.kill(VICTIM)
    try:
        for cid in ids:
            got = client.containers.retrieve(cid)
            assert got.status == "running", got
            file_id, data = payloads[cid]
            listed = [f.id for f in client.containers.files.list(cid)]
            assert listed == [file_id]
            assert (
                client.containers.files.content.retrieve(file_id, container_id=cid).read() == data
            )
        assert client.files.content(stored.id).read() == b"kept in the data dir"

        with cluster.http(timeout=180) as http:
            for i, cid in enumerate(held):
                result = run_code(http, cid, "print(x)", timeout=60)
                assert result["status"] == "completed", brief(result)
                assert result["stdout"] == f"{i}\n", brief(result)
                assert result["state_preserved"] is True, brief(result)
            for cid in ids[3:]:
                assert run_code(http, cid, "print(2 + 2)")["stdout"] == "4\n"

            for i in range(4):  # the balancer's round would reach the dead one
                c = client.containers.create(name=f"after-{i}")
                made.append(c.id)
                assert c.status == "running"
                assert run_code(http, c.id, "print('new')")["stdout"] == "new\n"
        # The balancer's checks have taken the dead replica out by now.
        cluster.balancer.wait_until(cluster.name(VICTIM), "DOWN", timeout=10)
    finally:
        cluster.restart(VICTIM)

    # Back: it serves, the containers and files included.
    back = victim.client(max_retries=0, timeout=180)
    for cid in ids:
        assert back.containers.retrieve(cid).status == "running"
        file_id, data = payloads[cid]
        assert back.containers.files.content.retrieve(file_id, container_id=cid).read() == data
    with cluster.http(victim.base_url, timeout=180) as on_victim:
        result = run_code(on_victim, held[0], "print(x)", timeout=60)
    assert result["stdout"] == "0\n", brief(result)


def test_a_call_cut_off_by_kill_9_is_stopped_and_the_container_serves_on(
    cluster: Cluster, made: list[str]
) -> None:
    """The victim dies while a long call of its runs: the call's turn lapses (after
    LOCALBOX_LEASE_SECONDS), and the replica that takes it stops the stray call first, so the
    next call runs at once in the same interpreter instead of waiting two minutes behind it."""
    client = cluster.client(max_retries=0, timeout=180)
    c = client.containers.create(name="cut-off")
    made.append(c.id)
    victim = cluster.replicas[VICTIM]
    with cluster.http(victim.base_url) as on_victim:
        assert run_code(on_victim, c.id, "x = 7")["status"] == "completed"

    def long_call() -> None:
        with cluster.http(victim.base_url) as on_victim, suppress(httpx.HTTPError):
            run_code(on_victim, c.id, "import time\ntime.sleep(120)", timeout=200)

    caller = threading.Thread(target=long_call)
    caller.start()
    time.sleep(2)  # the long call runs in the sandbox
    cluster.kill(VICTIM)
    caller.join(30)
    try:
        other = cluster.replicas[(VICTIM + 1) % len(cluster.replicas)]
        started = time.monotonic()
        with cluster.http(other.base_url) as on_other:
            result = run_code(on_other, c.id, "print(x)", timeout=90)
        waited = time.monotonic() - started
        assert result["status"] == "completed", brief(result)
        assert result["stdout"] == "7\n", brief(result)
        assert result["state_preserved"] is True, brief(result)
        assert waited < 30, f"the next call waited {waited:.1f} s behind the stray"
        assert "took over exec:" + c.id in other.log_text()
    finally:
        cluster.restart(VICTIM)
