"""One POST /v1/responses: the tool loop. The model is asked, its python and shell calls
run in localbox's containers, their results go back to it, until it answers; everything
it does becomes OpenAI's output items, and, when streamed, OpenAI's events in order."""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal

from server.domain import ContainerFile
from server.errors import UpstreamRejected
from server.ids import new_item_id
from server.runtime import OutputChunk
from server.services.responses.args import GrowingText, PartialArguments
from server.services.responses.events import Event, EventMaker
from server.services.responses.history import PYTHON_TOOL, SHELL_TOOL, shell_output_text
from server.services.responses.items import (
    Item,
    code_interpreter_item,
    container_file_citation,
    function_call_item,
    message_item,
    output_text,
    response_object,
    shell_call_item,
    shell_output_item,
    shown_item,
    shown_response,
    upstream_error,
    usage_object,
)
from server.services.responses.request import CreateResponse
from server.services.responses.sandbox import CommandOutcome, PythonOutcome, ToolSandbox
from server.upstream import (
    Finished,
    FunctionTool,
    Message,
    ModelEvent,
    ModelRequest,
    ModelUpstream,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolCallStarted,
    UpstreamError,
    Usage,
)

log = logging.getLogger("localbox.responses")

PYTHON_FUNCTION = FunctionTool(
    name=PYTHON_TOOL,
    description=(
        "Run Python code in a stateful Jupyter-like interpreter (variables, imports and files "
        "persist between calls) and get back what it prints, its errors and its figures. "
        "The working directory is /mnt/data: files the user gave are there, and files saved "
        "there can be downloaded by the user. There is no internet access."
    ),
    parameters={
        "type": "object",
        "properties": {"code": {"type": "string", "description": "The Python code to run."}},
        "required": ["code"],
    },
)
SHELL_FUNCTION = FunctionTool(
    name=SHELL_TOOL,
    description=(
        "Run shell commands (bash) in a Debian container with Python and Node.js, in "
        "/mnt/data, one after the other; get back each command's stdout, stderr and exit code."
    ),
    parameters={
        "type": "object",
        "properties": {
            "commands": {"type": "array", "items": {"type": "string"}},
            "timeout_ms": {"type": "integer", "description": "A time limit per command."},
            "max_output_length": {
                "type": "integer",
                "description": "The most characters of stdout and stderr to keep per command.",
            },
        },
        "required": ["commands"],
    },
)
LIMIT_NOTE = (
    "\n[localbox: the limit of tool calls for this response is reached; answer now, "
    "without calling tools.]"
)
CallKind = Literal["python", "shell", "function", "ignored"]
HOSTED = {"python": "code_interpreter", "shell": "shell"}


@dataclass
class Call:
    """One tool call of the model's, as it streams in and then runs."""

    kind: CallKind
    call_id: str
    name: str
    item: Item | None = None
    output_index: int = -1
    args: PartialArguments = field(default_factory=PartialArguments)
    code: GrowingText = field(default_factory=GrowingText)
    commands: list[GrowingText] = field(default_factory=list)
    commands_done: int = 0


@dataclass(frozen=True)
class TurnSettings:
    max_rounds: int
    max_tool_output: int
    """Characters of a tool's output the model is shown."""


class Turn:
    def __init__(
        self,
        req: CreateResponse,
        response_id: str,
        upstream: ModelUpstream,
        messages: list[Message],
        sandboxes: dict[str, ToolSandbox],
        settings: TurnSettings,
        *,
        streaming: bool,
    ) -> None:
        self.req = req
        self.upstream = upstream
        self.settings = settings
        self.sandboxes = sandboxes
        self.response = response_object(response_id, req, int(time.time()))
        self.messages = messages
        self.emit = EventMaker(streaming)
        self.usage = Usage()
        self.hosted_calls = 0
        self.rounds = 0
        self.withdrawn = False
        self.finish_reason = "stop"
        self.cited: list[tuple[str, ContainerFile]] = []
        self._first: AsyncIterator[ModelEvent] | None = None
        self._first_error: UpstreamError | None = None
        self._calls: list[Call] = []
        self._by_index: dict[int, Call] = {}
        self._text_item: Item | None = None
        self._round_text = ""

    # ---- set-up ------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Check the tools' containers, then open the first upstream request: a failure of
        either is the request's error (nothing was sent to the client yet), except an
        upstream that failed, which fails the response (see events())."""
        for sandbox in self.sandboxes.values():
            await sandbox.check()
        try:
            self._first = await self._open()
        except UpstreamError as exc:
            if exc.passes_through:
                raise UpstreamRejected(exc.message, exc.status or 400, exc.code) from None
            self._first_error = exc

    def _request(self, first: bool) -> ModelRequest:
        tools = list(self.req.functions)
        hosted = {s.tool.kind for s in self.sandboxes.values()}
        if not self.withdrawn:
            if "code_interpreter" in hosted:
                tools.insert(0, PYTHON_FUNCTION)
            if "shell" in hosted:
                tools.insert(0, SHELL_FUNCTION)
        choice = self._tool_choice(first, {t.name for t in tools})
        messages = list(self.messages)
        if self.req.instructions:
            messages.insert(0, Message(role="system", content=[TextPart(self.req.instructions)]))
        return ModelRequest(
            model=self.req.model,
            messages=messages,
            tools=tools,
            tool_choice=choice,
            parallel_tool_calls=self.req.parallel_tool_calls if tools else None,
            temperature=self.req.temperature,
            top_p=self.req.top_p,
            max_output_tokens=self.req.max_output_tokens,
        )

    def _tool_choice(self, first: bool, offered: set[str]) -> str:
        choice = self.req.tool_choice
        if isinstance(choice, dict):
            kind = choice.get("type")
            if kind == "allowed_tools":
                choice = str(choice.get("mode", "auto"))
            else:
                name = {"code_interpreter": PYTHON_TOOL, "shell": SHELL_TOOL}.get(
                    str(kind), str(choice.get("name", ""))
                )
                choice = name if name in offered else "auto"
        if not offered:
            return "none"
        if not first and choice != "none":
            return "auto"  # a forced tool is forced once, or the model could never answer
        return choice

    async def _open(self) -> AsyncIterator[ModelEvent]:
        return await self.upstream.open(self._request(first=self.rounds == 0))

    # ---- the loop ----------------------------------------------------------------------

    async def events(self) -> AsyncIterator[Event]:
        """Run the turn; the events of a streamed response (none when not streaming)."""
        shown = shown_response(self.response, self.req.include)
        for e in self.emit("response.created", response=shown):
            yield e
        for e in self.emit("response.in_progress", response=shown):
            yield e
        try:
            if self._first_error is not None:
                raise self._first_error
            stream = self._first
            assert stream is not None, "prepare() first"
            while True:
                async with aclosing(stream):  # type: ignore[type-var]
                    async for e in self._receive(stream):
                        yield e
                async for e in self._run_calls():
                    yield e
                if not self._go_on():
                    break
                stream = await self._open()
        except UpstreamError as exc:
            if exc.passes_through and not self.emit.streaming:
                raise UpstreamRejected(exc.message, exc.status or 400, exc.code) from None
            log.warning("response %s failed upstream: %s", self.response["id"], exc.message)
            for e in self._fail(exc):
                yield e
            return
        for e in self._complete():
            yield e

    async def run(self) -> dict[str, Any]:
        async for _ in self.events():
            pass
        return self.response

    def _go_on(self) -> bool:
        if self.finish_reason == "length":
            self.response["status"] = "incomplete"
            self.response["incomplete_details"] = {"reason": "max_output_tokens"}
            return False
        if self.finish_reason == "content_filter":
            self.response["status"] = "incomplete"
            self.response["incomplete_details"] = {"reason": "content_filter"}
            return False
        kinds = {c.kind for c in self._calls}
        if "function" in kinds or not kinds & {"python", "shell"}:
            return False  # the client's function call awaits the client; or the model answered
        self.rounds += 1
        limit = self.req.max_tool_calls
        if (limit is not None and self.hosted_calls >= limit) or (
            self.rounds >= self.settings.max_rounds
        ):
            self.withdrawn = True
            last = self.messages[-1]
            last.content.append(TextPart(LIMIT_NOTE))
        return True

    # ---- one answer of the model's -----------------------------------------------------

    async def _receive(self, stream: AsyncIterator[ModelEvent]) -> AsyncIterator[Event]:
        self._calls = []
        self._by_index = {}
        self._round_text = ""
        async for event in stream:
            if isinstance(event, TextDelta):
                for e in self._text(event.text):
                    yield e
            elif isinstance(event, ToolCallStarted):
                for e in self._close_text():
                    yield e
                kind = self._kind(event.name)
                if kind in ("python", "shell"):  # its container, made on first use
                    await self.sandboxes[HOSTED[kind]].ensure()
                for e in self._start_call(event, kind):
                    yield e
            elif isinstance(event, ToolCallDelta):
                call = self._by_index.get(event.index)
                if call is not None:
                    for e in self._feed(call, event.arguments):
                        yield e
            elif isinstance(event, Finished):
                self.finish_reason = event.reason
                self.usage = self.usage + event.usage
        for e in self._close_text():
            yield e
        for call in self._calls:
            for e in self._arguments_done(call):
                yield e
        calls = [
            ToolCall(c.call_id, c.name, c.args.text or "{}")
            for c in self._calls
            if c.kind != "ignored"
        ]
        if self._round_text or calls:
            self.messages.append(
                Message(
                    role="assistant",
                    content=[TextPart(self._round_text)] if self._round_text else [],
                    tool_calls=calls,
                )
            )

    def _add_item(self, item: Item) -> tuple[int, list[Event]]:
        index = len(self.response["output"])
        self.response["output"].append(item)
        return index, self.emit(
            "response.output_item.added", output_index=index, item=shown_item(item, [])
        )

    def _item_done(self, index: int, item: Item) -> list[Event]:
        return self.emit(
            "response.output_item.done",
            output_index=index,
            item=shown_item(item, self.req.include),
        )

    def _text(self, text: str) -> list[Event]:
        events: list[Event] = []
        if self._text_item is None:
            item = message_item(new_item_id("msg"))
            index, events = self._add_item(item)
            item["content"].append(output_text())
            self._text_item = item
            self._text_index = index
            events += self.emit(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=output_text(),
            )
        part = self._text_item["content"][0]
        part["text"] += text
        self._round_text += text
        return events + self.emit(
            "response.output_text.delta",
            item_id=self._text_item["id"],
            output_index=self._text_index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _close_text(self) -> list[Event]:
        item = self._text_item
        if item is None:
            return []
        self._text_item = None
        index = self._text_index
        part = item["content"][0]
        events: list[Event] = []
        for n, annotation in enumerate(self._citations(part["text"])):
            part["annotations"].append(annotation)
            events += self.emit(
                "response.output_text.annotation.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                annotation_index=n,
                annotation=annotation,
            )
        events += self.emit(
            "response.output_text.done",
            item_id=item["id"],
            output_index=index,
            content_index=0,
            text=part["text"],
            logprobs=[],
        )
        events += self.emit(
            "response.content_part.done",
            item_id=item["id"],
            output_index=index,
            content_index=0,
            part=part,
        )
        item["status"] = "completed"
        return events + self._item_done(index, item)

    def _citations(self, text: str) -> list[dict[str, Any]]:
        """Files the code made or changed since the last message, cited where the text names
        them (at 0 where it does not)."""
        cited, self.cited = self.cited, []
        latest = {f.id: (cid, f) for cid, f in cited}
        annotations = []
        for container_id, file in latest.values():
            name = posixpath.basename(file.path)
            start = text.find(name)
            span = (start, start + len(name)) if start >= 0 else (0, 0)
            annotations.append(container_file_citation(container_id, file.id, name, *span))
        return annotations

    def _kind(self, name: str) -> CallKind:
        hosted = {PYTHON_TOOL: "code_interpreter", SHELL_TOOL: "shell"}.get(name)
        if hosted is None or hosted not in self.sandboxes:
            return "function"  # the client's (or one the model made up: the client decides)
        limit = self.req.max_tool_calls
        started = self.hosted_calls + sum(c.kind in ("python", "shell") for c in self._calls)
        if self.withdrawn or (limit is not None and started >= limit):
            return "ignored"
        return "python" if name == PYTHON_TOOL else "shell"

    def _start_call(self, event: ToolCallStarted, kind: CallKind) -> list[Event]:
        call = Call(kind, event.call_id, event.name)
        self._calls.append(call)
        self._by_index[event.index] = call
        if call.kind == "ignored":
            return []
        if call.kind == "python":
            container = self.sandboxes["code_interpreter"].container_id
            call.item = code_interpreter_item(new_item_id("ci"), container)
        elif call.kind == "shell":
            container = self.sandboxes["shell"].container_id
            call.item = shell_call_item(new_item_id("sh"), event.call_id, container)
        else:
            call.item = function_call_item(new_item_id("fc"), event.call_id, event.name)
        call.output_index, events = self._add_item(call.item)
        if call.kind == "python":
            events += self.emit(
                "response.code_interpreter_call.in_progress",
                output_index=call.output_index,
                item_id=call.item["id"],
            )
        return events

    def _feed(self, call: Call, delta: str) -> list[Event]:
        call.args.feed(delta)
        item = call.item
        if item is None:
            return []
        if call.kind == "function":
            item["arguments"] += delta
            return self.emit(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=call.output_index,
                delta=delta,
            )
        partial = call.args.partial()
        if call.kind == "python":
            code = partial.get("code")
            piece = call.code.delta(code) if isinstance(code, str) else ""
            if not piece:
                return []
            item["code"] = call.code.sent
            return self.emit(
                "response.code_interpreter_call_code.delta",
                output_index=call.output_index,
                item_id=item["id"],
                delta=piece,
            )
        commands = partial.get("commands")
        if not isinstance(commands, list):
            return []
        return self._command_events(call, [c for c in commands if isinstance(c, str)], False)

    def _command_events(self, call: Call, commands: list[str], final: bool) -> list[Event]:
        """Shell commands as they grow: added, deltas, and done once the next one starts."""
        assert call.item is not None
        events: list[Event] = []
        for i, command in enumerate(commands):
            if i >= len(call.commands):
                events += self._command_done(call, i - 1)
                call.commands.append(GrowingText())
                call.item["action"]["commands"].append("")
                events += self.emit(
                    "response.shell_call_command.added",
                    output_index=call.output_index,
                    command_index=i,
                    command="",
                )
            piece = call.commands[i].delta(command)
            if piece:
                call.item["action"]["commands"][i] = call.commands[i].sent
                events += self.emit(
                    "response.shell_call_command.delta",
                    output_index=call.output_index,
                    command_index=i,
                    delta=piece,
                )
        if final:
            events += self._command_done(call, len(call.commands) - 1)
        return events

    def _command_done(self, call: Call, index: int) -> list[Event]:
        if index < 0 or index < call.commands_done:
            return []
        call.commands_done = index + 1
        return self.emit(
            "response.shell_call_command.done",
            output_index=call.output_index,
            command_index=index,
            command=call.commands[index].sent,
        )

    def _arguments_done(self, call: Call) -> list[Event]:
        item = call.item
        if item is None:
            return []
        final = call.args.final()
        if call.kind == "function":
            item["status"] = "completed"
            return self.emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=call.output_index,
                name=call.name,
                arguments=item["arguments"],
            ) + self._item_done(call.output_index, item)
        if call.kind == "python":
            code = final.get("code") if final is not None else call.args.text
            code = code if isinstance(code, str) else ""
            events: list[Event] = []
            piece = call.code.delta(code)
            if piece:
                events += self.emit(
                    "response.code_interpreter_call_code.delta",
                    output_index=call.output_index,
                    item_id=item["id"],
                    delta=piece,
                )
            item["code"] = code
            return events + self.emit(
                "response.code_interpreter_call_code.done",
                output_index=call.output_index,
                item_id=item["id"],
                code=code,
            )
        final = final or {}
        commands = final.get("commands")
        commands = [c for c in commands if isinstance(c, str)] if isinstance(commands, list) else []
        events = self._command_events(call, commands, True)
        action = item["action"]
        action["commands"] = commands
        action["timeout_ms"] = _int_or_none(final.get("timeout_ms"))
        action["max_output_length"] = _int_or_none(final.get("max_output_length"))
        item["status"] = "completed"
        return events + self._item_done(call.output_index, item)

    # ---- running the calls -------------------------------------------------------------

    async def _run_calls(self) -> AsyncIterator[Event]:
        for call in self._calls:
            if call.kind == "python":
                self.hosted_calls += 1
                async for e in self._run_python(call):
                    yield e
            elif call.kind == "shell":
                self.hosted_calls += 1
                async for e in self._run_shell(call):
                    yield e

    def _tool_result(self, call: Call, text: str) -> None:
        limit = self.settings.max_tool_output
        if len(text) > limit:
            head = text[: limit // 2]
            tail = text[-(limit // 2) :]
            text = f"{head}\n[... {len(text) - limit} characters cut ...]\n{tail}"
        self.messages.append(Message(role="tool", content=[TextPart(text)], call_id=call.call_id))

    async def _run_python(self, call: Call) -> AsyncIterator[Event]:
        item = call.item
        assert item is not None
        index = call.output_index
        for e in self.emit(
            "response.code_interpreter_call.interpreting", output_index=index, item_id=item["id"]
        ):
            yield e
        sandbox = self.sandboxes["code_interpreter"]
        if not item["code"].strip() and call.args.final() is None:
            outcome_text = "The call's arguments were not JSON with a `code` string."
            item["status"] = "failed"
            item["outputs"] = [{"type": "logs", "logs": outcome_text}]
            self._tool_result(call, outcome_text)
        else:
            outcome = PythonOutcome(status="failed", error="The call did not end.")
            async for part in sandbox.run_python(item["code"]):
                if part is None:
                    for e in self.emit.keepalive():
                        yield e
                else:
                    outcome = part
            logs = outcome.logs + outcome.error
            outputs: list[dict[str, Any]] = [{"type": "logs", "logs": logs}] if logs else []
            outputs += [{"type": "image", "url": url} for url in outcome.images]
            item["outputs"] = outputs
            item["status"] = "completed" if outcome.status == "completed" else "failed"
            notes = []
            if outcome.timed_out:
                notes.append("[the code was stopped: it ran past the time limit]")
            if outcome.images:
                notes.append(f"[{len(outcome.images)} image(s) shown to the user]")
            if outcome.files:
                names = ", ".join(f"/mnt/data/{f.path}" for f in outcome.files)
                notes.append(f"[files written: {names}]")
            self.cited += [(sandbox.container_id, f) for f in outcome.files]
            self._tool_result(call, "\n".join([logs or "(no output)", *notes]))
        for e in self.emit(
            "response.code_interpreter_call.completed", output_index=index, item_id=item["id"]
        ):
            yield e
        for e in self._item_done(index, item):
            yield e

    async def _run_shell(self, call: Call) -> AsyncIterator[Event]:
        assert call.item is not None
        action = call.item["action"]
        limit = action["max_output_length"]
        item = shell_output_item(new_item_id("sho"), call.call_id, limit)
        index, events = self._add_item(item)
        for e in events:
            yield e
        sandbox = self.sandboxes["shell"]
        for n, command in enumerate(action["commands"]):
            outcome = CommandOutcome()
            async for part in sandbox.run_command(command, action["timeout_ms"]):
                if part is None:
                    for e in self.emit.keepalive():
                        yield e
                elif isinstance(part, OutputChunk):
                    for e in self.emit(
                        "response.shell_call_output_content.delta",
                        item_id=item["id"],
                        output_index=index,
                        command_index=n,
                        delta={part.stream: part.text},
                    ):
                        yield e
                else:
                    outcome = part
            self.cited += [(sandbox.container_id, f) for f in outcome.files]
            entry = _command_output(outcome, limit)
            item["output"].append(entry)
            for e in self.emit(
                "response.shell_call_output_content.done",
                item_id=item["id"],
                output_index=index,
                command_index=n,
                output=[entry],
            ):
                yield e
        item["status"] = "completed"
        self._tool_result(call, shell_output_text(item["output"]))
        for e in self._item_done(index, item):
            yield e

    # ---- the end -----------------------------------------------------------------------

    def _finish(self, status: str | None = None) -> None:
        response = self.response
        if status is not None:
            response["status"] = status
        elif response["status"] == "in_progress":
            response["status"] = "completed"
        response["completed_at"] = int(time.time())
        response["usage"] = usage_object(self.usage)
        for item in response["output"]:
            if item.get("status") in ("in_progress", "interpreting"):
                item["status"] = "incomplete"

    def _complete(self) -> list[Event]:
        self._finish()
        status = self.response["status"]
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        return self.emit(kind, response=shown_response(self.response, self.req.include))

    def _fail(self, exc: UpstreamError) -> list[Event]:
        self._finish("failed")
        status = f" (status {exc.status})" if exc.status is not None else ""
        self.response["error"] = upstream_error(f"The model upstream failed{status}: {exc.message}")
        return self.emit(
            "response.failed", response=shown_response(self.response, self.req.include)
        )

    def cancel(self) -> None:
        """The client went away mid-turn: what was made so far is kept as cancelled."""
        if self.response["status"] == "in_progress":
            self._finish("cancelled")


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _command_output(outcome: CommandOutcome, limit: int | None) -> dict[str, Any]:
    stdout, stderr = outcome.stdout, outcome.stderr
    if limit is not None and limit >= 0:
        stdout = stdout[:limit]
        stderr = stderr[: max(0, limit - len(stdout))]
    result: dict[str, Any] = (
        {"type": "timeout"}
        if outcome.timed_out
        else {
            "type": "exit",
            "exit_code": outcome.exit_code if outcome.exit_code is not None else 1,
        }
    )
    return {"stdout": stdout, "stderr": stderr, "outcome": result}
