"""Every validation problem is a 400 in OpenAI's shape, with param naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import LocalboxServer


def _bad_create(client: openai.OpenAI, **body: Any) -> openai.BadRequestError:
    name = body.pop("name", "bad")
    with pytest.raises(openai.BadRequestError) as info:
        client.containers.create(name=name, **body)
    err = info.value
    assert err.status_code == 400
    assert isinstance(err.body, dict)
    assert set(err.body) == {"message", "type", "param", "code"}
    assert err.body["type"] == "invalid_request_error"
    return err


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"expires_after": {"anchor": "last_active_at", "minutes": 0}}, "expires_after.minutes"),
        ({"expires_after": {"anchor": "last_active_at", "minutes": -5}}, "expires_after.minutes"),
        ({"expires_after": {"anchor": "created_at", "minutes": 5}}, "expires_after.anchor"),
        ({"expires_after": {"minutes": 5}}, "expires_after.anchor"),
        ({"expires_after": {"anchor": "last_active_at"}}, "expires_after.minutes"),
        (
            {"expires_after": {"anchor": "last_active_at", "minutes": "ten"}},
            "expires_after.minutes",
        ),
        ({"memory_limit": "2g"}, "memory_limit"),
        ({"network_policy": {"type": "open"}}, "network_policy"),
        ({"name": ""}, "name"),
    ],
)
def test_create_rejects_bad_fields(client: openai.OpenAI, body: dict[str, Any], param: str) -> None:
    err = _bad_create(client, **body)
    assert err.body is not None
    assert err.param is not None
    assert err.param.startswith(param)
    assert param.split(".")[-1] in err.message


def test_minutes_above_the_configured_maximum(client: openai.OpenAI) -> None:
    err = _bad_create(client, expires_after={"anchor": "last_active_at", "minutes": 10**7})
    assert err.param == "expires_after.minutes"


def test_missing_name_and_bad_json(server: LocalboxServer) -> None:
    r = httpx.post(f"{server.base_url}/containers", json={"memory_limit": "1g"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "name"
    r = httpx.post(
        f"{server.base_url}/containers",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] is None  # not the parser's offset
    assert "not valid JSON" in error["message"]


@pytest.mark.parametrize("headers", [{}, {"content-type": "application/json"}])
def test_no_body_at_all_names_the_missing_field(
    server: LocalboxServer, headers: dict[str, str]
) -> None:
    r = httpx.post(f"{server.base_url}/containers", headers=headers)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "name"
    assert error["message"] == "Missing required parameter: 'name'."


def test_network_policy_null_is_refused(client: openai.OpenAI) -> None:
    err = _bad_create(client, extra_body={"network_policy": None})
    assert err.param == "network_policy"
    assert "null" in err.message


@pytest.mark.parametrize("limit", [0, 101, "abc", -1])
def test_list_rejects_bad_limit(client: openai.OpenAI, limit: Any) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.containers.list(limit=limit)
    assert info.value.param == "limit"


def test_list_rejects_bad_order_and_unknown_cursor(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.containers.list(order="sideways")  # type: ignore[arg-type]
    assert info.value.param == "order"
    with pytest.raises(openai.BadRequestError) as info:
        client.containers.list(after="cntr_" + "0" * 48)
    assert info.value.param == "after"
    with pytest.raises(openai.BadRequestError) as info:
        client.containers.list(extra_query={"before": "cntr_missing"})
    assert info.value.param == "before"


def test_unknown_container_is_404_for_every_verb(client: openai.OpenAI) -> None:
    missing = "cntr_" + "f" * 48
    with pytest.raises(openai.NotFoundError) as info:
        client.containers.retrieve(missing)
    assert info.value.status_code == 404
    assert missing in info.value.message
    assert isinstance(info.value.body, dict)
    assert info.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        client.containers.delete(missing)
