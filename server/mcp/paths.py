"""Paths as MCP callers give them: absolute under /mnt/data, or relative to it."""

from __future__ import annotations

import posixpath

from server.errors import InvalidRequest

ROOT = "/mnt/data"


def relative(path: str, param: str = "path") -> str:
    """The path relative to /mnt/data ("" for /mnt/data itself); refuse what leaves it."""
    raw = path.strip()
    if "\0" in raw:
        raise InvalidRequest("The path contains a NUL byte.", param)
    if raw.startswith("/"):
        if raw != ROOT and not raw.startswith(ROOT + "/"):
            raise InvalidRequest(
                f"The path {path!r} is outside {ROOT}: give a path under {ROOT}, or one "
                f"relative to it.",
                param,
            )
        raw = raw[len(ROOT) :]
    normal = posixpath.normpath("/" + raw).lstrip("/")
    if any(part == ".." for part in raw.split("/")):
        raise InvalidRequest(f"The path {path!r} leaves {ROOT}.", param)
    return "" if normal == "." else normal


def absolute(rel: str) -> str:
    return f"{ROOT}/{rel}" if rel else ROOT
