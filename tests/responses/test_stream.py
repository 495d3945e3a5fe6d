"""Streamed responses: OpenAI's events in OpenAI's order, consumed by the SDK's helpers, and
a client that leaves cancelling the running call and the upstream request."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai

from tests.conftest import LocalboxServer
from tests.responses.helpers import CI_AUTO, MODEL, OUTPUTS, python, shell
from tests.responses.scripted_upstream import Hang, ScriptedUpstream, Turn

TEXT_ITEM = [
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta*",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]
CI_ITEM = [
    "response.output_item.added",
    "response.code_interpreter_call.in_progress",
    "response.code_interpreter_call_code.delta*",
    "response.code_interpreter_call_code.done",
    "response.code_interpreter_call.interpreting",
    "response.code_interpreter_call.completed",
    "response.output_item.done",
]


def collapse(types: list[str]) -> list[str]:
    """Runs of the same delta event as one "<type>*"."""
    out: list[str] = []
    for t in types:
        name = f"{t}*" if t.endswith(".delta") else t
        if not (out and out[-1] == name and name.endswith("*")):
            out.append(name)
    return out


def ci_script(scripted: ScriptedUpstream) -> None:
    code = "import csv\nwith open('t.csv', 'w') as f:\n    f.write('a\\n1\\n')\nprint(6 * 7)"
    scripted.add(
        Turn(text="Running.", tool_calls=(python(code),)),
        Turn(text="It is 42; see t.csv."),
    )


def test_events_in_order_and_the_sdk_rebuilds_the_response(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    ci_script(scripted)
    with rclient.responses.stream(
        model=MODEL, input="go", tools=[CI_AUTO], include=OUTPUTS
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text_with_citation = [*TEXT_ITEM]
    text_with_citation.insert(3, "response.output_text.annotation.added")
    assert collapse([e.type for e in events]) == [
        "response.created",
        "response.in_progress",
        *TEXT_ITEM,
        *CI_ITEM,
        *text_with_citation,
        "response.completed",
    ]
    deltas = "".join(
        e.delta for e in events if e.type == "response.code_interpreter_call_code.delta"
    )
    assert len([e for e in events if e.type.endswith("call_code.delta")]) > 1
    call = final.output[1]
    assert call.type == "code_interpreter_call"
    assert deltas == call.code
    assert call.outputs is not None
    assert call.outputs[0].logs == "42\n"  # type: ignore[union-attr]
    created = events[0]
    assert created.type == "response.created"
    assert created.response.status == "in_progress"
    assert final.status == "completed"
    assert final.output_text == "Running.It is 42; see t.csv."
    annotation = final.output[2].content[0].annotations[0]  # type: ignore[union-attr]
    assert annotation.filename == "t.csv"

    # The same script, not streamed: the same items and text.
    ci_script(scripted)
    plain = rclient.responses.create(model=MODEL, input="go", tools=[CI_AUTO], include=OUTPUTS)
    assert [i.type for i in plain.output] == [i.type for i in final.output]
    assert plain.output_text == final.output_text
    assert plain.output[1].outputs == final.output[1].outputs  # type: ignore[union-attr]
    # And what was streamed was stored whole.
    stored = rclient.responses.retrieve(final.id, include=OUTPUTS)
    assert [i.id for i in stored.output] == [i.id for i in final.output]  # type: ignore[union-attr]
    assert stored.output_text == final.output_text
    assert stored.output[1] == final.output[1]


def test_create_with_stream_true(rclient: openai.OpenAI, scripted: ScriptedUpstream) -> None:
    scripted.script(Turn(text="hello there"))
    stream = rclient.responses.create(model=MODEL, input="hi", stream=True)
    types = [e.type for e in stream]
    assert collapse(types) == [
        "response.created",
        "response.in_progress",
        *TEXT_ITEM,
        "response.completed",
    ]


def test_shell_events(rclient: openai.OpenAI, scripted: ScriptedUpstream) -> None:
    scripted.script(
        Turn(tool_calls=(shell("echo one", "echo two >&2"),)),
        Turn(text="done"),
    )
    with rclient.responses.stream(model=MODEL, input="run", tools=[{"type": "shell"}]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = collapse([e.type for e in events])
    assert types[:2] == ["response.created", "response.in_progress"]
    call = types[2:].index("response.output_item.done") + 2
    assert types[2:call] == [
        "response.output_item.added",
        "response.shell_call_command.added",
        "response.shell_call_command.delta*",
        "response.shell_call_command.done",
        "response.shell_call_command.added",
        "response.shell_call_command.delta*",
        "response.shell_call_command.done",
    ]
    output = types[call + 1 :]
    assert output[:2] == ["response.output_item.added", "response.shell_call_output_content.delta*"]
    assert "response.shell_call_output_content.done" in output
    deltas = [e for e in events if e.type == "response.shell_call_output_content.delta"]
    assert {"stdout": "one\n"} in [e.delta.model_dump(exclude_none=True) for e in deltas]
    assert final.output[1].type == "shell_call_output"
    assert [o.stdout for o in final.output[1].output] == ["one\n", ""]


def test_a_client_that_leaves_cancels_the_call_and_the_upstream(
    responses_server: LocalboxServer, rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    sleeper = "import time\nprint('started', flush=True)\ntime.sleep(60)"
    scripted.script(Turn(tool_calls=(python(sleeper),)))
    body: dict[str, Any] = {"model": MODEL, "input": "sleep", "tools": [CI_AUTO], "stream": True}
    container_id = response_id = ""
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", f"{responses_server.base_url}/responses", json=body) as answer,
    ):
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if '"response.created"' in line and line.startswith("data:"):
                response_id = json.loads(line[5:])["response"]["id"]
            if '"container_id"' in line and not container_id:
                container_id = line.split('"container_id": "')[1].split('"')[0]
            if "code_interpreter_call.interpreting" in line:
                break
    # The code was interrupted: the container takes the next call at once.
    started = time.monotonic()
    result = httpx.post(
        f"{responses_server.base_url}/containers/{container_id}/exec",
        json={"code": "print('free')"},
        timeout=30,
    ).json()
    assert result.get("stdout") == "free\n", result
    assert time.monotonic() - started < 10
    # What the turn had made is kept, as a cancelled response.
    stored = rclient.responses.retrieve(response_id)
    assert stored.status == "cancelled"
    assert stored.output[0].type == "code_interpreter_call"
    assert stored.output[0].status == "incomplete"

    # The upstream request is ended too when the client leaves while the model streams.
    scripted.script(Hang(30))
    before = scripted.disconnects
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST", f"{responses_server.base_url}/responses", json={**body, "tools": []}
        ) as answer,
    ):
        for line in answer.iter_lines():
            if "response.in_progress" in line:
                break
    deadline = time.monotonic() + 10
    while scripted.disconnects == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scripted.disconnects == before + 1


def test_a_quiet_call_keeps_the_stream_alive(
    responses_server: LocalboxServer, rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    scripted.script(
        Turn(tool_calls=(python("import time\ntime.sleep(16)\nprint('woke')"),)),
        Turn(text="done"),
    )
    body: dict[str, Any] = {"model": MODEL, "input": "wait", "tools": [CI_AUTO], "stream": True}
    with (
        httpx.Client(timeout=60) as http,
        http.stream("POST", f"{responses_server.base_url}/responses", json=body) as answer,
    ):
        lines = list(answer.iter_lines())
    assert ": keepalive" in lines  # a comment line, which SSE clients skip
    assert lines.index(": keepalive") > lines.index(
        "event: response.code_interpreter_call.interpreting"
    )
    assert "event: response.completed" in lines
