"""The LiteLLM SDK against localbox, sync and async; run by tests/clients/test_litellm.py
with the LiteLLM virtualenv's python. Prints one line per completed workflow."""

from __future__ import annotations

import asyncio
import os

import litellm
import litellm.containers as lc

BASE = os.environ["LOCALBOX_BASE_URL"]
KEY = os.environ["LOCALBOX_API_KEY"]
AUTH = {"api_base": BASE, "api_key": KEY, "custom_llm_provider": "openai"}


def sync_workflow() -> None:
    # As in LiteLLM's own documentation, with only api_base/api_key added.
    container = litellm.create_container(
        name="My Code Interpreter Container",
        expires_after={"anchor": "last_active_at", "minutes": 20},
        **AUTH,
    )
    assert container.id.startswith("cntr_"), container
    containers = litellm.list_containers(limit=20, order="desc", **AUTH)
    assert container.id in [c.id for c in containers.data]
    got = litellm.retrieve_container(container_id=container.id, **AUTH)
    assert got.name == "My Code Interpreter Container"
    assert got.status == "running"

    uploaded = litellm.upload_container_file(
        container_id=container.id, file=("data.csv", b"a,b\n1,2\n", "text/csv"), **AUTH
    )
    assert uploaded.path == "/mnt/data/data.csv", uploaded
    files = litellm.list_container_files(container_id=container.id, **AUTH)
    assert [f.id for f in files.data] == [uploaded.id]
    assert files.data[0].source == "user"
    one = lc.retrieve_container_file(container_id=container.id, file_id=uploaded.id, **AUTH)
    assert one.bytes == 8
    content = lc.retrieve_container_file_content(
        container_id=container.id, file_id=uploaded.id, **AUTH
    )
    assert content == b"a,b\n1,2\n", content
    deleted_file = lc.delete_container_file(container_id=container.id, file_id=uploaded.id, **AUTH)
    assert deleted_file.deleted is True
    result = litellm.delete_container(container_id=container.id, **AUTH)
    assert result.deleted is True
    assert result.id == container.id
    print("sync workflow ok")


async def async_workflow() -> None:
    container = await litellm.acreate_container(
        name="async container",
        expires_after={"anchor": "last_active_at", "minutes": 20},
        **AUTH,
    )
    containers = await litellm.alist_containers(limit=20, order="desc", **AUTH)
    assert container.id in [c.id for c in containers.data]
    got = await litellm.aretrieve_container(container_id=container.id, **AUTH)
    assert got.id == container.id
    uploaded = await litellm.aupload_container_file(
        container_id=container.id, file=("notes.txt", b"hello"), **AUTH
    )
    files = await litellm.alist_container_files(container_id=container.id, **AUTH)
    assert [f.path for f in files.data] == ["/mnt/data/notes.txt"]
    one = await lc.aretrieve_container_file(container_id=container.id, file_id=uploaded.id, **AUTH)
    assert one.source == "user"
    content = await lc.aretrieve_container_file_content(
        container_id=container.id, file_id=uploaded.id, **AUTH
    )
    assert content == b"hello", content
    await lc.adelete_container_file(container_id=container.id, file_id=uploaded.id, **AUTH)
    result = await litellm.adelete_container(container_id=container.id, **AUTH)
    assert result.deleted is True
    print("async workflow ok")


if __name__ == "__main__":
    sync_workflow()
    asyncio.run(async_workflow())
