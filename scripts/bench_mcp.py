"""Benchmark: round trip of run_python("print(1)") over MCP's Streamable HTTP at /mcp (the
session's own warm container), beside POST /v1/containers/{id}/exec on that same container,
in one run.

Starts its own localbox on a free port with a temporary data dir.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from pathlib import Path

import httpx
from mcp import Client
from mcp_types import TextContent

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_exec import describe
from benchlib import Row, p50, running_localbox


async def measure_mcp(url: str, n: int) -> tuple[list[float], str]:
    """(ms per run_python call, the session's container id)."""
    async with Client(url) as client:
        first = await client.call_tool("run_python", {"code": "print(1)"})
        text = "".join(b.text for b in first.content if isinstance(b, TextContent))
        found = re.search(r"cntr_[0-9a-f]+", text)
        assert not first.is_error, text
        assert found, text
        for _ in range(20):  # warm up, as the exec benchmark does
            await client.call_tool("run_python", {"code": "print(1)"})
        ms = []
        for _ in range(n):
            t0 = time.perf_counter()
            result = await client.call_tool("run_python", {"code": "print(1)"})
            ms.append((time.perf_counter() - t0) * 1000)
            assert not result.is_error
        return ms, found.group(0)


def measure(n: int) -> tuple[list[float], list[float]]:
    """(ms per run_python over MCP, ms per exec through the API) on one warm container."""
    with running_localbox({"LOCALBOX_WARM_POOL": "0"}) as (base, _):
        root = base.removesuffix("/v1")
        mcp, cid = asyncio.run(measure_mcp(f"{root}/mcp", n))
        url = f"{base}/containers/{cid}/exec"
        with httpx.Client(timeout=120) as http:
            for _ in range(20):
                http.post(url, json={"code": "print(1)"}).raise_for_status()
            api = []
            for _ in range(n):
                t0 = time.perf_counter()
                r = http.post(url, json={"code": "print(1)"})
                api.append((time.perf_counter() - t0) * 1000)
                assert r.json()["stdout"] == "1\n", r.text
            http.delete(f"{base}/containers/{cid}")
    return mcp, api


def rows(n: int = 200) -> list[Row]:
    mcp, api = measure(n)
    return [
        Row(
            'MCP run_python("print(1)"), Streamable HTTP',
            p50(mcp),
            "POST /v1/containers/{id}/exec",
            p50(api),
            "<= exec + 5 ms",
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=200, help="calls of each kind")
    args = parser.parse_args()
    mcp, api = measure(args.n)
    print(f"print(1) round trip on a warm container ({os.cpu_count()} cores)")
    print(describe('MCP run_python("print(1)") at /mcp', mcp))
    print(describe("POST /v1/containers/{id}/exec", api))


if __name__ == "__main__":
    main()
