"""API keys: 401 in OpenAI's shape when keys are configured; refusing to bind publicly without."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import openai
import pytest

from tests.conftest import ROOT, LocalboxServer, free_port


def test_wrong_key_is_authentication_error(keyed_server: LocalboxServer) -> None:
    bad = openai.OpenAI(base_url=keyed_server.base_url, api_key="sk-wrong-key-123", max_retries=0)
    keyed_server.clients.append(bad)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.containers.list()
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    assert info.value.request_id is not None
    assert "sk-wrong-key-123" not in info.value.message


def test_missing_key_is_401(keyed_server: LocalboxServer) -> None:
    r = httpx.post(f"{keyed_server.base_url}/containers", json={"name": "x"})
    assert r.status_code == 401
    body = r.json()["error"]
    assert body["code"] == "invalid_api_key"
    assert body["type"] == "invalid_request_error"
    assert set(body) == {"message", "type", "param", "code"}


def test_each_configured_key_works(keyed_server: LocalboxServer) -> None:
    for key in ("sk-test", "sk-other"):
        ok = openai.OpenAI(base_url=keyed_server.base_url, api_key=key, max_retries=0)
        keyed_server.clients.append(ok)
        assert ok.containers.list(limit=1).object == "list"


def test_auth_comes_before_validation(keyed_server: LocalboxServer) -> None:
    r = httpx.get(f"{keyed_server.base_url}/containers?limit=0")
    assert r.status_code == 401


def test_without_keys_any_bearer_is_accepted(server: LocalboxServer) -> None:
    for key in ("anything", "None"):
        c = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
        server.clients.append(c)
        assert c.containers.list(limit=1).object == "list"
    assert httpx.get(f"{server.base_url}/containers").status_code == 200


def test_refuses_public_bind_without_keys(tmp_path: object) -> None:
    env = {
        **os.environ,
        "LOCALBOX_HOST": "0.0.0.0",
        "LOCALBOX_PORT": str(free_port()),
        "LOCALBOX_DATA_DIR": str(tmp_path),
        "LOCALBOX_API_KEYS": "",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "server"], cwd=ROOT, env=env, capture_output=True, timeout=30
    )
    assert proc.returncode == 2
    assert b"LOCALBOX_API_KEYS" in proc.stderr
    assert b"0.0.0.0" in proc.stderr
