"""Create, retrieve, list and delete containers through the official openai SDK."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import openai
import pytest

from tests.conftest import LocalboxServer

ID = re.compile(r"^cntr_[0-9a-f]{48}$")


def test_create_returns_every_field_with_defaults(client: openai.OpenAI) -> None:
    before = int(time.time())
    c = client.containers.create(name="defaults")
    assert ID.match(c.id)
    assert c.object == "container"
    assert c.name == "defaults"
    assert c.status == "running"
    assert before <= c.created_at <= int(time.time())
    assert c.last_active_at == c.created_at
    assert c.expires_after is not None
    assert c.expires_after.anchor == "last_active_at"
    assert c.expires_after.minutes == 20
    assert c.memory_limit == "1g"
    assert c.network_policy is not None
    assert c.network_policy.type == "disabled"
    client.containers.delete(c.id)


def test_create_with_options_retrieve_and_delete(client: openai.OpenAI) -> None:
    c = client.containers.create(
        name="opts",
        expires_after={"anchor": "last_active_at", "minutes": 45},
        memory_limit="4g",
        network_policy={"type": "disabled"},
    )
    assert c.expires_after is not None
    assert c.expires_after.minutes == 45
    assert c.memory_limit == "4g"

    got = client.containers.retrieve(c.id)
    assert got.id == c.id
    assert got.name == "opts"
    assert got.memory_limit == "4g"

    deleted = client.containers.delete(c.id)
    assert deleted is None  # the SDK returns None; check the wire body below
    with pytest.raises(openai.NotFoundError):
        client.containers.retrieve(c.id)


def test_delete_body_is_openai_shaped(server: LocalboxServer, client: openai.OpenAI) -> None:
    c = client.containers.create(name="delete-body")
    r = httpx.delete(f"{server.base_url}/containers/{c.id}")
    assert r.status_code == 200
    assert r.json() == {"id": c.id, "object": "container.deleted", "deleted": True}
    again = httpx.delete(f"{server.base_url}/containers/{c.id}")
    assert again.status_code == 404
    assert again.json()["error"]["type"] == "invalid_request_error"


def test_unknown_fields_and_get_with_json_body_are_served(client: openai.OpenAI) -> None:
    c = client.containers.create(name="litellm-style", extra_body={"custom_llm_provider": "openai"})
    got = client.containers.retrieve(c.id, extra_body={"custom_llm_provider": "openai"})
    assert got.id == c.id
    listed = client.containers.list(
        name="litellm-style",
        extra_query={"custom_llm_provider": "openai"},
        extra_body={"custom_llm_provider": "openai"},
    )
    assert [x.id for x in listed.data] == [c.id]
    client.containers.delete(c.id, extra_body={"custom_llm_provider": "openai"})


def test_retrieve_refreshes_last_active_at(client: openai.OpenAI) -> None:
    c = client.containers.create(name="touch")
    time.sleep(1.1)
    got = client.containers.retrieve(c.id)
    assert got.last_active_at > c.last_active_at
    listed = client.containers.list(name="touch")
    assert listed.data[0].last_active_at == got.last_active_at
    client.containers.delete(c.id)


def test_async_client_full_cycle(server: LocalboxServer) -> None:
    async def scenario() -> None:
        async with server.async_client(max_retries=0) as aclient:
            c = await aclient.containers.create(name="async", memory_limit="1g")
            got = await aclient.containers.retrieve(c.id)
            assert got.id == c.id
            ids = [x.id async for x in aclient.containers.list(name="async")]
            assert ids == [c.id]
            await aclient.containers.delete(c.id)
            with pytest.raises(openai.NotFoundError):
                await aclient.containers.retrieve(c.id)

    asyncio.run(scenario())


def test_every_response_has_a_request_id(server: LocalboxServer, client: openai.OpenAI) -> None:
    raw = client.containers.with_raw_response.list(limit=1)
    assert raw.headers["x-request-id"].startswith("req_")
    missing = httpx.get(f"{server.base_url}/containers/cntr_nope")
    assert missing.headers["x-request-id"].startswith("req_")
    unknown_route = httpx.get(f"{server.base_url}/nowhere")
    assert unknown_route.status_code == 404
    assert unknown_route.headers["x-request-id"].startswith("req_")
    assert set(unknown_route.json()["error"]) == {"message", "type", "param", "code"}
