"""The egress policy: exact host or subdomain, ports 80 and 443 unless listed, no IP addresses,
secrets swapped in for their own domain only, and policies found by the client's subnet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from localbox_egress.policy import (  # type: ignore[import-not-found]
    Policy,
    PolicyStore,
    substitute_header,
    substitute_path,
)

POLICY = {
    "container_id": "cntr_a",
    "subnet": "10.213.0.0/29",
    "allowed_domains": ["example.com", "api.other.org:8443"],
    "secrets": [{"domain": "api.other.org", "placeholder": "PH-1", "value": "s3cret&x=1"}],
}


@pytest.mark.parametrize(
    ("host", "port", "refused"),
    [
        ("example.com", 443, None),
        ("API.Example.com.", 80, None),
        ("badexample.com", 443, "badexample.com is not on this container's allowlist"),
        ("example.com.evil.net", 443, "is not on this container's allowlist"),
        ("example.com", 8080, "port 8080 of example.com"),
        ("api.other.org", 8443, None),
        ("other.org", 443, "other.org is not on"),
        ("93.184.215.14", 80, "is an IP address"),
        ("[::1]", 443, "is an IP address"),
        ("127.1", 80, "is an IP address"),
        ("172.24.1", 18999, "is an IP address"),
        ("2130706433", 443, "is an IP address"),
        ("0x7f.1", 443, "is an IP address"),
        ("0177.0.0.1", 443, "is an IP address"),
        ("", 80, "without a host"),
    ],
)
def test_refusal(host: str, port: int, refused: str | None) -> None:
    reason = Policy.from_json(POLICY).refusal(host, port)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None
        assert refused in reason


def test_secrets_are_for_their_domain_only() -> None:
    policy = Policy.from_json(POLICY)
    assert policy.secrets_for("example.com") == []
    secrets = policy.secrets_for("v1.api.other.org")
    assert substitute_header("Bearer PH-1", secrets) == "Bearer s3cret&x=1"
    assert substitute_path("/p/PH-1?k=PH-1&j=2", secrets) == "/p/PH-1?k=s3cret%26x%3D1&j=2"
    assert substitute_path("/PH-1", secrets) == "/PH-1"


def test_store_finds_policies_by_subnet_and_rereads_on_change(tmp_path: Path) -> None:
    store = PolicyStore(tmp_path)
    assert store.lookup("10.213.0.3") is None
    (tmp_path / "10.213.0.0_29.json").write_text(json.dumps(POLICY))
    found = store.lookup("::ffff:10.213.0.3")
    assert found is not None
    assert found.container_id == "cntr_a"
    assert store.lookup("10.213.0.9") is None
    (tmp_path / "10.213.0.0_29.json").unlink()
    (tmp_path / "10.213.0.8_29.json").write_text("{half")
    assert store.lookup("10.213.0.3") is None
    (tmp_path / "10.213.0.8_29.json").write_text(
        json.dumps({**POLICY, "container_id": "cntr_b", "subnet": "10.213.0.8/29"})
    )
    again = store.lookup("10.213.0.10")
    assert again is not None
    assert again.container_id == "cntr_b"
