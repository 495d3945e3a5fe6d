"""One container, served by every replica: made through the balancer, then retrieved, listed,
downloaded, uploaded to and run in through each replica's own address in turn, with the
interpreter's state carried from one replica to the next."""

from __future__ import annotations

from tests.replicas.cluster import Cluster, brief, run_code


def test_the_same_container_through_each_replica(cluster: Cluster, made: list[str]) -> None:
    client = cluster.client(max_retries=0)
    c = client.containers.create(name="everywhere")
    made.append(c.id)
    shared = client.containers.files.create(c.id, file=("shared.txt", b"made via the balancer"))
    expected = {"/mnt/data/shared.txt": b"made via the balancer"}

    for i, replica in enumerate(cluster.replicas):
        direct = replica.client(max_retries=0, timeout=120)
        got = direct.containers.retrieve(c.id)
        assert (got.id, got.name, got.status) == (c.id, "everywhere", "running")
        listed = {f.path: f for f in direct.containers.files.list(c.id, limit=100)}
        assert sorted(listed) == sorted(expected), f"r{i} lists {sorted(listed)}"
        for path, data in expected.items():
            content = direct.containers.files.content.retrieve(listed[path].id, container_id=c.id)
            assert content.read() == data, f"r{i} serves other bytes for {path}"
        assert direct.containers.files.retrieve(shared.id, container_id=c.id).bytes == len(
            b"made via the balancer"
        )
        data = f"written through r{i}".encode()
        direct.containers.files.create(c.id, file=(f"from-r{i}.txt", data))
        expected[f"/mnt/data/from-r{i}.txt"] = data
        with cluster.http(replica.base_url) as http:
            result = run_code(http, c.id, "n = globals().get('n', 0) + 1\nprint(n)")
        assert result["status"] == "completed", brief(result)
        assert result["stdout"] == f"{i + 1}\n", f"r{i} ran in another interpreter: {brief(result)}"
        assert result["state_preserved"] is True, brief(result)

    listed_all = sorted(f.path for f in client.containers.files.list(c.id, limit=100))
    assert listed_all == sorted(expected)
