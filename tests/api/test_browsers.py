"""Without API keys, web pages cannot drive localbox: no DNS rebinding (Host), no cross-site
requests (Origin). With keys, nothing changes for the SDKs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import LocalboxServer, serving


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "10.0.0.5"])
def test_a_foreign_host_is_refused_without_keys(server: LocalboxServer, host: str) -> None:
    r = httpx.get(f"{server.base_url}/containers", headers={"Host": host})
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["code"] == "host_not_allowed"
    assert set(error) == {"message", "type", "param", "code"}
    assert "x-request-id" in r.headers


@pytest.mark.parametrize(
    "host", ["localhost", "127.0.0.1", "127.0.0.2:9", "[::1]:8000", "app.localhost", "LOCALHOST"]
)
def test_loopback_hosts_are_served(server: LocalboxServer, host: str) -> None:
    r = httpx.get(f"{server.base_url}/containers", headers={"Host": host})
    assert r.status_code == 200


def test_a_cross_site_upload_stores_nothing(server: LocalboxServer) -> None:
    before = httpx.get(f"{server.base_url}/files").json()["data"]
    r = httpx.post(
        f"{server.base_url}/files",
        headers={"Origin": "https://attacker.example"},
        data={"purpose": "assistants"},
        files={"file": ("payload.txt", b"planted")},
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "origin_not_allowed"
    assert httpx.get(f"{server.base_url}/files").json()["data"] == before
    # Sandboxed pages and file:// send "null".
    r = httpx.get(f"{server.base_url}/containers", headers={"Origin": "null"})
    assert r.status_code == 403


def test_a_page_served_from_this_machine_may_call(server: LocalboxServer) -> None:
    r = httpx.get(f"{server.base_url}/containers", headers={"Origin": "http://localhost:3000"})
    assert r.status_code == 200


def test_allowed_hosts_add_names(tmp_path: Path) -> None:
    with serving(tmp_path / "data", {"LOCALBOX_ALLOWED_HOSTS": "box.internal, Other.Lan"}) as s:
        for host in ("box.internal", "box.internal:8000", "other.lan"):
            assert httpx.get(f"{s.url}/health", headers={"Host": host}).status_code == 200
        origin = {"Origin": "http://box.internal:8000"}
        assert httpx.get(f"{s.base_url}/containers", headers=origin).status_code == 200
        assert httpx.get(f"{s.url}/health", headers={"Host": "evil.lan"}).status_code == 403


def test_with_keys_host_and_origin_do_not_matter(keyed_server: LocalboxServer) -> None:
    headers = {
        "Host": "localbox.example.com",
        "Origin": "https://app.example.com",
        "Authorization": f"Bearer {keyed_server.api_key}",
    }
    assert httpx.get(f"{keyed_server.base_url}/containers", headers=headers).status_code == 200
    del headers["Authorization"]
    assert httpx.get(f"{keyed_server.base_url}/containers", headers=headers).status_code == 401
