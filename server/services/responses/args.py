"""Tool-call arguments as they stream in: the JSON is incomplete until the end, yet the
code (or the commands) inside it is shown as it grows. jiter parses the incomplete text."""

from __future__ import annotations

import json
from typing import Any

import jiter


class PartialArguments:
    """The arguments seen so far of one call."""

    def __init__(self) -> None:
        self.text = ""

    def feed(self, delta: str) -> None:
        self.text += delta

    def partial(self) -> dict[str, Any]:
        """What can be read of the arguments so far (strings cut where the text ends)."""
        try:
            value = jiter.from_json(self.text.encode(), partial_mode="trailing-strings")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def final(self) -> dict[str, Any] | None:
        """The complete arguments, or None when they are not a JSON object."""
        try:
            value = json.loads(self.text or "{}")
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class GrowingText:
    """Hands out only what was added to a string since the last look, so that the pieces
    sent add up to the whole."""

    def __init__(self) -> None:
        self.sent = ""

    def delta(self, now: str) -> str:
        if len(now) <= len(self.sent) or not now.startswith(self.sent):
            return ""
        piece = now[len(self.sent) :]
        self.sent = now
        return piece
