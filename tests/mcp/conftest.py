"""MCP clients (the official SDK's) pointed at real localbox servers."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from tests.conftest import ROOT, LocalboxServer


@asynccontextmanager
async def http_client(
    server: LocalboxServer, api_key: str | None = None, **options: Any
) -> AsyncIterator[Client]:
    """An SDK client over Streamable HTTP at the server's /mcp (its key unless one is given)."""
    key = server.api_key if api_key is None else api_key
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(120.0)) as http,
        Client(streamable_http_client(f"{server.url}/mcp", http_client=http), **options) as c,
    ):
        yield c


@asynccontextmanager
async def stdio_client(server: LocalboxServer, **env: str) -> AsyncIterator[Client]:
    """An SDK client of `python -m server.mcp`, which calls the server's HTTP API."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "server.mcp"],
        cwd=ROOT,
        env={"LOCALBOX_URL": server.url, "LOCALBOX_API_KEY": server.api_key, **env},
    )
    async with Client(params) as c:
        yield c


def text_of(result: CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))
