"""The MCP door at /mcp, through the official SDK's client over Streamable HTTP."""

from __future__ import annotations

import asyncio
import base64
import re

import httpx
import pytest
from mcp import Client
from mcp_types import (
    BlobResourceContents,
    EmbeddedResource,
    ImageContent,
    TextResourceContents,
)

from tests.api.test_metrics import scrape
from tests.conftest import LocalboxServer
from tests.mcp.conftest import http_client, text_of

TOOLS = {
    "run_python",
    "run_shell",
    "create_container",
    "list_containers",
    "delete_container",
    "list_files",
    "read_file",
    "write_file",
}
MISSING = "cntr_" + "0" * 48
PNG = b"\x89PNG\r\n\x1a\n"


def container_in(text: str) -> str:
    found = re.search(r"cntr_[0-9a-f]+", text)
    assert found, text
    return found.group(0)


def api_message(server: LocalboxServer, path: str) -> str:
    r = httpx.get(f"{server.base_url}{path}")
    assert r.status_code >= 400, r.text
    message: str = r.json()["error"]["message"]
    return message


def test_lists_the_tools_with_schemas_and_the_file_template(server: LocalboxServer) -> None:
    async def run() -> None:
        async with http_client(server) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert set(tools) == TOOLS
            for tool in tools.values():
                assert len(tool.description or "") > 40, tool.name
                assert tool.input_schema["type"] == "object"
            run_python = tools["run_python"].input_schema
            assert run_python["required"] == ["code"]
            assert {"code", "container_id", "timeout"} <= set(run_python["properties"])
            assert tools["run_shell"].input_schema["required"] == ["command"]
            write = tools["write_file"].input_schema
            assert set(write["required"]) == {"container_id", "path", "content"}
            assert "base64" in str(write["properties"]["encoding"])
            templates = (await c.list_resource_templates()).resource_templates
            assert [t.uri_template for t in templates] == [
                "localbox://containers/{container_id}/files/{+path}"
            ]

    asyncio.run(run())


def test_run_python_keeps_state_in_the_sessions_container(server: LocalboxServer) -> None:
    client = server.client(max_retries=0)

    async def run() -> tuple[str, str]:
        async with http_client(server) as c:
            first = await c.call_tool("run_python", {"code": "x = 41"})
            assert not first.is_error, text_of(first)
            assert "started this session's container" in text_of(first)
            own = container_in(text_of(first))
            second = await c.call_tool("run_python", {"code": "print(x + 1)"})
            assert not second.is_error, text_of(second)
            assert "42" in text_of(second)
            assert container_in(text_of(second)) == own
            shell = await c.call_tool("run_shell", {"command": "pwd"})
            assert "/mnt/data" in text_of(shell)
            assert container_in(text_of(shell)) == own
        async with http_client(server) as other:
            elsewhere = await other.call_tool("run_python", {"code": "print(x)"})
            assert elsewhere.is_error  # another session, another container
            assert "NameError" in text_of(elsewhere)
            return own, container_in(text_of(elsewhere))

    own, other = asyncio.run(run())
    assert own != other
    # Ordinary containers: the API lists them, and they were active just now.
    listed = {c.id: c for c in client.containers.list(limit=100)}
    assert listed[own].status == "running"
    assert listed[own].name == "mcp-session"
    assert other in listed


def test_a_figure_comes_back_as_image_content(server: LocalboxServer) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()\nprint('drawn')"

    async def run() -> None:
        async with http_client(server) as c:
            result = await c.call_tool("run_python", {"code": code})
            assert not result.is_error, text_of(result)
            assert "drawn" in text_of(result)
            images = [b for b in result.content if isinstance(b, ImageContent)]
            assert len(images) == 1
            assert images[0].mime_type == "image/png"
            assert base64.b64decode(images[0].data).startswith(PNG)

    asyncio.run(run())


def test_files_written_by_one_tool_are_read_by_another_and_by_the_api(
    server: LocalboxServer,
) -> None:
    client = server.client(max_retries=0)

    async def run() -> str:
        async with http_client(server) as c:
            created = await c.call_tool("create_container", {"name": "mcp-files"})
            assert not created.is_error, text_of(created)
            cid = container_in(text_of(created))
            wrote = await c.call_tool(
                "write_file", {"container_id": cid, "path": "notes.txt", "content": "héllo\n"}
            )
            assert not wrote.is_error, text_of(wrote)
            shell = await c.call_tool(
                "run_shell",
                {
                    "container_id": cid,
                    "command": "mkdir -p out && tr a-z A-Z < notes.txt > out/upper.txt && "
                    "head -c 300 /dev/urandom > out/noise.bin",
                },
            )
            assert not shell.is_error, text_of(shell)
            assert "[exit code 0]" in text_of(shell)
            upper = await c.call_tool(
                "read_file", {"container_id": cid, "path": "/mnt/data/out/upper.txt"}
            )
            assert text_of(upper) == "HéLLO\n"
            noise = await c.call_tool("read_file", {"container_id": cid, "path": "out/noise.bin"})
            [embedded] = noise.content
            assert isinstance(embedded, EmbeddedResource)
            assert isinstance(embedded.resource, BlobResourceContents)
            assert embedded.resource.mime_type == "application/octet-stream"
            assert len(base64.b64decode(embedded.resource.blob)) == 300
            png = base64.b64encode(PNG + b"\0" * 16).decode()
            await c.call_tool(
                "write_file",
                {"container_id": cid, "path": "dot.png", "content": png, "encoding": "base64"},
            )
            image = await c.call_tool("read_file", {"container_id": cid, "path": "dot.png"})
            [block] = image.content
            assert isinstance(block, ImageContent)
            assert block.mime_type == "image/png"
            assert base64.b64decode(block.data).startswith(PNG)
            listing = text_of(await c.call_tool("list_files", {"container_id": cid}))
            for path in ("notes.txt", "out/upper.txt", "out/noise.bin", "dot.png"):
                assert f"/mnt/data/{path}\t" in listing
            under = text_of(await c.call_tool("list_files", {"container_id": cid, "path": "out"}))
            assert "upper.txt" in under
            assert "notes.txt" not in under
            resource = await c.read_resource(f"localbox://containers/{cid}/files/out/upper.txt")
            [contents] = resource.contents
            assert isinstance(contents, TextResourceContents)
            assert contents.text == "HéLLO\n"
            assert contents.mime_type == "text/plain"
            return cid

    cid = asyncio.run(run())
    paths = {f.path for f in client.containers.files.list(cid)}
    assert {"/mnt/data/notes.txt", "/mnt/data/out/upper.txt", "/mnt/data/dot.png"} <= paths
    [notes] = [f for f in client.containers.files.list(cid) if f.path.endswith("notes.txt")]
    content = client.containers.files.content.retrieve(notes.id, container_id=cid).read()
    assert content == "héllo\n".encode()


def test_a_failing_tool_is_an_error_result_and_the_session_goes_on(
    server: LocalboxServer,
) -> None:
    missing = api_message(server, f"/containers/{MISSING}")

    async def run() -> None:
        async with http_client(server) as c:
            unknown = await c.call_tool("run_python", {"code": "1", "container_id": MISSING})
            assert unknown.is_error
            assert text_of(unknown) == missing
            gone = await c.call_tool("list_files", {"container_id": MISSING})
            assert gone.is_error
            assert text_of(gone) == missing
            slow = await c.call_tool(
                "run_python", {"code": "import time\ntime.sleep(30)", "timeout": 1}
            )
            assert slow.is_error
            assert "ran out of time" in text_of(slow)
            cid = container_in(text_of(slow))
            big = await c.call_tool("run_shell", {"command": "head -c 2000000 /dev/zero > big.bin"})
            assert not big.is_error, text_of(big)
            refused = await c.call_tool("read_file", {"container_id": cid, "path": "big.bin"})
            assert refused.is_error
            message = text_of(refused)
            assert "2000000 bytes" in message
            assert re.search(rf"/v1/containers/{cid}/files/cfile_[0-9a-f]+/content", message)
            outside = await c.call_tool("read_file", {"container_id": cid, "path": "/etc/passwd"})
            assert outside.is_error
            assert "outside /mnt/data" in text_of(outside)
            failing = await c.call_tool("run_shell", {"command": "exit 3"})
            assert failing.is_error
            assert "[exit code 3]" in text_of(failing)
            # The session is intact: its container and state are still there.
            after = await c.call_tool("run_python", {"code": "print('still here')"})
            assert not after.is_error, text_of(after)
            assert "still here" in text_of(after)
            assert container_in(text_of(after)) == cid

    asyncio.run(run())


def test_create_list_and_delete_containers(server: LocalboxServer) -> None:
    client = server.client(max_retries=0)

    async def run() -> None:
        async with http_client(server) as c:
            made = await c.call_tool("create_container", {"name": "mcp-made", "memory_limit": "4g"})
            cid = container_in(text_of(made))
            assert "memory 4g" in text_of(made)
            assert client.containers.retrieve(cid).memory_limit == "4g"
            listed = text_of(await c.call_tool("list_containers", {}))
            assert f"{cid} (mcp-made): running" in listed
            bad = await c.call_tool("create_container", {"memory_limit": "3g"})
            assert bad.is_error
            deleted = await c.call_tool("delete_container", {"container_id": cid})
            assert not deleted.is_error, text_of(deleted)
            again = await c.call_tool("delete_container", {"container_id": cid})
            assert again.is_error
            assert text_of(again) == api_message(server, f"/containers/{cid}")

    asyncio.run(run())


def test_a_client_of_the_sessionless_era_names_its_container(server: LocalboxServer) -> None:
    async def run() -> None:
        async with http_client(server, mode="2026-07-28") as c:
            first = await c.call_tool("run_python", {"code": "z = 7"})
            assert not first.is_error, text_of(first)
            assert "no MCP session" in text_of(first)
            cid = container_in(text_of(first))
            second = await c.call_tool("run_python", {"code": "print(z * 6)", "container_id": cid})
            assert "42" in text_of(second)

    asyncio.run(run())


def test_metrics_count_tool_calls_by_tool_and_outcome(server: LocalboxServer) -> None:
    before = scrape(server)

    async def run() -> None:
        async with http_client(server) as c:
            await c.call_tool("run_python", {"code": "1 + 1"})
            await c.call_tool("run_python", {"code": "1", "container_id": MISSING})
            await c.call_tool("list_containers", {})

    asyncio.run(run())
    after = scrape(server)

    def grew(tool: str, outcome: str) -> float:
        name = f'localbox_mcp_tool_calls_total{{outcome="{outcome}",tool="{tool}"}}'
        return after[name] - before[name]

    assert grew("run_python", "ok") == 1
    assert grew("run_python", "error") == 1
    assert grew("list_containers", "ok") == 1
    assert grew("write_file", "ok") == 0
    assert after['localbox_http_responses_total{method="POST",route="/mcp",status="200"}'] > 0


def test_mcp_demands_the_api_key_on_a_keyed_server(keyed_server: LocalboxServer) -> None:
    r = httpx.post(f"{keyed_server.url}/mcp", json={})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    no_key = httpx.get(f"{keyed_server.base_url}/containers")
    assert r.json() == no_key.json()
    wrong = httpx.post(f"{keyed_server.url}/mcp", json={}, headers={"authorization": "Bearer no"})
    assert wrong.status_code == 401

    async def refused() -> None:
        async with http_client(keyed_server, api_key="") as c:
            await c.list_tools()

    with pytest.raises(Exception):  # noqa: B017, PT011 (the SDK's own error, whichever it is)
        asyncio.run(refused())

    async def accepted() -> None:
        async with http_client(keyed_server, api_key="sk-other") as c:
            assert {t.name for t in (await c.list_tools()).tools} == TOOLS

    asyncio.run(accepted())


def test_without_keys_mcp_answers_only_this_machine(server: LocalboxServer) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    origin = httpx.post(f"{server.url}/mcp", json=body, headers={"origin": "https://evil.example"})
    assert origin.status_code == 403
    assert origin.json()["error"]["code"] == "origin_not_allowed"
    host = httpx.post(f"{server.url}/mcp", json=body, headers={"host": "evil.example"})
    assert host.status_code == 403
    assert host.json()["error"]["code"] == "host_not_allowed"


def test_a_client_in_auto_mode_gets_a_session(server: LocalboxServer) -> None:
    async def run() -> None:
        async with http_client(server) as c:
            assert isinstance(c, Client)
            assert c.protocol_version == "2025-11-25"

    asyncio.run(run())
