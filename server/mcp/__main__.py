"""`python -m server.mcp`: localbox's MCP tools over stdio, calling a running localbox's HTTP
API (LOCALBOX_URL, LOCALBOX_API_KEY) rather than starting a server of its own."""

from __future__ import annotations

import logging
import sys

import anyio
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.config import Size
from server.mcp.http_backend import HttpBackend
from server.mcp.tools import Tools, build_server

STDIO_SESSION = "stdio"
"""The session key of the process: one stdio process is one session, with one container."""


class StdioSettings(BaseSettings):
    """Read once at start: where localbox is, and the key to call it with."""

    model_config = SettingsConfigDict(env_prefix="LOCALBOX_", extra="ignore")

    url: str = "http://127.0.0.1:8000"
    api_key: str = ""
    mcp_max_read_bytes: Size = Field(default=1 << 20, ge=1024)


async def serve(settings: StdioSettings) -> None:
    backend = HttpBackend(settings.url, settings.api_key)
    tools = Tools(backend, max_read_bytes=settings.mcp_max_read_bytes, fixed_session=STDIO_SESSION)
    try:
        await build_server(tools).run_stdio_async()
    finally:
        await backend.aclose()


def main() -> None:
    # stdout carries the protocol: logs go to stderr.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    anyio.run(serve, StdioSettings())


if __name__ == "__main__":
    main()
