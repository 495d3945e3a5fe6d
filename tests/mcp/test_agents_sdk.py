"""The OpenAI Agents SDK's MCPServerStreamableHttp against /mcp (its tools, without a model)."""

from __future__ import annotations

import asyncio

from agents.mcp import MCPServerStreamableHttp
from mcp_types import TextContent

from tests.conftest import LocalboxServer
from tests.mcp.test_streamable_http import TOOLS, container_in


def test_agents_sdk_lists_and_calls_the_tools(keyed_server: LocalboxServer) -> None:
    client = keyed_server.client(max_retries=0)

    async def run() -> str:
        async with MCPServerStreamableHttp(
            params={
                "url": f"{keyed_server.url}/mcp",
                "headers": {"Authorization": f"Bearer {keyed_server.api_key}"},
                "timeout": 60,
            },
            name="localbox",
            client_session_timeout_seconds=120,
        ) as mcp:
            tools = await mcp.list_tools()
            assert {t.name for t in tools} == TOOLS
            first = await mcp.call_tool("run_python", {"code": "total = sum(range(10))"})
            assert not first.is_error
            [block] = first.content
            assert isinstance(block, TextContent)
            assert "started this session's container" in block.text
            cid = container_in(block.text)
            second = await mcp.call_tool("run_python", {"code": "print(total)"})
            texts = [b.text for b in second.content if isinstance(b, TextContent)]
            assert "45" in "\n".join(texts)
            assert container_in(texts[0]) == cid
            listed = await mcp.call_tool("list_files", {"container_id": cid})
            assert not listed.is_error
            return cid

    cid = asyncio.run(run())
    assert client.containers.retrieve(cid).status == "running"
