"""The bearer-key check every door (REST, MCP) applies when LOCALBOX_API_KEYS is set."""

from __future__ import annotations

import secrets

from server.errors import InvalidApiKey


def check_bearer(keys: list[str], authorization: str | None) -> None:
    """Demand one of keys as the Authorization bearer; with no keys, accept anything."""
    if not keys:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidApiKey(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
        )
    token = token.strip()
    if not any(secrets.compare_digest(token.encode(), key.encode()) for key in keys):
        shown = token[:3] + "*" * 4 + token[-4:] if len(token) > 8 else "****"
        raise InvalidApiKey(f"Incorrect API key provided: {shown}.")
