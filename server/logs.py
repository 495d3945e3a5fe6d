"""Logging: text or JSON lines, request context on every record, untrusted text made harmless.

Nothing a client or a sandbox sends can forge a log line or flood the log through a message:
every message is truncated and its control characters escaped (ESC, CR, LF...), in both formats.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar
from typing import Any

MAX_MESSAGE_CHARS = 4096
"""Longest message kept in one record; the rest is replaced by a count."""

CONTEXT_FIELDS = ("request_id", "container_id", "method", "route", "status", "duration_ms")
TEXT_FIELDS = ("request_id", "container_id")
"""In text lines the others are in the message already."""

request_context: ContextVar[dict[str, str] | None] = ContextVar("request_context", default=None)
"""Fields of the request being served (request_id, container_id), added to every record."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def untrusted(text: str | bytes, limit: int = 200) -> str:
    """Text from a sandbox or a client, safe to log: at most `limit` characters, escaped."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return escape(truncate(text, limit))


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


def escape(text: str) -> str:
    """Control characters as visible escapes, so text stays on its line and the terminal is safe."""
    return _CONTROL.sub(_escape_char, text)


class ContextFilter(logging.Filter):
    """Copies the current request's fields onto the record (unless the call set them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (request_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _context(record: logging.LogRecord, fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: getattr(record, k) for k in fields if getattr(record, k, None) is not None}


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value...`, one line per record (tracebacks indented)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        message = escape(truncate(record.getMessage(), MAX_MESSAGE_CHARS))
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {message}"
        context = _context(record, TEXT_FIELDS)
        if context:
            line += " " + " ".join(f"{k}={escape(str(v))}" for k, v in context.items())
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            # Indented: no traceback line can pass for a record of its own.
            line += "\n" + "\n".join("  " + escape(part) for part in trace.splitlines())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the request's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": truncate(record.getMessage(), MAX_MESSAGE_CHARS),
            **_context(record, CONTEXT_FIELDS),
        }
        if record.exc_info:
            entry["exception"] = truncate(self.formatException(record.exc_info), 16 * 1024)
        return json.dumps(entry, ensure_ascii=True, default=str)


def configure_logging(level: str, fmt: str) -> None:
    """Send every logger (uvicorn's too) to stderr through one handler in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # Every sweep would be logged at INFO otherwise.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
