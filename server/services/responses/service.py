"""ResponseService: POST /v1/responses and the stored responses (retrieve, delete, input
items). The turn itself is turn.py; this wires its context, containers and storage."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from server.domain import File, Page
from server.errors import InvalidRequest, ModelNotConfigured, ResponseNotFound
from server.ids import new_item_id, new_response_id
from server.services.files import FileService
from server.services.responses.events import Event
from server.services.responses.history import MAX_INLINE_FILE_BYTES, HistoryBuilder
from server.services.responses.items import shown_item, shown_response
from server.services.responses.request import CreateResponse
from server.services.responses.sandbox import SandboxServices, ToolSandbox
from server.services.responses.turn import Turn, TurnSettings
from server.store import ResponseRepository, StoredResponse
from server.upstream import ModelUpstream

log = logging.getLogger("localbox.responses")

TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete"})
ID_PREFIXES = {"message": "msg", "function_call_output": "fco"}


class ResponseService:
    def __init__(
        self,
        repo: ResponseRepository,
        files: FileService,
        sandbox: SandboxServices,
        upstream: ModelUpstream | None,
        settings: TurnSettings,
    ) -> None:
        self._repo = repo
        self._files = files
        self._sandbox = sandbox
        self._upstream = upstream
        self._settings = settings

    async def close(self) -> None:
        if self._upstream is not None:
            await self._upstream.close()

    # ---- create ------------------------------------------------------------------------

    async def create(self, req: CreateResponse) -> dict[str, Any]:
        """Run the turn to its end; the response as the client asked to see it."""
        turn, context_items = await self._start(req, streaming=False)
        await turn.run()
        await run_in_threadpool(self._save, turn, context_items)
        return shown_response(turn.response, req.include)

    async def stream(self, req: CreateResponse) -> AsyncIterator[Event]:
        """Start the turn (errors before its first event are raised here) and return its
        events; leaving them early cancels the turn."""
        turn, context_items = await self._start(req, streaming=True)
        return self._events(turn, context_items)

    async def _events(
        self, turn: Turn, context_items: list[dict[str, Any]]
    ) -> AsyncIterator[Event]:
        saved = False
        try:
            async for event in turn.events():
                if event["type"] in TERMINAL:
                    await run_in_threadpool(self._save, turn, context_items)
                    saved = True
                yield event
        finally:
            if not saved:
                turn.cancel()
                self._save(turn, context_items)  # no await: the task may be cancelled

    async def _start(
        self, req: CreateResponse, *, streaming: bool
    ) -> tuple[Turn, list[dict[str, Any]]]:
        if self._upstream is None:
            raise ModelNotConfigured()
        builder, context_items = await run_in_threadpool(self._context, req)
        response_id = new_response_id()
        context = builder.context
        sandboxes: dict[str, ToolSandbox] = {
            tool.kind: ToolSandbox(
                tool,
                self._sandbox,
                f"{tool.kind} for {response_id}",
                reuse=context.containers.get(tool.kind),
                files=context.files,
            )
            for tool in req.sandbox_tools
        }
        turn = Turn(
            req,
            response_id,
            self._upstream,
            context.messages,
            sandboxes,
            self._settings,
            streaming=streaming,
        )
        await turn.prepare()
        return turn, context_items

    def _context(self, req: CreateResponse) -> tuple[HistoryBuilder, list[dict[str, Any]]]:
        builder = HistoryBuilder(self._file, self._image)
        earlier: list[dict[str, Any]] = []
        if req.previous_response_id is not None:
            stored = self._stored(req.previous_response_id, "previous_response_id")
            earlier = [*stored.input_items, *stored.response["output"]]
            builder.add(earlier, "previous_response_id", this_turn=False)
        items = [self._resolved(item, i) for i, item in enumerate(_input_items(req.input))]
        builder.add(items, "input", this_turn=True)
        return builder, [*earlier, *items]

    def _resolved(self, item: Any, index: int) -> Any:
        """An item_reference replaced by the item it names (stored with the new response)."""
        if not isinstance(item, dict) or item.get("type") != "item_reference":
            return item
        found = self._repo.find_item(str(item.get("id")))
        if found is None:
            raise InvalidRequest(
                f"Item with id '{item.get('id')}' not found.", f"input[{index}].id"
            )
        return found

    def _file(self, file_id: str, param: str) -> File:
        return self._files.retrieve(file_id, param)

    def _image(self, file_id: str, param: str) -> str:
        _, source = self._files.open(file_id, param)
        with source:
            data = source.read(MAX_INLINE_FILE_BYTES + 1)
        if len(data) > MAX_INLINE_FILE_BYTES:
            raise InvalidRequest("The image file is too large.", param)
        kind = _image_type(data)
        return f"data:{kind};base64,{base64.b64encode(data).decode()}"

    def _save(self, turn: Turn, context_items: list[dict[str, Any]]) -> None:
        if not turn.req.store:
            return
        try:
            self._repo.put(turn.response, context_items)
        except Exception:
            log.exception("could not store response %s", turn.response["id"])

    # ---- stored responses --------------------------------------------------------------

    def _stored(self, response_id: str, param: str = "response_id") -> StoredResponse:
        stored = self._repo.get(response_id)
        if stored is None:
            raise ResponseNotFound(response_id, param)
        return stored

    def retrieve(self, response_id: str, include: list[str]) -> dict[str, Any]:
        return shown_response(self._stored(response_id).response, include)

    def delete(self, response_id: str) -> None:
        if not self._repo.delete(response_id):
            raise ResponseNotFound(response_id)

    def input_items(
        self,
        response_id: str,
        *,
        include: list[str],
        limit: int,
        order: str,
        after: str | None,
        before: str | None,
    ) -> Page[dict[str, Any]]:
        items = [shown_item(i, include) for i in self._stored(response_id).input_items]
        if order == "desc":
            items.reverse()
        ids = [i.get("id") for i in items]
        start = 0
        if after is not None:
            if after not in ids:
                raise InvalidRequest(f"No input item with id '{after}'.", "after")
            start = ids.index(after) + 1
        end = len(items)
        if before is not None:
            if before not in ids:
                raise InvalidRequest(f"No input item with id '{before}'.", "before")
            end = ids.index(before)
            start = max(start, end - limit) if after is None else start
        page = items[start:end]
        return Page(items=page[:limit], has_more=len(page) > limit or start + limit < end)


def _input_items(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request's input as items, each with an id (as OpenAI lists them)."""
    if isinstance(value, str):
        value = [{"type": "message", "role": "user", "content": value}]
    items = []
    for item in value:
        item = dict(item) if isinstance(item, dict) else item
        if isinstance(item, dict):
            kind = item.setdefault("type", "message")
            if kind == "message":
                item.setdefault("status", "completed")
                if isinstance(item.get("content"), str):
                    part = "output_text" if item.get("role") == "assistant" else "input_text"
                    item["content"] = [{"type": part, "text": item["content"]}]
            if not isinstance(item.get("id"), str):
                item["id"] = new_item_id(ID_PREFIXES.get(str(kind), "item"))
        items.append(item)
    return items


def _image_type(data: bytes) -> str:
    for magic, kind in (
        (b"\x89PNG", "image/png"),
        (b"\xff\xd8", "image/jpeg"),
        (b"GIF8", "image/gif"),
        (b"RIFF", "image/webp"),
    ):
        if data.startswith(magic):
            return kind
    return "application/octet-stream"
