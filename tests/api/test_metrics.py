"""GET /metrics: Prometheus' text format, behind the key when keys are set."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LocalboxServer


def scrape(server: LocalboxServer, **headers: str) -> dict[str, float]:
    r = httpx.get(f"{server.url}/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def test_metrics_count_what_happens(server: LocalboxServer) -> None:
    client = server.client(max_retries=0)
    before = scrape(server)
    c = client.containers.create(name="metered")
    f = client.containers.files.create(c.id, file=("m.bin", b"m" * 5000))
    assert client.containers.files.content.retrieve(f.id, container_id=c.id).read()
    missing = httpx.get(f"{server.base_url}/containers/cntr_{'0' * 48}")
    assert missing.status_code == 404
    after = scrape(server)

    def grew(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert after['localbox_containers{status="running"}'] >= 1
    assert after["localbox_sandboxes"] >= 1
    assert after["localbox_docker_up"] == 1
    assert grew('localbox_container_creates_total{outcome="ok"}') == 1
    assert grew("localbox_container_create_seconds_count") == 1
    assert grew('localbox_upload_bytes_total{route="/v1/containers/{container_id}/files"}') > 5000
    content = "/v1/containers/{container_id}/files/{file_id}/content"
    download = f'localbox_download_bytes_total{{route="{content}"}}'
    assert grew(download) == 5000
    not_found = (
        'localbox_http_responses_total{method="GET",route="/v1/containers/{container_id}",'
        'status="404"}'
    )
    assert grew(not_found) == 1
    assert not any("cntr_000" in name for name in after)  # templates, never raw paths
    for name in (
        'localbox_execs_total{outcome="completed"}',
        "localbox_expiry_sweeps_total",
        'localbox_reconcile_actions_total{action="removed_orphan"}',
        "localbox_memory_budget_bytes",
        "localbox_files_bytes",
        "localbox_max_files_bytes",
        "localbox_disk_free_bytes",
        "localbox_min_free_disk_bytes",
        "localbox_max_containers",
        "process_open_fds",
    ):
        assert name in after, name
    assert after["localbox_expiry_sweeps_total"] >= 1
    assert after["localbox_disk_free_bytes"] > 0
    assert after["localbox_max_containers"] == 1000  # the suite's setting
    client.containers.delete(c.id)


def test_metrics_need_the_key_when_keys_are_set(keyed_server: LocalboxServer) -> None:
    r = httpx.get(f"{keyed_server.url}/metrics")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert "localbox_containers" in str(
        scrape(keyed_server, Authorization=f"Bearer {keyed_server.api_key}")
    )
