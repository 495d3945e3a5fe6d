"""Frames from a sandbox's agent: read by one bounded reader, validated in one place.

The agent runs next to code nobody reviewed, so nothing it sends is trusted: a line longer
than the frame limit is dropped (read past in linear time, never held whole), every field is
type- and range-checked, every path is normalised and must stay under /mnt/data, and frames
of unknown types are dropped and logged once.
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
from typing import Any

from server.runtime.base import (
    ExecDone,
    ExecError,
    ExecEvent,
    ImageOutput,
    OutputChunk,
    SandboxFile,
)

log = logging.getLogger("localbox.runtime")

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/svg+xml", "image/gif"})
STATUSES = frozenset({"completed", "error", "timeout"})
MAX_PATH_BYTES = 4096


class LineReader:
    """Splits a byte stream into lines of at most max_line bytes, in linear time."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer known to hold no newline
        self._skipping = False
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_line(self) -> bytes | None:
        """The next complete line (without its newline), or None until more is fed."""
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end < 0:
                self._scanned = len(self._buffer)
                if len(self._buffer) > self.max_line:
                    self._drop_buffer()
                return None
            if self._skipping or end > self.max_line:
                del self._buffer[: end + 1]
                self._scanned = 0
                if not self._skipping:
                    self._note_dropped()
                self._skipping = False
                continue
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._scanned = 0
            return line

    def discard_complete(self) -> None:
        """Drop every complete line buffered, keeping a last one not ended yet."""
        end = self._buffer.rfind(b"\n")
        if end >= 0:
            del self._buffer[: end + 1]
            self._skipping = False
        self._scanned = 0
        if len(self._buffer) > self.max_line:
            self._drop_buffer()

    def _drop_buffer(self) -> None:
        if not self._skipping:
            self._note_dropped()
        self._skipping = True
        self._buffer.clear()
        self._scanned = 0

    def _note_dropped(self) -> None:
        self.dropped += 1
        if self.dropped == 1:
            log.warning("dropped a frame from a sandbox longer than %d bytes", self.max_line)


def decode(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def confined_path(value: object) -> str | None:
    """value as a normalised path relative to /mnt/data, or None if it is not one."""
    if not isinstance(value, str) or not value or "\0" in value:
        return None
    if len(value.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if value.startswith("/mnt/data/"):
        value = value[len("/mnt/data/") :]
    if value.startswith("/"):
        return None
    path = posixpath.normpath(value)
    if path in (".", "..") or path.startswith("../"):
        return None
    return path


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _text(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


class FrameParser:
    """Turns decoded frames into events; what does not check out is dropped and logged once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._warned: set[str] = set()

    def warn_once(self, what: str, example: object = None) -> None:
        """Log the first of each kind of problem (with an example), and no more."""
        if what not in self._warned:
            self._warned.add(what)
            shown = "" if example is None else f": {str(example)[:200]!r}"
            log.warning("sandbox %s: ignored %s%s", self.name, what, shown)

    def event(self, frame: dict[str, Any]) -> ExecEvent | None:
        kind = frame.get("type")
        if kind == "stream":
            text = frame.get("text")
            if not isinstance(text, str):
                self.warn_once("a stream frame without text")
                return None
            return OutputChunk(
                stream="stderr" if frame.get("name") == "stderr" else "stdout", text=text
            )
        if kind == "image":
            media_type, data = frame.get("media_type"), frame.get("data")
            if media_type not in IMAGE_TYPES or not isinstance(data, str):
                self.warn_once("an image frame of an unknown type")
                return None
            return ImageOutput(media_type=str(media_type), data=data)
        if kind == "done":
            return self._done(frame)
        self.warn_once("a frame of unknown type", kind)
        return None

    def _done(self, frame: dict[str, Any]) -> ExecDone:
        status = frame.get("status")
        err = frame.get("error")
        error = None
        if isinstance(err, dict):
            error = ExecError(
                _text(err.get("name"), "Error"),
                _text(err.get("value")),
                _text(err.get("traceback")),
            )
        elif err is not None:
            self.warn_once("an error that is not an object")
        exit_code = frame.get("exit_code")
        truncated: dict[str, int] = {}
        raw_truncated = frame.get("truncated")
        if isinstance(raw_truncated, dict):
            for stream in ("stdout", "stderr"):
                count = _count(raw_truncated.get(stream, 0))
                if count is None:
                    self.warn_once("a truncated count that is not a non-negative integer")
                elif count:
                    truncated[stream] = count
        return ExecDone(
            status=status if status in STATUSES else "error",
            error=error,
            state_preserved=frame.get("state_preserved") is True,
            files=self._files(frame.get("files")),
            removed=self._paths(frame.get("removed")),
            truncated=truncated,
            exit_code=exit_code
            if isinstance(exit_code, int) and not isinstance(exit_code, bool)
            else None,
            duration_ms=_count(frame.get("duration_ms")) or 0,
            files_incomplete=frame.get("files_incomplete") is True,
        )

    def _files(self, raw: object) -> list[SandboxFile]:
        files = []
        for entry in raw if isinstance(raw, list) else []:
            if not isinstance(entry, dict):
                self.warn_once("a file entry that is not an object")
                continue
            path = confined_path(entry.get("path"))
            size = _count(entry.get("bytes"))
            mtime = _number(entry.get("mtime"))
            if path is None:
                self.warn_once("a file path outside /mnt/data", entry.get("path"))
            elif size is None or mtime is None:
                self.warn_once("a file entry whose size or time is not a non-negative number")
            else:
                files.append(SandboxFile(path=path, bytes=size, mtime=mtime))
        return files

    def _paths(self, raw: object) -> list[str]:
        paths = []
        for value in raw if isinstance(raw, list) else []:
            path = confined_path(value)
            if path is None:
                self.warn_once("a removed path outside /mnt/data", value)
            else:
                paths.append(path)
        return paths
