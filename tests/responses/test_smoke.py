from __future__ import annotations

import json

import openai

from tests.responses.scripted_upstream import Received, ScriptedUpstream, ToolCall, Turn


def test_python_round_trip(rclient: openai.OpenAI, scripted: ScriptedUpstream) -> None:
    scripted.script(
        Turn(tool_calls=(ToolCall("python", json.dumps({"code": "print(6 * 7)"})),)),
        lambda r: Turn(text=f"The answer is {r.tool_outputs()[-1].strip()}"),
    )
    resp = rclient.responses.create(
        model="scripted-model",
        input="what is 6*7?",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        include=["code_interpreter_call.outputs"],
    )
    print(resp.model_dump_json(indent=1))
    assert resp.output_text == "The answer is 42"
