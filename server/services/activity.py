"""Concurrency helpers: which containers are busy running code (they must not expire
meanwhile), per-container locks, and a lock granted in arrival order."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

L = TypeVar("L")


class Activity:
    def __init__(self) -> None:
        self._busy: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def busy(self, container_id: str) -> Iterator[None]:
        with self._lock:
            self._busy[container_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy[container_id] -= 1
                if self._busy[container_id] <= 0:
                    del self._busy[container_id]

    def is_busy(self, container_id: str) -> bool:
        with self._lock:
            return container_id in self._busy


class FifoLock:
    """A lock granted in the order it was asked for (so calls run in arrival order).

    Unlike threading.Lock it is not tied to a thread: a streaming response may be resumed
    on different worker threads while it holds the lock.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    @contextmanager
    def held(self) -> Iterator[bool]:
        """Hold the lock; yields whether the caller had to wait for its turn."""
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            waited = ticket != self._serving
            while ticket != self._serving:
                self._cond.wait()
        try:
            yield waited
        finally:
            with self._cond:
                self._serving += 1
                self._cond.notify_all()


class PerContainer(Generic[L]):
    """One lock (of any kind) per container id, made on first use."""

    def __init__(self, factory: Callable[[], L]) -> None:
        self._factory = factory
        self._locks: dict[str, L] = {}
        self._guard = threading.Lock()

    def __call__(self, container_id: str) -> L:
        with self._guard:
            lock = self._locks.get(container_id)
            if lock is None:
                lock = self._locks[container_id] = self._factory()
            return lock

    def forget(self, container_id: str) -> None:
        with self._guard:
            self._locks.pop(container_id, None)
