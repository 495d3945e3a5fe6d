"""The loop's rules: function tools, shell, forced tools, limits, errors, storage, and the
Responses dialect upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import LocalboxServer, serving
from tests.responses.conftest import UPSTREAM_KEY
from tests.responses.helpers import CI_AUTO, MODEL, SHELL_AUTO, WEATHER, chat_tools, python, shell
from tests.responses.scripted_upstream import Fail, ScriptedUpstream, ToolCall, Turn


def test_function_tools_stop_the_loop_and_continue_with_their_output(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    scripted.script(
        Turn(
            tool_calls=(
                python("print('hosted first')"),
                ToolCall("get_weather", json.dumps({"city": "Oslo"}), "call_w1"),
            )
        ),
        lambda r: Turn(text=f"Weather: {r.tool_outputs()[-1]}"),
    )
    first = rclient.responses.create(
        model=MODEL,
        input="weather?",
        tools=[CI_AUTO, WEATHER],  # type: ignore[list-item]
    )
    assert [i.type for i in first.output] == ["code_interpreter_call", "function_call"]
    call = first.output[1]
    assert call.type == "function_call"
    assert (call.name, call.call_id, call.arguments) == (
        "get_weather",
        "call_w1",
        '{"city": "Oslo"}',
    )
    assert call.id.startswith("fc_")  # type: ignore[union-attr]
    sent = scripted.received[0].body
    assert sorted(chat_tools(sent)) == ["get_weather", "python"]
    weather_tool = next(t for t in sent["tools"] if t["function"]["name"] == "get_weather")
    assert weather_tool["function"]["parameters"] == WEATHER["parameters"]
    second = rclient.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": "call_w1", "output": "sunny"}],
        tools=[CI_AUTO, WEATHER],  # type: ignore[list-item]
    )
    assert second.output_text == "Weather: sunny"
    history = scripted.received[1].body["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant", "tool"]
    assert history[3]["tool_calls"][0]["id"] == "call_w1"
    assert history[2]["content"] == "hosted first\n"


def test_shell_runs_commands_in_mnt_data_as_the_sandbox_user(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    scripted.script(
        Turn(
            tool_calls=(
                shell("pwd; id -u", "node -e 'console.log(6*7)'", "exit 3", max_output_length=4),
            )
        ),
        Turn(tool_calls=(shell("sleep 5", timeout_ms=300),)),
        lambda r: Turn(text=r.tool_outputs()[-1]),
    )
    resp = rclient.responses.create(model=MODEL, input="run", tools=[SHELL_AUTO])
    call, output, _, output2, message = resp.output
    assert call.type == "shell_call"
    assert call.action.commands == ["pwd; id -u", "node -e 'console.log(6*7)'", "exit 3"]
    assert call.action.max_output_length == 4
    assert call.environment is not None
    container_id = call.environment.container_id  # type: ignore[union-attr]
    assert rclient.containers.retrieve(container_id).status == "running"
    assert output.type == "shell_call_output"
    assert output.call_id == call.call_id
    assert output.max_output_length == 4
    first, node, failed = output.output
    assert first.stdout == "/mnt"  # cut to max_output_length
    assert first.outcome.type == "exit"
    assert first.outcome.exit_code == 0  # type: ignore[union-attr]
    assert node.stdout == "42\n"
    assert failed.outcome.exit_code == 3  # type: ignore[union-attr]
    assert output2.type == "shell_call_output"
    assert output2.output[0].outcome.type == "timeout"
    assert "[timed out]" in message.content[0].text  # type: ignore[union-attr]
    # The model saw every command's result.
    seen = scripted.received[1].tool_outputs()[0]
    assert "[exit code 3]" in seen
    assert "42" in seen


def test_shell_with_a_container_reference_and_uid(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    container = rclient.containers.create(name="for-shell")
    scripted.script(Turn(tool_calls=(shell("id -u > who.txt"),)), Turn(text="ok"))
    env = {"type": "container_reference", "container_id": container.id}
    resp = rclient.responses.create(
        model=MODEL, input="x", tools=[{"type": "shell", "environment": env}]
    )
    assert resp.output[0].environment.container_id == container.id  # type: ignore[union-attr]
    (f,) = rclient.containers.files.list(container.id)
    content = rclient.containers.files.content.retrieve(f.id, container_id=container.id)
    assert content.read() == b"1000\n"


def test_tool_choice_forces_the_tool_once(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    scripted.script(Turn(tool_calls=(python("1"),)), Turn(text="done"))
    rclient.responses.create(
        model=MODEL, input="x", tools=[CI_AUTO], tool_choice={"type": "code_interpreter"}
    )
    first, second = scripted.received
    assert first.body["tool_choice"] == {"type": "function", "function": {"name": "python"}}
    assert second.body["tool_choice"] == "auto"


def test_max_tool_calls_withdraws_the_tools_and_ignores_more_calls(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    scripted.script(
        Turn(tool_calls=(python("print(1)"), python("print(2)"))),
        Turn(tool_calls=(python("print(3)"),)),
    )
    resp = rclient.responses.create(model=MODEL, input="x", tools=[CI_AUTO], max_tool_calls=1)
    assert [i.type for i in resp.output] == ["code_interpreter_call"]  # the second is ignored
    assert resp.max_tool_calls == 1
    first, second = scripted.received
    assert chat_tools(first.body) == ["python"]
    assert "tools" not in second.body  # withdrawn, and the model told so
    assert "limit of tool calls" in second.tool_outputs()[-1]
    # Only the call that ran is in the model's history.
    assert len(second.body["messages"][1]["tool_calls"]) == 1


def test_the_round_limit_ends_a_model_that_never_stops(
    tmp_path: Path, upstream: ScriptedUpstream, scripted: ScriptedUpstream
) -> None:
    env = {
        "LOCALBOX_MODEL_BASE_URL": upstream.base_url,
        "LOCALBOX_MODEL_API_KEY": UPSTREAM_KEY,
        "LOCALBOX_MODEL_MAX_RETRIES": "0",
        "LOCALBOX_RESPONSES_MAX_TOOL_ROUNDS": "2",
    }
    scripted.script(*[Turn(tool_calls=(python("print('again')"),)) for _ in range(3)])
    with serving(tmp_path / "data", env) as server:
        resp = server.client(max_retries=0).responses.create(
            model=MODEL, input="loop", tools=[CI_AUTO]
        )
    assert [i.type for i in resp.output] == ["code_interpreter_call"] * 2
    assert "tools" not in scripted.received[2].body


def test_upstream_errors(rclient: openai.OpenAI, scripted: ScriptedUpstream) -> None:
    # A 4xx (unknown model) comes back with its status and message.
    scripted.script(Fail(404, "model 'nope' not found"))
    with pytest.raises(openai.NotFoundError) as err:
        rclient.responses.create(model="nope", input="x")
    assert err.value.body["message"] == "model 'nope' not found"  # type: ignore[index]
    # A 5xx is a failed response that names the status, never the key.
    scripted.script(Fail(503, "overloaded"))
    resp = rclient.responses.create(model=MODEL, input="x")
    assert resp.status == "failed"
    assert resp.error is not None
    assert resp.error.code == "upstream_error"
    assert "503" in resp.error.message
    assert UPSTREAM_KEY not in resp.error.message
    assert rclient.responses.retrieve(resp.id).status == "failed"
    # In a stream after the first round: response.failed, with the items made so far.
    scripted.script(Turn(tool_calls=(python("print(1)"),)), Fail(500, "boom"))
    events = list(rclient.responses.create(model=MODEL, input="x", tools=[CI_AUTO], stream=True))
    last = events[-1]
    assert last.type == "response.failed"
    assert last.response.error is not None
    assert "500" in last.response.error.message
    assert [i.type for i in last.response.output] == ["code_interpreter_call"]
    # Streamed, a 4xx on the first request is still the HTTP error.
    scripted.script(Fail(400, "bad request"))
    with pytest.raises(openai.BadRequestError):
        list(rclient.responses.create(model=MODEL, input="x", stream=True))


def test_an_unreachable_upstream_fails_the_response(tmp_path: Path) -> None:
    env = {"LOCALBOX_MODEL_BASE_URL": "http://127.0.0.1:9/v1", "LOCALBOX_MODEL_MAX_RETRIES": "0"}
    with serving(tmp_path / "data", env) as server:
        client = server.client(max_retries=0)
        resp = client.responses.create(model=MODEL, input="x")
        assert resp.status == "failed"
        assert resp.error is not None
        assert resp.error.code == "upstream_error"
        assert "could not be reached" in resp.error.message


def test_a_sandbox_failure_is_the_tool_result(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    container = rclient.containers.create(name="short-lived")
    scripted.script(
        lambda r: Turn(tool_calls=(python("print(1)"),)),
        lambda r: Turn(text=r.tool_outputs()[-1]),
    )

    def delete_then_call(_: object) -> Turn:
        rclient.containers.delete(container.id)
        return Turn(tool_calls=(python("print(1)"),))

    scripted.script(delete_then_call, lambda r: Turn(text=r.tool_outputs()[-1]))
    resp = rclient.responses.create(
        model=MODEL, input="x", tools=[{"type": "code_interpreter", "container": container.id}]
    )
    assert resp.status == "completed"
    assert resp.output[0].status == "failed"  # type: ignore[union-attr]
    assert "The sandbox failed" in resp.output_text


def test_bad_requests(rclient: openai.OpenAI, scripted: ScriptedUpstream) -> None:
    def bad(param: str, **kwargs: object) -> str:
        with pytest.raises(openai.BadRequestError) as err:
            rclient.responses.create(model=MODEL, input="x", **kwargs)  # type: ignore[call-overload]
        body = err.value.body
        assert body["param"] == param, body  # type: ignore[index]
        return str(body["message"])  # type: ignore[index]

    assert "web_search" in bad("tools[1].type", tools=[CI_AUTO, {"type": "web_search"}])
    assert "file_search" in bad("tools[0].type", tools=[{"type": "file_search"}])
    bad(
        "tools[0].container.memory_limit",
        tools=[{"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "3g"}}],
    )
    bad("tools[0].environment.type", tools=[{"type": "shell", "environment": {"type": "local"}}])
    bad("tool_choice.type", tool_choice={"type": "shell"}, tools=[CI_AUTO])
    bad("background", background=True)
    bad("tools[0].name", tools=[{"type": "function", "name": "python", "parameters": {}}])
    with pytest.raises(openai.NotFoundError) as err:
        rclient.responses.create(model=MODEL, input="x", previous_response_id="resp_nope")
    assert err.value.body["param"] == "previous_response_id"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        rclient.responses.create(
            model=MODEL,
            input="x",
            tools=[
                {
                    "type": "code_interpreter",
                    "container": {"type": "auto", "file_ids": ["file-nope"]},
                }
            ],
        )
    assert scripted.received == []  # none of these reached the model


def test_store_retrieve_delete(rclient: openai.OpenAI, scripted: ScriptedUpstream) -> None:
    scripted.script(Turn(text="stored"), Turn(text="not stored"))
    kept = rclient.responses.create(model=MODEL, input="a", metadata={"k": "v"}, temperature=0.5)
    gone = rclient.responses.create(model=MODEL, input="b", store=False)
    got = rclient.responses.retrieve(kept.id)
    assert got.output_text == "stored"
    assert got.metadata == {"k": "v"}
    assert got.temperature == 0.5
    assert scripted.received[0].body["temperature"] == 0.5
    with pytest.raises(openai.NotFoundError):
        rclient.responses.retrieve(gone.id)
    items = rclient.responses.input_items.list(kept.id)
    assert [i.type for i in items.data] == ["message"]
    rclient.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError):
        rclient.responses.retrieve(kept.id)
    with pytest.raises(openai.NotFoundError):
        rclient.responses.delete(kept.id)


def test_without_an_upstream_the_error_names_the_setting(fresh_server: LocalboxServer) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        fresh_server.client(max_retries=0).responses.create(model=MODEL, input="x")
    assert "LOCALBOX_MODEL_BASE_URL" in err.value.message


@pytest.fixture
def responses_dialect_server(
    tmp_path: Path, upstream: ScriptedUpstream
) -> Iterator[LocalboxServer]:
    env = {
        "LOCALBOX_MODEL_BASE_URL": upstream.base_url,
        "LOCALBOX_MODEL_API_KEY": UPSTREAM_KEY,
        "LOCALBOX_MODEL_API": "responses",
        "LOCALBOX_MODEL_MAX_RETRIES": "0",
    }
    with serving(tmp_path / "data", env) as server:
        yield server


def test_an_upstream_that_speaks_responses(
    responses_dialect_server: LocalboxServer, scripted: ScriptedUpstream
) -> None:
    scripted.script(
        Turn(tool_calls=(python("print(2 ** 10)"),)),
        lambda r: Turn(text=f"It is {r.tool_outputs()[-1].strip()}"),
    )
    client = responses_dialect_server.client(max_retries=0)
    with client.responses.stream(
        model=MODEL, input="2**10?", tools=[CI_AUTO], instructions="Use python."
    ) as stream:
        final = stream.get_final_response()
    assert final.output_text == "It is 1024"
    first, second = scripted.received
    assert first.path == "/v1/responses"
    assert first.body["store"] is False
    assert [t["name"] for t in first.body["tools"]] == ["python"]
    assert first.body["input"][0] == {"type": "message", "role": "system", "content": "Use python."}
    kinds = [i["type"] for i in second.body["input"]]
    assert kinds[-2:] == ["function_call", "function_call_output"]


def test_item_references_stand_for_stored_items(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    scripted.script(Turn(text="The secret word is plum."), Turn(text="plum"))
    first = rclient.responses.create(model=MODEL, input="pick a word")
    second = rclient.responses.create(
        model=MODEL,
        input=[
            {"type": "item_reference", "id": first.output[0].id},  # type: ignore[list-item]
            {"role": "user", "content": "which word?"},
        ],
    )
    assert second.output_text == "plum"
    history = scripted.received[1].body["messages"]
    assert history == [
        {"role": "assistant", "content": "The secret word is plum."},
        {"role": "user", "content": "which word?"},
    ]
    # Listed as the item it stands for.
    assert (
        rclient.responses.input_items.list(second.id, order="asc").data[0].id == first.output[0].id
    )
    with pytest.raises(openai.BadRequestError) as err:
        rclient.responses.create(
            model=MODEL,
            input=[{"type": "item_reference", "id": "msg_nope"}],  # type: ignore[list-item]
        )
    assert err.value.body["param"] == "input[0].id"  # type: ignore[index]
