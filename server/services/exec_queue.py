"""Exec calls per container: one runs, up to `depth` wait in arrival order, more are refused.

This is the one place that decides who may run code in a container and when: waiting is
asynchronous (a waiter holds no thread), bounded in number (the next one gets 429
container_busy) and in time (a waiter gives up when its own timeout has passed), and the
turn is given back when the call's work ends, whether or not anybody still listens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from server.errors import ContainerBusy


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0


class ExecQueues:
    def __init__(self, depth: int) -> None:
        self.depth = depth
        self._slots: dict[str, _Slot] = {}

    def waiting(self, container_id: str) -> int:
        slot = self._slots.get(container_id)
        return slot.waiting if slot else 0

    def check_room(self, container_id: str) -> None:
        """429 at once when the container's queue is full (before any other work)."""
        slot = self._slots.get(container_id)
        if slot is not None and slot.lock.locked() and slot.waiting >= self.depth:
            raise self._full(slot)

    def _full(self, slot: _Slot) -> ContainerBusy:
        return ContainerBusy(
            f"The container is busy: a call is running and {slot.waiting} more are waiting "
            f"(LOCALBOX_EXEC_QUEUE_DEPTH={self.depth}). Try again when they have finished."
        )

    async def acquire(self, container_id: str, wait: float) -> tuple[Callable[[], None], bool]:
        """Wait (at most `wait` seconds) for the container's turn. Returns the function that
        gives the turn back (call it exactly once, on the event loop) and whether the caller
        had to wait."""
        slot = self._slots.setdefault(container_id, _Slot())
        waited = slot.lock.locked()
        if waited and slot.waiting >= self.depth:
            raise self._full(slot)
        slot.waiting += 1
        try:
            await asyncio.wait_for(slot.lock.acquire(), wait)
        except TimeoutError:
            raise ContainerBusy(
                f"The call waited its whole timeout ({wait:g} s) for earlier calls on this "
                "container to finish and never ran. Try again, or give it a longer timeout."
            ) from None
        finally:
            slot.waiting -= 1

        def release() -> None:
            slot.lock.release()
            if not slot.lock.locked() and slot.waiting == 0:
                self._slots.pop(container_id, None)

        return release, waited
