"""A clock the service tests move by hand."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float = 2_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
