"""Servers sharing a data dir (one instance id) share one egress proxy, on real Docker: made by
two at the same moment, it is one proxy with one network out that both use; removed by one
server's reconcile while the other joins a sandbox to it, it is made again."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar, TypeVar

import docker
import docker.errors
import pytest
from docker.models.containers import Container as DockerContainer

from server.runtime.base import EgressPolicy
from server.runtime.docker_egress import ROLE_PROXY, DockerEgress, network_name
from tests.conftest import remove_sandboxes

T = TypeVar("T")

EGRESS_IMAGE = os.environ.get("LOCALBOX_EGRESS_IMAGE", "localbox-egress:latest")
POOL = "10.219.0.0/26"
"""Sandbox subnets of these tests' own, apart from the servers' default pool."""
POLICY = EgressPolicy(allowed_domains=("example.com",))


def race(work: list[Callable[[], T]]) -> list[T]:
    """Run every call at once (released together), each on a thread of its own."""
    start = threading.Barrier(len(work))

    def run(call: Callable[[], T]) -> T:
        start.wait()
        return call()

    with ThreadPoolExecutor(len(work)) as pool:
        return list(pool.map(run, work))


@pytest.fixture
def instance() -> Iterator[str]:
    """An instance id of the test's own; whatever Docker objects it labels go at the end."""
    instance_id = f"test-egress-{secrets.token_hex(4)}"
    yield instance_id
    remove_sandboxes(instance_id)


class Server:
    """What one server process holds: a Docker client and the egress of its runtime."""

    def __init__(self, instance: str, egress: type[DockerEgress] = DockerEgress) -> None:
        self.client = docker.from_env(timeout=60)
        self.egress = egress(lambda: self.client, instance, image=EGRESS_IMAGE, subnets=POOL)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def servers(instance: str) -> Iterator[tuple[Server, Server]]:
    pair = Server(instance), Server(instance)
    yield pair
    for server in pair:
        server.close()


def proxies(client: docker.DockerClient, instance: str) -> list[DockerContainer]:
    return list(
        client.containers.list(
            all=True,
            filters={"label": [f"localbox.instance={instance}", f"localbox.role={ROLE_PROXY}"]},
        )
    )


def networks_named(client: docker.DockerClient, name: str) -> list[str]:
    return [n.id or "" for n in client.networks.list(names=[name]) if n.name == name]


def joined(proxy: DockerContainer) -> set[str]:
    proxy.reload()
    return set((proxy.attrs.get("NetworkSettings") or {}).get("Networks") or {})


def test_two_servers_making_the_proxy_at_once_share_one(
    servers: tuple[Server, Server], instance: str
) -> None:
    a, b = servers
    for _ in range(3):
        made = race([a.egress.ensure_proxy, b.egress.ensure_proxy])
        assert made[0].id == made[1].id
        assert [p.id for p in proxies(a.client, instance)] == [made[0].id]
        assert len(networks_named(a.client, a.egress.outside_network)) == 1
        assert made[0].status == "running"
        remove_sandboxes(instance)  # the next round starts from nothing again


def test_a_server_that_finds_the_name_taken_uses_the_others_proxy_and_network(
    servers: tuple[Server, Server], instance: str
) -> None:
    """The races' losing sides, made to happen: the proxy made by the other server between
    this one's look and its create, and a second network of the same name (which an engine
    before API 1.44 lets a racing server make)."""
    a, b = servers
    theirs = a.egress.ensure_proxy()
    # b looked, saw no proxy, and creates it now: the name is taken.
    assert b.egress._create_proxy(b.egress._wanted_config()).id == theirs.id
    assert b.egress.ensure_proxy().id == theirs.id

    outside = b.egress.outside_network
    [first] = networks_named(b.client, outside)
    b.client.networks.create(outside, driver="bridge", labels={"localbox.instance": instance})
    assert len(networks_named(b.client, outside)) == 2
    kept = b.egress._outside_network(b.egress._labels(ROLE_PROXY))
    assert kept.id == first
    assert networks_named(b.client, outside) == [first]


def test_sandboxes_of_two_servers_join_the_one_proxy_at_once(
    servers: tuple[Server, Server], instance: str
) -> None:
    a, b = servers
    ids = [f"cntr_{secrets.token_hex(8)}" for _ in range(4)]
    attached = race(
        [
            (lambda cid=cid, server=server: server.egress.attach(cid, POLICY))
            for cid, server in zip(ids, [a, b, a, b], strict=True)
        ]
    )
    assert len({x.address for x in attached}) == len(ids)
    [proxy] = proxies(a.client, instance)
    assert {network_name(cid) for cid in ids} <= joined(proxy)
    for cid, server in zip(ids, [b, a, b, a], strict=True):  # each released by the other
        server.egress.release(cid)
    assert not {network_name(cid) for cid in ids} & joined(proxy)


def test_the_reconcile_leaves_a_proxy_younger_than_its_grace(
    servers: tuple[Server, Server], instance: str
) -> None:
    a, b = servers
    made = b.egress.ensure_proxy()
    a.egress.reconcile([], grace_seconds=60)  # no allowlisted sandbox, but just made
    assert [p.id for p in proxies(a.client, instance)] == [made.id]
    a.egress.reconcile([], grace_seconds=0)
    assert proxies(a.client, instance) == []


def test_a_sandbox_whose_proxy_another_server_removed_as_it_joined_makes_it_again(
    instance: str,
) -> None:
    """The leading server's reconcile finds no allowlisted sandbox and no sandbox network,
    and removes the proxy, an instant after the other server made sure of it and before that
    one made its sandbox's network: the join finds the proxy gone and makes it again."""
    leader = Server(instance)

    class RemovedMeanwhile(DockerEgress):
        removed: ClassVar[list[str]] = []

        def _create_network(self, container_id: str) -> tuple[object, object]:  # type: ignore[override]
            if not self.removed:
                [proxy] = proxies(leader.client, instance)
                leader.egress.reconcile([], grace_seconds=0)
                self.removed.append(proxy.id or "")
            return super()._create_network(container_id)

    joining = Server(instance, RemovedMeanwhile)
    try:
        cid = f"cntr_{secrets.token_hex(8)}"
        attachment = joining.egress.attach(cid, POLICY)
        [proxy] = proxies(leader.client, instance)
        assert proxy.id not in RemovedMeanwhile.removed  # made again
        assert RemovedMeanwhile.removed
        assert network_name(cid) in joined(proxy)
        assert attachment.network == network_name(cid)
        joining.egress.release(cid)
    finally:
        leader.close()
        joining.close()
