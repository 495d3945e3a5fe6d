"""Pacing a sandbox's new connections to its proxy process."""

from __future__ import annotations

import time


class Pacer:
    """A token bucket for the sandbox's new connections: `burst` at once, then `rate` a
    second. A connection past that waits for its turn, so what a flood of new connections
    (each a TLS handshake or two for the proxy) costs this process is bounded, whatever
    the sandbox does."""

    def __init__(self) -> None:
        self.tokens: float | None = None
        self.last = time.monotonic()

    def wait(self, rate: float, burst: int) -> float:
        """Seconds the next connection waits before it is served (0: at once)."""
        now = time.monotonic()
        tokens = burst if self.tokens is None else self.tokens
        self.tokens = min(float(burst), tokens + (now - self.last) * rate) - 1
        self.last = now
        return 0.0 if self.tokens >= 0 else -self.tokens / rate
