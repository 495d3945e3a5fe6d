"""Warm pools with replicas: each replica keeps its own spares full, and none removes another's.

Spares carry the name of the replica that made them (label localbox.replica): only that one
claims, counts or removes them.
"""

from __future__ import annotations

import time
from collections import Counter

import docker
import httpx

from tests.conftest import LocalboxServer
from tests.replicas.cluster import REPLICA_ENV, Cluster

SIZE = int(REPLICA_ENV["LOCALBOX_WARM_POOL"])
REPLICA_LABEL = "localbox.replica"
RECONCILE_SECONDS = float(REPLICA_ENV["LOCALBOX_RECONCILE_SECONDS"])


def ready_spares(replica: LocalboxServer) -> int:
    """The replica's own count of ready spares (its /metrics)."""
    for line in httpx.get(f"{replica.url}/metrics", timeout=10).text.splitlines():
        if line.startswith("localbox_warm_pool_ready "):
            return int(float(line.split()[1]))
    raise AssertionError("no localbox_warm_pool_ready in /metrics")


def engine_spares(docker_client: docker.DockerClient, cluster: Cluster) -> list[dict[str, str]]:
    """The labels of every spare sandbox of this instance the engine holds (not yet claimed)."""
    found = docker_client.containers.list(
        all=True,
        sparse=True,
        filters={"label": [f"localbox.instance={cluster.instance_id}", "localbox.spare"]},
    )
    return [c.attrs["Labels"] for c in found if c.attrs["Names"][0].startswith("/localbox-spare_")]


def _state(docker_client: docker.DockerClient, cluster: Cluster) -> tuple[list[int], int]:
    return [ready_spares(r) for r in cluster.replicas], len(engine_spares(docker_client, cluster))


def test_every_replica_keeps_its_own_pool_full(
    cluster: Cluster, docker_client: docker.DockerClient
) -> None:
    client = cluster.client(max_retries=2, timeout=120)
    ids = [client.containers.create(name=f"pool-{i}").id for i in range(3 * len(cluster.replicas))]
    for cid in ids:
        client.containers.delete(cid)

    want = ([SIZE] * len(cluster.replicas), SIZE * len(cluster.replicas))
    deadline = time.monotonic() + 120
    seen = _state(docker_client, cluster)
    history = [seen]
    while seen != want:
        assert time.monotonic() < deadline, (
            f"pools never refilled: (ready per replica, engine) {history[-20:]}"
        )
        time.sleep(0.5)
        seen = _state(docker_client, cluster)
        if seen != history[-1]:
            history.append(seen)

    # Full, and they stay full: several reconciles of every replica leave the others' spares.
    hold = time.monotonic() + 3 * RECONCILE_SECONDS + 1
    while time.monotonic() < hold:
        seen = _state(docker_client, cluster)
        assert seen == want, f"a full pool lost spares: (ready per replica, engine) {seen}"
        time.sleep(0.25)

    owners = Counter(
        labels.get(REPLICA_LABEL, "") for labels in engine_spares(docker_client, cluster)
    )
    assert "" not in owners, f"spares without a {REPLICA_LABEL} label: {owners}"
    assert sorted(owners.values()) == [SIZE] * len(cluster.replicas), owners
