"""The agent's side of the channel: JSON lines on stdout, every frame bounded.

Requests arrive on stdin, one JSON object per line:
  {"op": "exec", "id", "code", "language": "python"|"bash", "timeout", "max_output",
   "max_image_bytes", "max_error_bytes", "disk_limit"}  -> stream/image frames, then "done"
  {"op": "cancel", "id"}                                  -> the running call stops early
  {"op": "ping", "id"}                                    -> {"id", "type": "pong"}
  {"op": "stop", "id"}        -> the running call stops early, queued ones never run (their
                                 caller, a server process, is gone); {"id", "type": "stopped",
                                 "calls": how many were running or queued}

Each frame stays small whatever the code prints: stream text is sent in pieces of at most
STREAM_PIECE bytes, each stream is capped at max_output bytes per call, images at
max_image_bytes per call, error fields at max_error_bytes, and a done frame lists at most
MAX_FILES_IN_DONE files (more sets "files_incomplete", and the server lists the files).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, NamedTuple

STREAM_PIECE = 32 * 1024
MAX_FILES_IN_DONE = 1000
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")


def clean(text: str) -> str:
    """Text that encodes as UTF-8 (lone surrogates from the kernel become U+FFFD)."""
    return text.encode("utf-8", "replace").decode("utf-8")


def cut(data: bytes, limit: int) -> bytes:
    """data shortened to at most limit bytes without splitting a UTF-8 character."""
    if len(data) <= limit:
        return data
    end = limit
    while end > 0 and (data[end] & 0xC0) == 0x80:
        end -= 1
    return data[:end]


def truncated(text: str, limit: int) -> str:
    """text capped at limit bytes, with a visible marker saying how much was dropped."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data.decode("utf-8")
    kept = cut(data, limit)
    return kept.decode("utf-8") + (
        f"\n[localbox: truncated, {len(data) - len(kept)} more bytes not shown]"
    )


class Emitter:
    """Writes frames to the channel (our stdout), one whole line at a time."""

    def __init__(self, fd: int = 1) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        data = line.encode("utf-8", "replace") + b"\n"
        with self._lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]


class Limits(NamedTuple):
    """A call's output caps. (A NamedTuple, not a dataclass: dataclasses brings inspect,
    a tenth of the agent's start.)"""

    max_output: int = 1 << 20
    max_image_bytes: int = 16 << 20
    max_error_bytes: int = 64 << 10

    @classmethod
    def of(cls, req: dict[str, Any]) -> Limits:
        def positive(key: str) -> int:
            value = req.get(key)
            return value if isinstance(value, int) and value > 0 else cls._field_defaults[key]

        return cls(*(positive(key) for key in cls._fields))


class Output:
    """One call's output: streams capped per stream, images capped per call."""

    def __init__(self, emitter: Emitter, request_id: str, limits: Limits) -> None:
        self._emitter = emitter
        self.id = request_id
        self.limits = limits
        self.sent = {"stdout": 0, "stderr": 0}
        self.dropped = {"stdout": 0, "stderr": 0}
        self.image_bytes = 0

    def stream(self, name: str, text: str) -> None:
        if name not in self.sent:
            name = "stdout"
        data = text.encode("utf-8", "replace")
        room = self.limits.max_output - self.sent[name]
        if len(data) > room:
            kept = cut(data, max(room, 0))
            self.dropped[name] += len(data) - len(kept)
            data = kept
        self.sent[name] += len(data)
        while data:
            piece = cut(data, STREAM_PIECE) or data[:STREAM_PIECE]
            data = data[len(piece) :]
            text = piece.decode("utf-8", "replace")
            self._emitter.emit({"id": self.id, "type": "stream", "name": name, "text": text})

    def image(self, media_type: str, data: str) -> None:
        if self.image_bytes + len(data) > self.limits.max_image_bytes:
            self.image_not_sent(media_type, len(data))
            return
        self.image_bytes += len(data)
        self._emitter.emit({"id": self.id, "type": "image", "media_type": media_type, "data": data})

    def image_not_sent(self, media_type: str, size: object) -> None:
        """Say in stderr that an image was over the call's budget."""
        size = size if isinstance(size, int) and size >= 0 else "many"
        self.stream(
            "stderr",
            f"[localbox: an {media_type} image of {size} bytes (base64) was not "
            f"returned: images are limited to {self.limits.max_image_bytes} bytes per call]\n",
        )

    def error(self, name: str, value: str, traceback: str) -> dict[str, str]:
        limit = self.limits.max_error_bytes
        return {
            "name": truncated(name, 256),
            "value": truncated(value, limit),
            "traceback": truncated(traceback, limit),
        }
