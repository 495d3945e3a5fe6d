"""Replicas taking turns through leases on a real PostgreSQL: one holder per key at a time
(across processes' objects and within one), waiting in turn, taking over from a holder that
died, one leader at a time, and which containers run code elsewhere."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from server.services.coordination import LeaseTimeout, Replicas, exec_key, where
from server.store import Database, LeaseRepository


@pytest.fixture
def db(postgres_database: str) -> Iterator[Database]:
    database = Database(postgres_database)
    database.create_tables()
    yield database
    database.close()


def replica(db: Database, name: str, ttl: float = 15.0) -> Replicas:
    return Replicas(LeaseRepository(db), name, ttl=ttl)


def test_a_key_has_one_holder_at_a_time(db: Database) -> None:
    a, b = replica(db, "rep_a"), replica(db, "rep_b")
    with a.try_hold("exec:c1") as lease:
        assert lease is not None
        assert not lease.took_over
        with b.try_hold("exec:c1") as other:
            assert other is None
        with a.try_hold("exec:c1") as again:
            assert again is None  # another caller of the same replica waits its turn too
        with b.try_hold("exec:c2") as unrelated:
            assert unrelated is not None
    with b.try_hold("exec:c1") as after:
        assert after is not None
        assert not after.took_over


def test_a_waiter_gets_the_key_when_the_holder_lets_go(db: Database) -> None:
    a, b = replica(db, "rep_a"), replica(db, "rep_b")
    order: list[str] = []

    def hold_a_while() -> None:
        with a.hold("files:c1", wait=1):
            order.append("a")
            time.sleep(0.5)
            order.append("a done")

    thread = threading.Thread(target=hold_a_while)
    thread.start()
    while not order:
        time.sleep(0.01)

    async def b_turn() -> bool:
        lease = await b.acquire("files:c1", wait=5)
        order.append("b")
        lease.release()
        return lease.waited

    assert asyncio.run(b_turn()) is True
    thread.join()
    assert order == ["a", "a done", "b"]
    with pytest.raises(LeaseTimeout), a.hold("files:c1", wait=0), b.hold("files:c1", wait=0.2):
        pass


def test_a_lease_its_holder_stopped_renewing_is_taken_over(db: Database) -> None:
    dead, alive = replica(db, "rep_dead", ttl=1.0), replica(db, "rep_alive", ttl=1.0)
    lease = dead._take(exec_key("c1"))  # taken, then never renewed nor released (kill -9)
    assert lease is not None
    assert alive.busy_elsewhere(["c1", "c2"]) == {"c1"}
    with alive.try_hold(exec_key("c1")) as early:
        assert early is None
    time.sleep(1.2)
    assert alive.busy_elsewhere(["c1"]) == set()
    with alive.try_hold(exec_key("c1")) as late:
        assert late is not None
        assert late.took_over


def test_one_replica_leads_and_another_follows_when_it_stops(db: Database) -> None:
    a, b = replica(db, "rep_a", ttl=1.0), replica(db, "rep_b", ttl=1.0)
    a.start()
    b.start()
    try:
        assert a.leading()
        assert not b.leading()
        assert a.alive() == b.alive() == {"rep_a", "rep_b"}
        with a.try_hold(exec_key("c1")) as lease:
            time.sleep(1.5)  # longer than the ttl: renewed while held
            assert b.busy_elsewhere(["c1"]) == {"c1"}
            assert lease is not None
        a.close()
        deadline = time.monotonic() + 3
        while not b.leading() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b.leading()
        assert b.alive() == {"rep_b"}
    finally:
        a.close()
        b.close()


def test_a_replica_whose_process_is_gone_from_this_host_is_not_waited_for(db: Database) -> None:
    """A kill -9, then a restart within the lease time: the dead replica (same host, same
    process namespace, its pid gone) gives up its turns at once, the lead included."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    leases = LeaseRepository(db)
    now = int(time.time() * 1000)
    leases.heartbeat("rep_dead", where(), gone.pid, 0, now)
    assert leases.take("leader", "rep_dead", now, 60_000) is not None
    assert leases.take(exec_key("c1"), "rep_dead", now, 60_000) is not None
    elsewhere = replica(db, "rep_elsewhere")
    leases.heartbeat("rep_other_host", "another-host 1 pid:[1]", gone.pid, 0, now)
    restarted = replica(db, "rep_restarted")
    restarted.start()
    try:
        assert restarted.leading()
        assert restarted.alive() == {"rep_restarted", "rep_other_host"}  # not provably dead
        with restarted.try_hold(exec_key("c1")) as lease:
            assert lease is not None
            assert lease.took_over  # so the calls the dead one left running are stopped
        assert elsewhere.busy_elsewhere(["c1"]) == set()
    finally:
        restarted.close()
