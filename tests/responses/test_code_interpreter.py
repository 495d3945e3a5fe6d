"""code_interpreter through /v1/responses: auto and explicit containers, outputs, figures,
cited files, input files, continuation and stateless replay."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import LocalboxServer
from tests.responses.helpers import CI_AUTO, MODEL, OUTPUTS, chat_tools, python
from tests.responses.scripted_upstream import Received, ScriptedUpstream, Turn


def quote(r: Received) -> Turn:
    return Turn(text=f"Result: {r.tool_outputs()[-1].strip()}")


def test_auto_container_runs_code_and_the_model_sees_its_output(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    scripted.script(Turn(tool_calls=(python("print(6 * 7)"),)), quote)
    resp = rclient.responses.create(model=MODEL, input="what is 6*7?", tools=[CI_AUTO])
    assert resp.status == "completed"
    assert resp.output_text == "Result: 42"
    call, message = resp.output
    assert call.type == "code_interpreter_call"
    assert call.id.startswith("ci_")
    assert call.status == "completed"
    assert call.code == "print(6 * 7)"
    assert call.outputs is None  # not asked for with include
    assert message.type == "message"
    # The container was made through the containers service: listed, running, 1g.
    container = rclient.containers.retrieve(call.container_id)
    assert container.status == "running"
    assert container.memory_limit == "1g"
    # The upstream was offered the python function and got the output as the tool result.
    first, second = scripted.received
    assert chat_tools(first.body) == ["python"]
    assert second.tool_outputs() == ["42\n"]
    assert first.headers["authorization"] == "Bearer sk-upstream-secret-1234"
    assert first.body["model"] == MODEL
    # usage adds up both upstream calls (10 in, 5 out each by default).
    assert resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (20, 10)
    assert resp.usage.total_tokens == 30


def test_outputs_with_include_errors_and_state(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    scripted.script(
        Turn(tool_calls=(python("x = 5\nprint('set')"),)),
        Turn(tool_calls=(python("print(x * 2)\n1/0"),)),
        quote,
    )
    resp = rclient.responses.create(model=MODEL, input="go", tools=[CI_AUTO], include=OUTPUTS)
    first, second, _ = resp.output
    assert first.type == second.type == "code_interpreter_call"
    assert first.container_id == second.container_id  # one container for the turn
    assert first.outputs is not None
    assert first.outputs[0].type == "logs"
    assert first.outputs[0].logs == "set\n"
    assert second.outputs is not None
    logs = second.outputs[0].logs  # type: ignore[union-attr]
    assert logs.startswith("10\n")
    assert "ZeroDivisionError" in logs
    assert "ZeroDivisionError" in scripted.received[2].tool_outputs()[-1]
    # Retrieval shows outputs only when included, too.
    stored = rclient.responses.retrieve(resp.id)
    assert stored.output[0].outputs is None  # type: ignore[union-attr]
    stored = rclient.responses.retrieve(resp.id, include=OUTPUTS)
    assert stored.output[0].outputs[0].logs == "set\n"  # type: ignore[union-attr,index]


def test_a_figure_is_an_image_output(rclient: openai.OpenAI, scripted: ScriptedUpstream) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.show()"
    scripted.script(Turn(tool_calls=(python(code),)), Turn(text="Here is the plot."))
    resp = rclient.responses.create(model=MODEL, input="plot", tools=[CI_AUTO], include=OUTPUTS)
    call = resp.output[0]
    assert call.type == "code_interpreter_call"
    images = [o for o in call.outputs or [] if o.type == "image"]
    assert len(images) == 1
    assert images[0].url.startswith("data:image/png;base64,iVBOR")
    assert "image(s) shown to the user" in scripted.received[1].tool_outputs()[0]


def test_a_written_csv_is_cited_and_downloadable(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    code = (
        "import csv\n"
        "with open('out.csv', 'w', newline='') as f:\n"
        "    csv.writer(f).writerows([['a', 'b'], [1, 2]])"
    )
    scripted.script(
        Turn(tool_calls=(python(code),)), Turn(text="I saved the table as out.csv for you.")
    )
    resp = rclient.responses.create(model=MODEL, input="make a csv", tools=[CI_AUTO])
    call, message = resp.output
    assert message.type == "message"
    text = message.content[0]
    assert text.type == "output_text"
    (citation,) = text.annotations
    assert citation.type == "container_file_citation"
    assert citation.container_id == call.container_id  # type: ignore[union-attr]
    assert citation.filename == "out.csv"
    assert text.text[citation.start_index : citation.end_index] == "out.csv"
    content = rclient.containers.files.content.retrieve(
        citation.file_id, container_id=citation.container_id
    )
    assert content.read().replace(b"\r\n", b"\n") == b"a,b\n1,2\n"
    listed = rclient.containers.files.retrieve(citation.file_id, container_id=citation.container_id)
    assert listed.path == "/mnt/data/out.csv"
    assert listed.source == "assistant"


def test_input_files_are_copied_into_the_container(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    uploaded = rclient.files.create(file=("numbers.txt", b"1\n2\n3\n"), purpose="user_data")
    tool_file = rclient.files.create(file=("extra.txt", b"extra"), purpose="user_data")
    scripted.script(
        Turn(
            tool_calls=(
                python(
                    "total = sum(int(x) for x in open('/mnt/data/numbers.txt'))\n"
                    "print(total, open('extra.txt').read())"
                ),
            )
        ),
        quote,
    )
    resp = rclient.responses.create(
        model=MODEL,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "add these up"},
                    {"type": "input_file", "file_id": uploaded.id},
                ],
            }
        ],
        tools=[
            {"type": "code_interpreter", "container": {"type": "auto", "file_ids": [tool_file.id]}}
        ],
    )
    assert resp.output_text == "Result: 6 extra"
    # The model was told where the file is.
    assert "/mnt/data/numbers.txt" in scripted.received[0].last_user_text()


def test_previous_response_id_continues_in_the_same_container(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    scripted.script(
        Turn(tool_calls=(python("secret = 1234"),)),
        Turn(text="Stored it."),
        Turn(tool_calls=(python("print(secret)"),)),
        quote,
    )
    first = rclient.responses.create(
        model=MODEL, input="remember 1234", tools=[CI_AUTO], instructions="Be brief."
    )
    second = rclient.responses.create(
        model=MODEL, input="what was it?", tools=[CI_AUTO], previous_response_id=first.id
    )
    assert second.output_text == "Result: 1234"
    assert second.previous_response_id == first.id
    assert second.output[0].container_id == first.output[0].container_id  # type: ignore[union-attr]
    # The rebuilt history: the first turn's messages, tool call and result, then the new input;
    # the first turn's instructions are not carried over.
    messages = scripted.received[2].body["messages"]
    roles = [m["role"] for m in messages]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert scripted.received[0].body["messages"][0] == {"role": "system", "content": "Be brief."}
    # input_items lists the whole context, newest first by default.
    items = rclient.responses.input_items.list(second.id)
    assert [i.type for i in items.data][:2] == ["message", "message"]
    assert items.data[0].content[0].text == "what was it?"  # type: ignore[union-attr]
    asc = rclient.responses.input_items.list(second.id, order="asc", limit=2)
    assert asc.has_more
    assert asc.data[0].content[0].text == "remember 1234"  # type: ignore[union-attr]
    rest = rclient.responses.input_items.list(second.id, order="asc", after=asc.data[-1].id)
    assert len(asc.data) + len(rest.data) == len(items.data)


def test_a_stateless_client_replays_the_items(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    scripted.script(
        Turn(tool_calls=(python("n = 7"),)),
        Turn(text="Done."),
        Turn(tool_calls=(python("print(n + 1)"),)),
        quote,
    )
    first = rclient.responses.create(
        model=MODEL, input="set n", tools=[CI_AUTO], store=False, include=OUTPUTS
    )
    with pytest.raises(openai.NotFoundError):
        rclient.responses.retrieve(first.id)
    replay = [
        {"role": "user", "content": "set n"},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"role": "user", "content": "and now?"},
    ]
    second = rclient.responses.create(
        model=MODEL,
        input=replay,
        tools=[CI_AUTO],
        store=False,  # type: ignore[arg-type]
    )
    assert second.output_text == "Result: 8"  # same container, so n is still there
    assert second.output[0].container_id == first.output[0].container_id  # type: ignore[union-attr]
    history = scripted.received[2].body["messages"]
    assert history[1]["tool_calls"][0]["function"]["name"] == "python"
    assert history[2] == {
        "role": "tool",
        "tool_call_id": history[1]["tool_calls"][0]["id"],
        "content": "(no output)",
    }


def test_an_explicit_container(
    rclient: openai.OpenAI, scripted: ScriptedUpstream, responses_server: LocalboxServer
) -> None:
    container = rclient.containers.create(name="explicit")
    scripted.script(
        Turn(tool_calls=(python("open('mine.txt', 'w').write('hi')"),)), Turn(text="ok")
    )
    resp = rclient.responses.create(
        model=MODEL,
        input="write",
        tools=[{"type": "code_interpreter", "container": container.id}],
    )
    assert resp.output[0].container_id == container.id  # type: ignore[union-attr]
    paths = [f.path for f in rclient.containers.files.list(container.id)]
    assert paths == ["/mnt/data/mine.txt"]
    # unknown, then deleted: errors that name the tool's container.
    for bad in ("cntr_nope", container.id):
        if bad == container.id:
            rclient.containers.delete(container.id)
        with pytest.raises(openai.APIStatusError) as err:
            rclient.responses.create(
                model=MODEL, input="x", tools=[{"type": "code_interpreter", "container": bad}]
            )
        assert err.value.status_code in (400, 404)
        assert err.value.body["param"] == "tools[0].container"  # type: ignore[index]


def test_a_turn_that_never_calls_the_tool_makes_no_container(
    rclient: openai.OpenAI, scripted: ScriptedUpstream
) -> None:
    before = {c.id for c in rclient.containers.list(limit=100)}
    scripted.script(Turn(text="No code needed."))
    resp = rclient.responses.create(model=MODEL, input="hi", tools=[CI_AUTO])
    assert resp.output_text == "No code needed."
    assert {c.id for c in rclient.containers.list(limit=100)} == before
