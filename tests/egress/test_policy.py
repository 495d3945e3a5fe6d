"""The egress policy: exact host or subdomain, ports 80 and 443 unless listed, no IP addresses,
secrets swapped in for their own domain only, and policies found by the client's subnet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from localbox_egress.policy import (  # type: ignore[import-not-found]
    Policy,
    PolicyFile,
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


def test_a_policy_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "10.213.0.0_29.json"
    policy = PolicyFile(path)
    assert policy.current() is None
    path.write_text(json.dumps(POLICY))
    found = policy.current()
    assert found is not None
    assert found.container_id == "cntr_a"
    assert found.admits("::ffff:10.213.0.3")
    assert not found.admits("10.213.0.9")
    path.write_text("{half")
    assert policy.current() is None
    staged = tmp_path / "staged.json"
    staged.write_text(json.dumps({**POLICY, "container_id": "cntr_b"}))
    staged.replace(path)
    again = policy.current()
    assert again is not None
    assert again.container_id == "cntr_b"
    path.unlink()
    assert policy.current() is None
