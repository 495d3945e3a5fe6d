"""openai-python, sync and async: the whole container-and-files workflow in one go, and every
error surfacing as the SDK's own exception class with the server's message."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest

from tests.conftest import LocalboxServer


def test_sync_workflow(keyed_server: LocalboxServer, tmp_path: Path) -> None:
    with openai.OpenAI(base_url=keyed_server.base_url, api_key="sk-test", max_retries=0) as client:
        c = client.containers.create(
            name="py-sync",
            expires_after={"anchor": "last_active_at", "minutes": 30},
            memory_limit="4g",
        )
        assert (c.expires_after and c.expires_after.minutes, c.memory_limit) == (30, "4g")
        assert c.id in [x.id for x in client.containers.list(limit=1)]  # auto-paging

        src = tmp_path / "from-path.csv"
        src.write_bytes(b"p,q\n")
        by_path = client.containers.files.create(c.id, file=src)
        by_bytes = client.containers.files.create(c.id, file=("from-bytes.bin", b"\x00\x01"))
        uploaded = client.files.create(file=("via-id.txt", b"by id"), purpose="assistants")
        by_id = client.containers.files.create(c.id, file_id=uploaded.id)
        paths = sorted(f.path for f in client.containers.files.list(c.id, limit=1))
        assert paths == [
            "/mnt/data/from-bytes.bin",
            "/mnt/data/from-path.csv",
            "/mnt/data/via-id.txt",
        ]

        content = client.containers.files.content.retrieve(by_bytes.id, container_id=c.id)
        assert content.read() == b"\x00\x01"
        out = tmp_path / "out.txt"
        client.containers.files.content.retrieve(by_id.id, container_id=c.id).write_to_file(out)
        assert out.read_bytes() == b"by id"

        client.containers.files.delete(by_path.id, container_id=c.id)
        client.containers.delete(c.id)
        assert client.files.delete(uploaded.id).deleted is True


def test_async_workflow(keyed_server: LocalboxServer) -> None:
    async def scenario() -> None:
        async with openai.AsyncOpenAI(
            base_url=keyed_server.base_url, api_key="sk-test", max_retries=0
        ) as client:
            c = await client.containers.create(
                name="py-async",
                expires_after={"anchor": "last_active_at", "minutes": 5},
                memory_limit="1g",
            )
            assert c.id in [x.id async for x in client.containers.list(limit=1)]
            f = await client.containers.files.create(c.id, file=("a.txt", b"async bytes"))
            assert [x.id async for x in client.containers.files.list(c.id, limit=1)] == [f.id]
            content = await client.containers.files.content.retrieve(f.id, container_id=c.id)
            assert content.read() == b"async bytes"
            await client.containers.files.delete(f.id, container_id=c.id)
            await client.containers.delete(c.id)
            with pytest.raises(openai.NotFoundError):
                await client.containers.retrieve(c.id)

    asyncio.run(scenario())


def test_errors_are_the_sdks_classes_with_the_servers_message(
    keyed_server: LocalboxServer,
) -> None:
    with openai.OpenAI(base_url=keyed_server.base_url, api_key="sk-test", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            client.containers.create(name="x", memory_limit="2g")  # type: ignore[arg-type]
        assert "memory_limit" in bad.value.message
        missing = "cntr_" + "e" * 48
        with pytest.raises(openai.NotFoundError) as nf:
            client.containers.retrieve(missing)
        assert f"No container found with id '{missing}'" in nf.value.message
        with pytest.raises(openai.NotFoundError) as nf_file:
            client.files.retrieve("file-nope")
        assert "No file found with id 'file-nope'" in nf_file.value.message
    with openai.OpenAI(base_url=keyed_server.base_url, api_key="sk-bad", max_retries=0) as bad_key:
        with pytest.raises(openai.AuthenticationError) as auth:
            bad_key.containers.list()
        assert "Incorrect API key provided" in auth.value.message
