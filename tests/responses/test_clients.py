"""Real clients against localbox's /v1/responses, with the scripted upstream as the model:
the OpenAI Agents SDK, openai-node, LiteLLM as localbox's upstream (its proxy between
localbox and the model) and LiteLLM in front of localbox (its SDK, and its proxy driven by
the openai SDK). Every test runs its python tool call in a real sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from agents import (
    Agent,
    CodeInterpreterTool,
    ModelSettings,
    OpenAIResponsesModel,
    RawResponsesStreamEvent,
    RunItemStreamEvent,
    Runner,
    ToolCallItem,
    set_tracing_disabled,
)

from tests.clients.conftest import LITELLM_CLI, LITELLM_PY, MASTER_KEY, OFFLINE, PROXY_ENV, Proxy
from tests.conftest import ROOT, LocalboxServer, free_port, serving
from tests.responses.conftest import UPSTREAM_KEY
from tests.responses.scripted_upstream import Received, ScriptedUpstream, Step, ToolCall, Turn

CODE = "print(sum(i * i for i in range(1, 11)))"
ANSWER = "The sum of the squares is 385"
QUESTION = "What is the sum of the squares of 1 to 10? Use python."
CODE_INTERPRETER = {"type": "code_interpreter", "container": {"type": "auto"}}
NODE_DIR = ROOT / "tests" / "node"
LITELLM_PROXY_MODEL = "localbox-model"
"""The LiteLLM proxy's name for localbox's scripted-model (LiteLLM in front of localbox)."""


def python_round(code: str = CODE) -> tuple[Step, Step]:
    """The model calls python with ``code``, then answers quoting what the call printed (so a
    wrong or missing tool output shows in the answer)."""

    def answer(received: Received) -> Turn:
        outputs = received.tool_outputs()
        printed = outputs[-1].strip() if outputs else "<no tool output>"
        return Turn(text=f"The sum of the squares is {printed}")

    return Turn(tool_calls=(ToolCall("python", json.dumps({"code": code})),)), answer


def assert_python_offered_then_answered(received: list[Received]) -> None:
    """Two upstream requests: the first offers the python function, the second carries the
    sandbox's output of CODE."""
    assert len(received) == 2, [r.path for r in received]
    first, second = received
    names = [t.get("function", {}).get("name") for t in first.body.get("tools", [])]
    assert "python" in names, first.body.get("tools")
    assert [o.strip() for o in second.tool_outputs()] == ["385"]


# --- the OpenAI Agents SDK --------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _no_tracing() -> None:
    # The Agents SDK would otherwise send traces to OpenAI.
    set_tracing_disabled(True)


def agent_for(client: openai.AsyncOpenAI) -> Agent[Any]:
    return Agent(
        name="calculator",
        instructions="Answer with the help of python.",
        tools=[
            CodeInterpreterTool(
                tool_config={"type": "code_interpreter", "container": {"type": "auto"}}
            )
        ],
        model=OpenAIResponsesModel(model="scripted-model", openai_client=client),
        model_settings=ModelSettings(response_include=["code_interpreter_call.outputs"]),
    )


def assert_code_interpreter_run(new_items: list[Any], raw_responses: list[Any]) -> None:
    calls = [
        item.raw_item
        for item in new_items
        if isinstance(item, ToolCallItem) and item.raw_item.type == "code_interpreter_call"
    ]
    assert len(calls) == 1, new_items
    call = calls[0]
    assert call.code == CODE
    assert call.status == "completed"
    assert call.container_id.startswith("cntr_")
    assert [(o.type, getattr(o, "logs", None)) for o in call.outputs or []] == [("logs", "385\n")]
    assert [[o.type for o in r.output] for r in raw_responses] == [
        ["code_interpreter_call", "message"]
    ]


def test_agents_sdk_runner_run(
    responses_server: LocalboxServer, scripted: ScriptedUpstream
) -> None:
    scripted.script(*python_round())

    async def run() -> Any:
        async with responses_server.async_client(max_retries=0) as client:
            return await Runner.run(agent_for(client), QUESTION)

    result = asyncio.run(run())
    assert result.final_output == ANSWER
    assert_code_interpreter_run(result.new_items, result.raw_responses)
    assert_python_offered_then_answered(scripted.received)


def test_agents_sdk_runner_run_streamed(
    responses_server: LocalboxServer, scripted: ScriptedUpstream
) -> None:
    scripted.script(*python_round())

    async def run() -> tuple[Any, list[Any]]:
        async with responses_server.async_client(max_retries=0) as client:
            result = Runner.run_streamed(agent_for(client), QUESTION)
            events = [event async for event in result.stream_events()]
            return result, events

    result, events = asyncio.run(run())
    assert result.is_complete
    assert result.final_output == ANSWER
    assert_code_interpreter_run(result.new_items, result.raw_responses)
    raw = [e.data.type for e in events if isinstance(e, RawResponsesStreamEvent)]
    assert raw[0] == "response.created"
    assert raw[-1] == "response.completed"
    code = "".join(
        e.data.delta
        for e in events
        if isinstance(e, RawResponsesStreamEvent)
        and e.data.type == "response.code_interpreter_call_code.delta"
    )
    assert code == CODE
    text = "".join(
        e.data.delta
        for e in events
        if isinstance(e, RawResponsesStreamEvent) and e.data.type == "response.output_text.delta"
    )
    assert text == ANSWER
    named = [e.name for e in events if isinstance(e, RunItemStreamEvent)]
    assert named == ["tool_called", "message_output_created"]
    assert_python_offered_then_answered(scripted.received)


# --- openai-node ------------------------------------------------------------------------------


def node_counts(output: str) -> dict[str, int]:
    """The summary counts of Node's spec reporter (its "pass 2", "fail 0", ... lines)."""
    return {k: int(v) for k, v in re.findall(r"^\S* ?(tests|pass|fail) (\d+)$", output, re.M)}


def test_openai_node_responses(
    responses_server: LocalboxServer, scripted: ScriptedUpstream
) -> None:
    # The node tests make three calls, one after another: responses.stream, then
    # responses.create streamed and unstreamed. Each is one python round.
    scripted.script(*python_round(), *python_round(), *python_round())
    env = {
        **os.environ,
        "LOCALBOX_BASE_URL": responses_server.base_url,
        "LOCALBOX_API_KEY": responses_server.api_key,
        "SCRIPTED_CODE": CODE,
        "SCRIPTED_ANSWER": ANSWER,
    }
    proc = subprocess.run(
        ["node", "--test", "--test-reporter=spec", "responses.test.mjs"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert node_counts(proc.stdout) == {"tests": 2, "pass": 2, "fail": 0}, output
    assert len(scripted.received) == 6
    assert [[o.strip() for o in r.tool_outputs()] for r in scripted.received[1::2]] == [["385"]] * 3


# --- LiteLLM ----------------------------------------------------------------------------------


def proxy_config(upstream: ScriptedUpstream, localbox: LocalboxServer) -> str:
    """scripted-model: the scripted upstream through LiteLLM's openai provider (LiteLLM as
    localbox's upstream); localbox-model: localbox itself (LiteLLM in front of localbox)."""
    return f"""\
model_list:
  - model_name: scripted-model
    litellm_params:
      model: openai/scripted-model
      api_base: "{upstream.base_url}"
      api_key: "{UPSTREAM_KEY}"
  - model_name: {LITELLM_PROXY_MODEL}
    litellm_params:
      model: openai/scripted-model
      api_base: "{localbox.base_url}"
      api_key: "{localbox.api_key}"
"""


@pytest.fixture(scope="module")
def litellm_proxy(
    upstream: ScriptedUpstream,
    responses_server: LocalboxServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Proxy]:
    """The LiteLLM proxy, offline, serving the two models of proxy_config."""
    tmp = tmp_path_factory.mktemp("litellm-responses-proxy")
    config = tmp / "config.yaml"
    config.write_text(proxy_config(upstream, responses_server))
    log_path = tmp / "proxy.log"
    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(LITELLM_CLI), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **PROXY_ENV},
            stdout=log,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.25)
        yield Proxy(url, process)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def localbox_behind_litellm(
    litellm_proxy: Proxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalboxServer]:
    """A localbox whose upstream model is the LiteLLM proxy (with its master key)."""
    env = {
        "LOCALBOX_MODEL_BASE_URL": f"{litellm_proxy.url}/v1",
        "LOCALBOX_MODEL_API_KEY": MASTER_KEY,
        "LOCALBOX_MODEL_MAX_RETRIES": "0",
    }
    with serving(tmp_path_factory.mktemp("localbox-behind-litellm"), env) as server:
        yield server


def test_litellm_proxy_as_localbox_upstream(
    localbox_behind_litellm: LocalboxServer, scripted: ScriptedUpstream
) -> None:
    scripted.script(*python_round())
    with localbox_behind_litellm.client(max_retries=0) as client:
        resp = client.responses.create(
            model="scripted-model",
            input=QUESTION,
            tools=[CODE_INTERPRETER],
            include=["code_interpreter_call.outputs"],
        )
    assert resp.status == "completed"
    assert resp.output_text == ANSWER
    assert [item.type for item in resp.output] == ["code_interpreter_call", "message"]
    call = resp.output[0]
    assert call.type == "code_interpreter_call"
    assert call.code == CODE
    assert [(o.type, getattr(o, "logs", None)) for o in call.outputs or []] == [("logs", "385\n")]
    # Both model requests went through LiteLLM, which called the upstream with its own key
    # (the upstream refuses any other).
    assert_python_offered_then_answered(scripted.received)
    assert all(r.path == "/v1/chat/completions" for r in scripted.received)


def test_litellm_proxy_as_localbox_upstream_streamed(
    localbox_behind_litellm: LocalboxServer, scripted: ScriptedUpstream
) -> None:
    scripted.script(*python_round())
    with (
        localbox_behind_litellm.client(max_retries=0) as client,
        client.responses.stream(
            model="scripted-model",
            input=QUESTION,
            tools=[CODE_INTERPRETER],
            include=["code_interpreter_call.outputs"],
        ) as stream,
    ):
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert types[-1] == "response.completed"
    assert "response.code_interpreter_call_code.delta" in types
    assert final.output_text == ANSWER
    assert [item.type for item in final.output] == ["code_interpreter_call", "message"]
    assert_python_offered_then_answered(scripted.received)


def test_litellm_sdk_responses_in_front_of_localbox(
    responses_server: LocalboxServer, scripted: ScriptedUpstream
) -> None:
    # responses_workflow.py makes three calls: litellm.responses, then litellm.aresponses
    # unstreamed and streamed.
    scripted.script(*python_round(), *python_round(), *python_round())
    env = {
        **os.environ,
        **OFFLINE,
        "LOCALBOX_BASE_URL": responses_server.base_url,
        "LOCALBOX_API_KEY": responses_server.api_key,
        "SCRIPTED_CODE": CODE,
        "SCRIPTED_ANSWER": ANSWER,
    }
    proc = subprocess.run(
        [str(LITELLM_PY), str(ROOT / "tests" / "litellm" / "responses_workflow.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "responses ok",
        "aresponses ok",
        "aresponses stream ok",
    ], proc.stdout + proc.stderr
    assert len(scripted.received) == 6


def test_openai_sdk_through_litellm_proxy_to_localbox(
    litellm_proxy: Proxy, scripted: ScriptedUpstream
) -> None:
    scripted.script(*python_round())
    with openai.OpenAI(base_url=f"{litellm_proxy.url}/v1", api_key=MASTER_KEY, max_retries=0) as c:
        resp = c.responses.create(
            model=LITELLM_PROXY_MODEL,
            input=QUESTION,
            tools=[CODE_INTERPRETER],
            include=["code_interpreter_call.outputs"],
        )
    assert resp.status == "completed"
    assert resp.output_text == ANSWER
    assert [item.type for item in resp.output] == ["code_interpreter_call", "message"]
    assert resp.output[0].type == "code_interpreter_call"
    assert resp.output[0].code == CODE
    assert_python_offered_then_answered(scripted.received)


def test_openai_sdk_through_litellm_proxy_to_localbox_streamed(
    litellm_proxy: Proxy, scripted: ScriptedUpstream
) -> None:
    scripted.script(*python_round())
    with (
        openai.OpenAI(base_url=f"{litellm_proxy.url}/v1", api_key=MASTER_KEY, max_retries=0) as c,
        c.responses.stream(
            model=LITELLM_PROXY_MODEL,
            input=QUESTION,
            tools=[CODE_INTERPRETER],
            include=["code_interpreter_call.outputs"],
        ) as stream,
    ):
        events = list(stream)
        final = stream.get_final_response()
    types = [event.type for event in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    code = "".join(e.delta for e in events if e.type == "response.code_interpreter_call_code.delta")
    assert code == CODE
    assert final.output_text == ANSWER
    assert [item.type for item in final.output] == ["code_interpreter_call", "message"]
    call = final.output[0]
    assert call.type == "code_interpreter_call"
    assert [(o.type, getattr(o, "logs", None)) for o in call.outputs or []] == [("logs", "385\n")]
    assert_python_offered_then_answered(scripted.received)
