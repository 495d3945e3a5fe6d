"""`python -m server.mcp`: the same tools over stdio, calling a running localbox's HTTP API."""

from __future__ import annotations

import asyncio
import base64

import httpx
from mcp_types import ImageContent

from tests.conftest import LocalboxServer
from tests.mcp.conftest import stdio_client, text_of
from tests.mcp.test_streamable_http import MISSING, PNG, TOOLS, container_in


def test_stdio_serves_the_tools_through_the_http_api(keyed_server: LocalboxServer) -> None:
    client = keyed_server.client(max_retries=0)
    missing = httpx.get(
        f"{keyed_server.base_url}/containers/{MISSING}",
        headers={"authorization": f"Bearer {keyed_server.api_key}"},
    ).json()["error"]["message"]
    plot = "import matplotlib.pyplot as plt\nplt.plot([2, 1])\nplt.show()"

    async def run() -> str:
        async with stdio_client(keyed_server) as c:
            assert {t.name for t in (await c.list_tools()).tools} == TOOLS
            first = await c.call_tool("run_python", {"code": "n = 20"})
            assert not first.is_error, text_of(first)
            cid = container_in(text_of(first))
            second = await c.call_tool("run_python", {"code": "print(n + 22)"})
            assert "42" in text_of(second)
            assert container_in(text_of(second)) == cid
            figure = await c.call_tool("run_python", {"code": plot})
            images = [b for b in figure.content if isinstance(b, ImageContent)]
            assert base64.b64decode(images[0].data).startswith(PNG)
            wrote = await c.call_tool(
                "write_file", {"container_id": cid, "path": "/mnt/data/in.csv", "content": "a,b\n"}
            )
            assert not wrote.is_error, text_of(wrote)
            await c.call_tool("run_shell", {"command": "wc -c < in.csv > size.txt"})
            size = await c.call_tool("read_file", {"container_id": cid, "path": "size.txt"})
            assert text_of(size).strip() == "4"
            unknown = await c.call_tool("run_shell", {"command": "true", "container_id": MISSING})
            assert unknown.is_error
            assert text_of(unknown) == missing
            after = await c.call_tool("run_python", {"code": "print(n)"})
            assert "20" in text_of(after)
            return cid

    cid = asyncio.run(run())
    paths = {f.path for f in client.containers.files.list(cid)}
    assert {"/mnt/data/in.csv", "/mnt/data/size.txt"} <= paths


def test_stdio_without_the_key_answers_with_the_apis_refusal(
    keyed_server: LocalboxServer,
) -> None:
    refusal = httpx.get(f"{keyed_server.base_url}/containers").json()["error"]["message"]

    async def run() -> None:
        async with stdio_client(keyed_server, LOCALBOX_API_KEY="") as c:
            result = await c.call_tool("list_containers", {})
            assert result.is_error
            assert text_of(result) == refusal
            again = await c.call_tool("run_python", {"code": "1"})
            assert again.is_error
            assert text_of(again) == refusal

    asyncio.run(run())
