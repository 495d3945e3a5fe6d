"""LiteLLM against localbox: the SDK directly, and the LiteLLM proxy in front of localbox
driven by the openai SDK and curl. LiteLLM lives in its own virtualenv (.venv-litellm)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.clients.conftest import LITELLM_PY, MASTER_KEY, OFFLINE, Proxy
from tests.conftest import ROOT, LocalboxServer


def test_litellm_sdk_sync_and_async(keyed_server: LocalboxServer) -> None:
    env = {
        **os.environ,
        **OFFLINE,
        "LOCALBOX_BASE_URL": keyed_server.base_url,
        "LOCALBOX_API_KEY": keyed_server.api_key,
    }
    proc = subprocess.run(
        [str(LITELLM_PY), str(ROOT / "tests" / "litellm" / "sdk_workflow.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ["sync workflow ok", "async workflow ok"]


def test_openai_sdk_through_the_proxy(proxy: Proxy, tmp_path: Path) -> None:
    provider = {"custom_llm_provider": "openai"}
    with openai.OpenAI(base_url=proxy.url, api_key=MASTER_KEY, max_retries=0) as client:
        c = client.containers.create(
            name="through-proxy",
            expires_after={"anchor": "last_active_at", "minutes": 20},
            extra_body=provider,
        )
        assert c.id.startswith("cntr_")
        assert c.id in [x.id for x in client.containers.list(limit=20, extra_body=provider).data]
        assert client.containers.retrieve(c.id, extra_body=provider).status == "running"
        src = tmp_path / "report.csv"
        src.write_bytes(b"x,y\n1,2\n")
        f = client.containers.files.create(c.id, file=src, extra_body=provider)
        assert f.path == "/mnt/data/report.csv"
        assert [x.id for x in client.containers.files.list(c.id)] == [f.id]
        assert client.containers.files.retrieve(f.id, container_id=c.id).bytes == 8
        content = client.containers.files.content.retrieve(f.id, container_id=c.id)
        assert content.read() == b"x,y\n1,2\n"
        client.containers.files.delete(f.id, container_id=c.id)
        assert list(client.containers.files.list(c.id)) == []
        client.containers.delete(c.id, extra_body=provider)
        with pytest.raises(openai.NotFoundError):
            client.containers.retrieve(c.id, extra_body=provider)


def curl(*args: str) -> Any:
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "-H", f"Authorization: Bearer {MASTER_KEY}", *args],
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    try:
        return json.loads(out.stdout)
    except ValueError:
        return out.stdout


def test_curl_through_the_proxy_with_provider_by_header_query_and_body(
    proxy: Proxy, tmp_path: Path
) -> None:
    base = f"{proxy.url}/v1/containers"
    json_type = ["-H", "Content-Type: application/json"]
    by_header = curl("-X", "POST", base, "-H", "custom-llm-provider: openai", *json_type,
                     "-d", '{"name": "by header"}')  # fmt: skip
    by_query = curl("-X", "POST", f"{base}?custom_llm_provider=openai", *json_type,
                    "-d", '{"name": "by query"}')  # fmt: skip
    by_body = curl("-X", "POST", base, *json_type,
                   "-d", '{"name": "by body", "custom_llm_provider": "openai", '
                   '"expires_after": {"anchor": "last_active_at", "minutes": 20}}')  # fmt: skip
    ids = [by_header["id"], by_query["id"], by_body["id"]]
    assert all(i.startswith("cntr_") for i in ids)
    listed = curl(f"{base}?limit=20&order=desc")
    assert set(ids) <= {c["id"] for c in listed["data"]}
    cid = by_body["id"]
    assert curl(f"{base}/{cid}")["name"] == "by body"
    src = tmp_path / "data.txt"
    src.write_bytes(b"through the proxy")
    f = curl(f"{base}/{cid}/files", "-F", f"file=@{src}")
    assert f["path"] == "/mnt/data/data.txt"
    assert curl(f"{base}/{cid}/files")["data"][0]["id"] == f["id"]
    assert curl(f"{base}/{cid}/files/{f['id']}/content") == b"through the proxy"
    assert curl("-X", "DELETE", f"{base}/{cid}/files/{f['id']}")["deleted"] is True
    for i in ids:
        assert curl("-X", "DELETE", f"{base}/{i}") == {
            "id": i,
            "object": "container.deleted",
            "deleted": True,
        }
