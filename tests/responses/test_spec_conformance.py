"""/v1/responses answers match the official OpenAPI schemas field by field: the Response
(created, retrieved, failed), its output items (code_interpreter_call with logs and image
outputs, message with a container file citation, shell_call and shell_call_output,
function_call), the input_items list, and every streamed event against the schema of its type.
The JSON is read raw (httpx), so no SDK model hides a missing or extra field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LocalboxServer
from tests.responses.helpers import CI_AUTO, MODEL, OUTPUTS, SHELL_AUTO, WEATHER, python, shell
from tests.responses.scripted_upstream import Fail, ScriptedUpstream, ToolCall, Turn
from tests.spec.schemas import check, check_event

FIGURE = (
    "import matplotlib.pyplot as plt\nplt.plot([1, 2], [2, 1])\nplt.show()\n"
    "open('out.txt', 'w').write('x')\nprint('made out.txt')"
)


@pytest.fixture
def http(responses_server: LocalboxServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {responses_server.api_key}"}
    with httpx.Client(base_url=responses_server.base_url, headers=headers, timeout=180) as c:
        yield c


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def events_of(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a streamed response, as sent (each `event:` line names its data's type)."""
    events: list[dict[str, Any]] = []
    with http.stream("POST", "/responses", json={**body, "stream": True}) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                event = json.loads(line.removeprefix("data: "))
                assert name in (None, event["type"])
                events.append(event)
                name = None
    return events


def test_a_response_with_code_interpreter_and_a_message(
    http: httpx.Client, scripted: ScriptedUpstream
) -> None:
    scripted.script(
        Turn(text="Plotting.", tool_calls=(python(FIGURE),)),
        Turn(text="Here it is: out.txt"),
    )
    body = {"model": MODEL, "input": "plot", "tools": [CI_AUTO], "include": OUTPUTS}
    resp = ok(http.post("/responses", json=body))
    check(resp, "Response")
    assert [i["type"] for i in resp["output"]] == ["message", "code_interpreter_call", "message"]
    call = resp["output"][1]
    assert [o["type"] for o in call["outputs"]] == ["logs", "image"]
    check(call, "CodeInterpreterToolCall")
    annotation = resp["output"][2]["content"][0]["annotations"][0]
    assert annotation["type"] == "container_file_citation"
    # Retrieved with and without the outputs; the input items.
    check(ok(http.get(f"/responses/{resp['id']}")), "Response")
    check(ok(http.get(f"/responses/{resp['id']}", params={"include[]": OUTPUTS})), "Response")
    items = ok(http.get(f"/responses/{resp['id']}/input_items"))
    check(items, "ResponseItemList")
    assert [i["type"] for i in items["data"]] == ["message"]
    deleted = ok(http.delete(f"/responses/{resp['id']}"))
    # No body in the spec; localbox answers as the service does.
    assert deleted == {"id": resp["id"], "object": "response.deleted", "deleted": True}
    missing = http.get(f"/responses/{resp['id']}")
    assert missing.status_code == 404
    check(missing.json(), "ErrorResponse")


def test_a_response_with_shell_calls_and_function_calls(
    http: httpx.Client, scripted: ScriptedUpstream
) -> None:
    scripted.script(
        Turn(tool_calls=(shell("echo hi", "echo oops >&2; exit 2"),)),
        Turn(tool_calls=(shell("sleep 5", timeout_ms=200, max_output_length=100),)),
        Turn(tool_calls=(ToolCall("get_weather", '{"city": "Oslo"}', "call_w"),)),
    )
    body = {
        "model": MODEL,
        "input": [{"role": "user", "content": "run"}],
        "instructions": "Be brief.",
        "tools": [SHELL_AUTO, WEATHER],
        "metadata": {"case": "shell"},
        "user": "user-1",
        "temperature": 0.5,
        "max_output_tokens": 500,
    }
    resp = ok(http.post("/responses", json=body))
    check(resp, "Response")
    assert resp["user"] == "user-1"
    kinds = [i["type"] for i in resp["output"]]
    assert kinds == ["shell_call", "shell_call_output"] * 2 + ["function_call"]
    check(resp["output"][0], "FunctionShellCall")
    check(resp["output"][1], "FunctionShellCallOutput")
    assert resp["output"][3]["output"][0]["outcome"] == {"type": "timeout"}

    # The client answers its function; the follow-up lists every kind of input item.
    scripted.script(Turn(text="Sunny in Oslo."))
    follow_up = {
        "model": MODEL,
        "previous_response_id": resp["id"],
        "input": [{"type": "function_call_output", "call_id": "call_w", "output": "sunny"}],
        "tools": [SHELL_AUTO, WEATHER],
    }
    second = ok(http.post("/responses", json=follow_up))
    check(second, "Response")
    items = ok(http.get(f"/responses/{second['id']}/input_items", params={"order": "asc"}))
    check(items, "ResponseItemList")


def test_input_items_as_clients_send_them(http: httpx.Client, scripted: ScriptedUpstream) -> None:
    """Items in the request's short forms are listed in the spec's resource forms."""
    pixel = "data:image/png;base64," + (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
    scripted.script(Turn(text="ok"))
    body = {
        "model": MODEL,
        "input": [
            {"role": "developer", "content": "Answer briefly."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": pixel},
                ],
            },
            {"role": "assistant", "content": "Let me check the weather."},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city": "Oslo"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
        # A function tool in its shortest form is listed with parameters and strict (null).
        "tools": [WEATHER, {"type": "function", "name": "noop"}],
    }
    resp = ok(http.post("/responses", json=body))
    check(resp, "Response")
    assert resp["tools"][1] == {
        "type": "function",
        "name": "noop",
        "parameters": None,
        "strict": None,
    }
    assert "user" not in resp
    items = ok(http.get(f"/responses/{resp['id']}/input_items", params={"order": "asc"}))
    check(items, "ResponseItemList")
    kinds = [(i["type"], i.get("role")) for i in items["data"]]
    assert kinds == [
        ("message", "developer"),
        ("message", "user"),
        ("message", "assistant"),
        ("function_call", None),
        ("function_call_output", None),
    ]


def spec_error_code(response: dict[str, Any]) -> dict[str, Any]:
    """The one deliberate difference: a response that failed upstream says so with the code
    upstream_error, which the spec's enum of codes lacks; everything else must match."""
    assert response["error"]["code"] == "upstream_error"
    return {**response, "error": {**response["error"], "code": "server_error"}}


def test_a_failed_response(http: httpx.Client, scripted: ScriptedUpstream) -> None:
    scripted.script(Fail(500, "upstream down"))
    resp = ok(http.post("/responses", json={"model": MODEL, "input": "hi"}))
    assert resp["status"] == "failed"
    check(spec_error_code(resp), "Response")


def test_every_streamed_event(http: httpx.Client, scripted: ScriptedUpstream) -> None:
    scripted.script(
        Turn(text="Working.", tool_calls=(python(FIGURE),)),
        Turn(tool_calls=(shell("echo one", "echo two >&2"),)),
        Turn(text="Done: out.txt"),
    )
    body = {"model": MODEL, "input": "go", "tools": [CI_AUTO, SHELL_AUTO], "include": OUTPUTS}
    events = events_of(http, body)
    for event in events:
        check_event(event)
    seen = {e["type"] for e in events}
    assert {
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.annotation.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.shell_call_command.added",
        "response.shell_call_command.delta",
        "response.shell_call_command.done",
        "response.shell_call_output_content.delta",
        "response.shell_call_output_content.done",
        "response.output_item.done",
        "response.completed",
    } <= seen
    assert [e["sequence_number"] for e in events] == list(range(len(events)))

    # A function call's events, and a failed response's.
    scripted.script(Turn(tool_calls=(ToolCall("get_weather", '{"city": "Oslo"}'),)))
    for event in events_of(http, {"model": MODEL, "input": "weather?", "tools": [WEATHER]}):
        check_event(event)
    scripted.script(Fail(500, "upstream down"))
    failed = events_of(http, {"model": MODEL, "input": "hi"})
    assert failed[-1]["type"] == "response.failed"
    for event in failed:
        if event["type"] == "response.failed":
            event = {**event, "response": spec_error_code(event["response"])}
        check_event(event)
