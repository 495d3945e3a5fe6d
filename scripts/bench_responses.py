"""Benchmark: localbox's own overhead in the Responses tool loop, with a scripted upstream
that answers at once, beside direct calls of that upstream in the same run.

- per tool round: a turn of K python rounds in one container, less a turn of none, per
  round, less one upstream request (measured directly) and one run of the code (measured
  through POST /v1/containers/{id}/exec, so the exec path's own milliseconds count as the
  code's);
- first stream byte: from the request to the first byte of the SSE answer, against the
  upstream's own first streamed byte measured directly.

Starts its own localbox and upstream on free ports.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import Row, p50, running_localbox

from tests.responses.scripted_upstream import ScriptedUpstream, ToolCall, Turn

CODE = "x = 1"
TOOLS = [{"type": "code_interpreter", "container": {"type": "auto"}}]


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def delete_all_containers(http: httpx.Client, base: str) -> None:
    """Sandboxes outlive their server: the benchmark's own go with it."""
    while ids := [c["id"] for c in http.get(f"{base}/containers?limit=100").json()["data"]]:
        for cid in ids:
            http.delete(f"{base}/containers/{cid}")


def direct_upstream(http: httpx.Client, upstream: ScriptedUpstream, n: int) -> tuple[float, float]:
    """(p50 of a whole streamed chat request, p50 of its first byte), straight to the upstream."""
    whole, first = [], []
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    for _ in range(n):
        upstream.script(Turn(text="done"))
        t0 = time.perf_counter()
        with http.stream("POST", f"{upstream.base_url}/chat/completions", json=body) as r:
            chunks = r.iter_raw()
            next(chunks)
            first.append(_ms(t0))
            for _ in chunks:
                pass
        whole.append(_ms(t0))
    return p50(whole), p50(first)


def turn(
    http: httpx.Client, base: str, upstream: ScriptedUpstream, rounds: int, container: str
) -> float:
    call = ToolCall("python", json.dumps({"code": CODE}))
    upstream.script(*[Turn(tool_calls=(call,)) for _ in range(rounds)], Turn(text="done"))
    tools = [{"type": "code_interpreter", "container": container}]
    body = {"model": "m", "input": "go", "tools": tools, "store": False}
    t0 = time.perf_counter()
    r = http.post(f"{base}/responses", json=body)
    elapsed = _ms(t0)
    assert r.status_code == 200, r.text
    assert len(r.json()["output"]) == rounds + 1, r.text
    return elapsed


def first_byte(http: httpx.Client, base: str, upstream: ScriptedUpstream, tools: bool) -> float:
    upstream.script(Turn(text="done"))
    body = {"model": "m", "input": "go", "stream": True, "store": False}
    if tools:
        body["tools"] = TOOLS
    t0 = time.perf_counter()
    with http.stream("POST", f"{base}/responses", json=body) as r:
        chunks = r.iter_raw()
        next(chunks)
        elapsed = _ms(t0)
        for _ in chunks:
            pass
    return elapsed


def rows(n: int = 30, rounds: int = 10) -> list[Row]:
    with ScriptedUpstream(chunk_size=1 << 20) as upstream:
        env = {
            "LOCALBOX_MODEL_BASE_URL": upstream.base_url,
            "LOCALBOX_WARM_POOL": "2",
            # Each turn makes an auto container, as OpenAI does: room for all of them.
            "LOCALBOX_MEMORY_BUDGET": "4t",
            "LOCALBOX_MAX_CONTAINERS": "1000",
        }
        with running_localbox(env) as (base, _), httpx.Client(timeout=120) as http:
            cid = http.post(f"{base}/containers", json={"name": "bench"}).json()["id"]
            exec_url = f"{base}/containers/{cid}/exec"
            for _ in range(10):
                http.post(exec_url, json={"code": CODE}).raise_for_status()
                turn(http, base, upstream, 1, cid)  # warm up both paths
            code = []
            for _ in range(n):
                t0 = time.perf_counter()
                http.post(exec_url, json={"code": CODE}).raise_for_status()
                code.append(_ms(t0))
            upstream_whole, upstream_first = direct_upstream(http, upstream, n)
            none = p50([turn(http, base, upstream, 0, cid) for _ in range(n)])
            many = p50([turn(http, base, upstream, rounds, cid) for _ in range(n)])
            per_round = (many - none) / rounds
            overhead = per_round - upstream_whole - p50(code)
            fb_plain = p50([first_byte(http, base, upstream, False) for _ in range(n)])
            fb_tools = p50([first_byte(http, base, upstream, True) for _ in range(n)])
            delete_all_containers(http, base)
    return [
        Row(
            "responses: one tool round, localbox's own share",
            overhead,
            "",
            None,
            "<= 5 ms",
        ),
        Row(
            f"responses: one tool round in all (turn of {rounds} rounds)",
            per_round,
            "upstream request + exec of the code, direct",
            upstream_whole + p50(code),
            "",
        ),
        Row(
            "responses: first stream byte, no tools",
            fb_plain,
            "the upstream's first byte, direct",
            upstream_first,
            "<= 20 ms + upstream",
        ),
        Row(
            "responses: first stream byte, code_interpreter auto",
            fb_tools,
            "the upstream's first byte, direct",
            upstream_first,
            "<= 20 ms + upstream",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    from benchlib import show

    show(rows(args.n, args.rounds))


if __name__ == "__main__":
    main()
