"""The scripted upstream, driven through the official openai SDK: its answers are the shapes the
SDK (and so localbox's tool loop) accepts, streamed chunk by chunk."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam
from openai.types.responses import FunctionToolParam

from tests.responses.helpers import WEATHER
from tests.responses.scripted_upstream import (
    Fail,
    Hang,
    Received,
    ScriptedUpstream,
    ToolCall,
    Turn,
)

WEATHER_TOOL_CHAT: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
WEATHER_TOOL: FunctionToolParam = WEATHER  # type: ignore[assignment]
ARGUMENTS = '{"city": "Paris, France", "unit": "celsius"}'


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(chunk_size=5) as server:
        yield server


@pytest.fixture
def client(upstream: ScriptedUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.base_url, api_key="sk-any", max_retries=0) as sdk:
        yield sdk


def test_models_list(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["scripted-model"]


def test_chat_completion_text(upstream: ScriptedUpstream, client: openai.OpenAI) -> None:
    upstream.script(Turn("Hello there!", usage=(12, 3)))
    completion = client.chat.completions.create(
        model="some-model", messages=[{"role": "user", "content": "Hi"}]
    )
    choice = completion.choices[0]
    assert choice.message.content == "Hello there!"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.model == "some-model"
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 3)
    assert completion.usage.total_tokens == 15
    assert upstream.remaining() == 0
    [received] = upstream.received
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == "Bearer sk-any"
    assert received.body["model"] == "some-model"
    assert received.last_user_text() == "Hi"


def test_chat_completion_tool_call_not_streamed(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(Turn(tool_calls=(ToolCall("get_weather", ARGUMENTS, call_id="call_abc"),)))
    completion = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER_TOOL_CHAT]
    )
    message = completion.choices[0].message
    assert message.content is None
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    [call] = message.tool_calls
    assert call.type == "function"
    assert call.id == "call_abc"
    assert call.function.name == "get_weather"
    assert call.function.arguments == ARGUMENTS


def test_chat_stream_rebuilds_tool_call_from_fragments(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(
        Turn("Let me check.", tool_calls=(ToolCall("get_weather", ARGUMENTS),)),
    )
    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL_CHAT],
        stream=True,
    )
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    fragments = 0
    finish_reasons: list[str] = []
    roles: list[str] = []
    with stream:
        for chunk in stream:
            assert chunk.object == "chat.completion.chunk"
            assert chunk.usage is None
            [choice] = chunk.choices
            if choice.delta.role:
                roles.append(choice.delta.role)
            if choice.delta.content:
                text.append(choice.delta.content)
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                if delta.id:
                    call["id"] = delta.id
                if delta.function and delta.function.name:
                    call["name"] = delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
                    fragments += 1
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)
    assert roles == ["assistant"]
    assert "".join(text) == "Let me check."
    assert len(text) > 1
    assert all(len(piece) <= 5 for piece in text)
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather"
    assert calls[0]["id"] == "call_1"
    assert calls[0]["arguments"] == ARGUMENTS
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris, France", "unit": "celsius"}
    assert fragments > 1
    assert finish_reasons == ["tool_calls"]


def test_chat_stream_include_usage(upstream: ScriptedUpstream, client: openai.OpenAI) -> None:
    upstream.script(Turn("Short answer.", usage=(40, 7), finish_reason="length"))
    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    with stream:
        chunks = list(stream)
    *answer, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (40, 7)
    assert last.usage.total_tokens == 47
    assert all(chunk.usage is None for chunk in answer)
    assert answer[-1].choices[0].finish_reason == "length"
    assert "".join(c.choices[0].delta.content or "" for c in answer) == "Short answer."


def test_responses_create_with_function_call(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(
        Turn("Checking.", tool_calls=(ToolCall("get_weather", ARGUMENTS),), usage=(30, 9))
    )
    response = client.responses.create(
        model="some-model",
        instructions="Be brief.",
        input="Weather in Paris?",
        tools=[WEATHER_TOOL],
    )
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.model == "some-model"
    assert response.instructions == "Be brief."
    assert [tool.type for tool in response.tools] == ["function"]
    assert response.output_text == "Checking."
    message, call = response.output
    assert message.type == "message"
    assert message.id.startswith("msg_")
    assert call.type == "function_call"
    assert call.id is not None
    assert call.id.startswith("fc_")
    assert call.name == "get_weather"
    assert call.call_id == "call_1"
    assert call.arguments == ARGUMENTS
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (30, 9)
    assert response.usage.total_tokens == 39
    [received] = upstream.received
    assert received.path == "/v1/responses"
    assert received.last_user_text() == "Weather in Paris?"


def test_responses_stream_helper_reaches_final_response(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(
        Turn(
            "It is sunny in Paris.",
            tool_calls=(
                ToolCall("get_weather", ARGUMENTS, call_id="call_x"),
                ToolCall("get_weather", '{"city": "Oslo"}'),
            ),
        )
    )
    events: list[str] = []
    deltas: list[str] = []
    argument_deltas: list[str] = []
    sequence: list[int] = []
    with client.responses.stream(
        model="m",
        input=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        for event in stream:
            events.append(event.type)
            sequence.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type == "response.function_call_arguments.delta":
                argument_deltas.append(event.delta)
        final = stream.get_final_response()
    assert sequence == list(range(len(events)))
    assert events[:2] == ["response.created", "response.in_progress"]
    assert events[-1] == "response.completed"
    assert events.count("response.output_item.added") == 3
    assert events.count("response.output_item.done") == 3
    assert events.count("response.function_call_arguments.done") == 2
    assert "".join(deltas) == "It is sunny in Paris."
    assert len(deltas) > 1
    assert "".join(argument_deltas) == ARGUMENTS + '{"city": "Oslo"}'
    assert final.status == "completed"
    assert final.output_text == "It is sunny in Paris."
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_x", "get_weather", ARGUMENTS),
        ("call_1", "get_weather", '{"city": "Oslo"}'),
    ]


def test_responses_stream_incomplete_on_length(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(Turn("Cut sh", finish_reason="length"))
    with client.responses.stream(model="m", input="Tell me everything") as stream:
        final = stream.get_final_response()
    assert final.status == "incomplete"
    assert final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens"
    assert final.output_text == "Cut sh"


def test_fail_surfaces_as_sdk_error(upstream: ScriptedUpstream, client: openai.OpenAI) -> None:
    upstream.script(Fail(404, "The model `nope` does not exist"), Fail(503, "overloaded"))
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    assert not_found.value.status_code == 404
    assert "The model `nope` does not exist" in not_found.value.message
    assert isinstance(not_found.value.body, dict)
    assert not_found.value.body["message"] == "The model `nope` does not exist"
    with pytest.raises(openai.InternalServerError) as unavailable:
        client.responses.create(model="m", input="Hi")
    assert unavailable.value.status_code == 503
    assert "overloaded" in unavailable.value.message


def test_exhausted_script_answers_500(upstream: ScriptedUpstream, client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError, match="script exhausted"):
        client.responses.create(model="m", input="Hi")


def test_api_key_is_required_when_set() -> None:
    with ScriptedUpstream(api_key="sk-right") as upstream:
        upstream.script(Turn("ok"))
        with openai.OpenAI(base_url=upstream.base_url, api_key="sk-wrong", max_retries=0) as wrong:
            with pytest.raises(openai.AuthenticationError) as denied:
                wrong.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "Hi"}]
                )
            with pytest.raises(openai.AuthenticationError):
                wrong.models.list()
        assert denied.value.status_code == 401
        assert upstream.remaining() == 1
        [received] = upstream.received
        assert received.headers["authorization"] == "Bearer sk-wrong"
        with openai.OpenAI(base_url=upstream.base_url, api_key="sk-right", max_retries=0) as right:
            completion = right.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "Hi"}]
            )
        assert completion.choices[0].message.content == "ok"
        assert upstream.remaining() == 0


def test_callable_step_sees_tool_outputs(upstream: ScriptedUpstream, client: openai.OpenAI) -> None:
    def quote(received: Received) -> Turn:
        return Turn("outputs: " + " | ".join(received.tool_outputs()))

    upstream.script(quote, quote)
    completion = client.chat.completions.create(
        model="m",
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "rain"}, {"type": "text", "text": "y"}],
            },
        ],
    )
    assert completion.choices[0].message.content == "outputs: sunny | rainy"
    response = client.responses.create(
        model="m",
        input=[
            {"role": "user", "content": "Weather?"},
            {
                "type": "function_call",
                "call_id": "call_9",
                "name": "get_weather",
                "arguments": "{}",
            },
            {"type": "function_call_output", "call_id": "call_9", "output": "22 C"},
        ],
    )
    assert response.output_text == "outputs: 22 C"
    assert upstream.received[1].last_user_text() == "Weather?"
    assert upstream.remaining() == 0


def test_non_streamed_hang_then_empty_answer(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(Hang(0.3))
    started = time.monotonic()
    completion = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Hi"}]
    )
    assert time.monotonic() - started >= 0.3
    assert completion.choices[0].message.content is None
    assert completion.choices[0].finish_reason == "stop"


def test_streamed_hang_closed_by_client_is_a_disconnect(
    upstream: ScriptedUpstream, client: openai.OpenAI
) -> None:
    upstream.script(Hang(30.0), Hang(30.0))
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    with stream:
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
    responses = client.responses.create(model="m", input="Hi", stream=True)
    with responses:
        created = next(iter(responses))
        assert created.type == "response.created"
    deadline = time.monotonic() + 5
    while upstream.disconnects < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.disconnects == 2
    assert upstream.remaining() == 0


def test_delay_holds_back_the_first_byte() -> None:
    with ScriptedUpstream(delay=0.3) as upstream:
        upstream.script(Turn("late"))
        with openai.OpenAI(base_url=upstream.base_url, api_key="k", max_retries=0) as client:
            started = time.monotonic()
            response = client.responses.create(model="m", input="Hi")
        assert time.monotonic() - started >= 0.3
        assert response.output_text == "late"


def test_add_appends_and_script_replaces(upstream: ScriptedUpstream, client: openai.OpenAI) -> None:
    upstream.script(Turn("a"))
    upstream.add(Turn("b"), Turn("c"))
    assert upstream.remaining() == 3
    upstream.script(Turn("z"))
    assert upstream.remaining() == 1
    response = client.responses.create(model="m", input="Hi")
    assert response.output_text == "z"
