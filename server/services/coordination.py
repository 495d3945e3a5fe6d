"""Coordination: how this server takes turns with other replicas that share its database.

A server on SQLite is alone with its data dir (a lock file sees to that): `Solo` grants every
turn at once and always leads. Servers on PostgreSQL may be replicas, several processes with one
database and one data dir: `Replicas` takes turns through leases in the database
(store/leases.py), one key per thing that must not be done twice at once:

- `exec:<container>`: a call runs in the container (only its holder talks to the agent);
- `files:<container>`: the container's file records change;
- `leader`: the expiry sweeps and the reconcile (one replica at a time).

A lease lasts `ttl` seconds and is renewed every few seconds while it is held, so one whose
holder died (kill -9) is free again within `ttl`; its taker is told so (`Lease.took_over`), and
stops what the dead holder left running. The in-process locks (the exec queue, the file lock)
stay in front: a replica takes a key once, for the one caller whose turn it is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from server.store import LeaseRepository

log = logging.getLogger("localbox.coordination")

LEADER = "leader"
FIRST_POLL = 0.01
LAST_POLL = 0.25


def exec_key(container_id: str) -> str:
    return f"exec:{container_id}"


def files_key(container_id: str) -> str:
    return f"files:{container_id}"


class LeaseTimeout(Exception):
    """The key stayed held elsewhere for the whole wait."""


@dataclass
class Lease:
    key: str
    took_over: bool = False
    """It was taken from a holder that had stopped renewing it (died mid-work)."""
    waited: bool = False
    """Another holder had it when it was asked for."""
    _release: Callable[[], None] = field(default=lambda: None, repr=False)

    def release(self) -> None:
        release, self._release = self._release, lambda: None
        release()


class Coordination(Protocol):
    replica_id: str

    async def acquire(self, key: str, wait: float) -> Lease:
        """The key's lease, waited for at most `wait` seconds (LeaseTimeout)."""

    def hold(self, key: str, wait: float) -> AbstractContextManager[Lease]:
        """The key's lease for a block, waited for (on this thread) at most `wait` seconds."""

    def try_hold(self, key: str) -> AbstractContextManager[Lease | None]:
        """The key's lease for a block if it is free now, else None."""

    def busy_elsewhere(self, container_ids: Collection[str]) -> set[str]:
        """The containers among these that another replica runs a call in."""

    def leading(self) -> bool:
        """Whether this replica runs the sweeps and the reconcile now."""

    def alive(self) -> set[str]:
        """The replicas that live now (this one included)."""

    def start(self) -> None: ...

    def close(self) -> None: ...


class Solo:
    """One server alone with its database and data dir: every turn is its own at once."""

    def __init__(self, replica_id: str) -> None:
        self.replica_id = replica_id

    async def acquire(self, key: str, wait: float) -> Lease:
        return Lease(key)

    @contextmanager
    def hold(self, key: str, wait: float) -> Iterator[Lease]:
        yield Lease(key)

    @contextmanager
    def try_hold(self, key: str) -> Iterator[Lease | None]:
        yield Lease(key)

    def busy_elsewhere(self, container_ids: Collection[str]) -> set[str]:
        return set()

    def leading(self) -> bool:
        return True

    def alive(self) -> set[str]:
        return {self.replica_id}

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class Replicas:
    """Leases in the shared database, renewed by a thread of this replica's own."""

    def __init__(
        self,
        leases: LeaseRepository,
        replica_id: str,
        *,
        ttl: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.replica_id = replica_id
        self._leases = leases
        self._ttl_ms = int(ttl * 1000)
        self._beat = max(ttl / 5, 0.2)
        self._clock = clock
        self._started_at = int(clock())
        self._where = where()
        self._held: set[str] = set()
        self._releasing: set[str] = set()
        """Held keys being given back: not renewed, nor missed when they are gone."""
        self._lock = threading.Lock()
        self._leading_until = 0.0
        """time.monotonic() until which the leader lease is surely this replica's."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # ------------------------------------------------------------------ taking turns

    def _take(self, key: str) -> Lease | None:
        with self._lock:
            if key in self._held:
                return None  # held by another caller in this process
            self._held.add(key)
        try:
            taken = self._leases.take(key, self.replica_id, self._now_ms(), self._ttl_ms)
        except BaseException:
            with self._lock:
                self._held.discard(key)
            raise
        if taken is None:
            with self._lock:
                self._held.discard(key)
            return None
        if taken.took_over:
            log.warning(
                "took over %s from replica %s, which stopped renewing it", key, taken.previous
            )
        return Lease(key, took_over=taken.took_over, _release=lambda: self._give_back(key))

    def _give_back(self, key: str) -> None:
        with self._lock:
            self._releasing.add(key)
        try:
            self._leases.release(key, self.replica_id)
        except Exception as exc:  # it expires by itself
            log.warning("could not release %s (it expires by itself): %s", key, exc)
        finally:
            with self._lock:
                self._held.discard(key)
                self._releasing.discard(key)

    async def acquire(self, key: str, wait: float) -> Lease:
        for pause in _tries(key, wait):
            if pause:
                await asyncio.sleep(pause)
            lease = await asyncio.to_thread(self._take, key)
            if lease is not None:
                lease.waited = pause > 0
                return lease
        raise AssertionError("_tries ends by raising LeaseTimeout")

    @contextmanager
    def hold(self, key: str, wait: float) -> Iterator[Lease]:
        lease = self._wait_for(key, wait)
        try:
            yield lease
        finally:
            lease.release()

    def _wait_for(self, key: str, wait: float) -> Lease:
        for pause in _tries(key, wait):
            if pause:
                time.sleep(pause)
            lease = self._take(key)
            if lease is not None:
                lease.waited = pause > 0
                return lease
        raise AssertionError("_tries ends by raising LeaseTimeout")

    @contextmanager
    def try_hold(self, key: str) -> Iterator[Lease | None]:
        lease = self._take(key)
        try:
            yield lease
        finally:
            if lease is not None:
                lease.release()

    def busy_elsewhere(self, container_ids: Collection[str]) -> set[str]:
        keys = {exec_key(c): c for c in container_ids}
        holders = self._leases.holders(keys, self._now_ms())
        return {keys[k] for k, holder in holders.items() if holder != self.replica_id}

    # ------------------------------------------------------------------ leading, living

    def leading(self) -> bool:
        return time.monotonic() < self._leading_until

    def alive(self) -> set[str]:
        return self._leases.replicas_seen_since(self._now_ms() - self._ttl_ms) | {self.replica_id}

    def start(self) -> None:
        """Say this replica lives, try for the lead, then keep both up in the background."""
        self._beat_once()
        self._thread = threading.Thread(target=self._keep_up, name="coordination", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._leading_until = 0.0
        try:
            self._leases.leave(self.replica_id)
        except Exception as exc:
            log.warning("could not sign off (my leases expire by themselves): %s", exc)

    def _keep_up(self) -> None:
        while not self._stop.wait(self._beat):
            try:
                self._beat_once()
            except Exception as exc:
                log.warning("could not renew this replica's leases: %s", exc)

    def _bury_dead_neighbours(self) -> None:
        """Replicas on this host, in this process namespace, whose process is gone (a kill -9,
        then a restart): dead for sure, so their leases need not be waited out."""
        dead = [
            replica
            for replica, host, pid in self._leases.replicas()
            if replica != self.replica_id and host == self._where and not _running(pid)
        ]
        if dead:
            log.info("replica(s) %s on this host are gone; their turns are free", ", ".join(dead))
            self._leases.bury(dead)

    def _beat_once(self) -> None:
        started = time.monotonic()
        self._bury_dead_neighbours()
        now = self._now_ms()
        self._leases.heartbeat(self.replica_id, self._where, os.getpid(), self._started_at, now)
        with self._lock:
            held = self._held - self._releasing
        if self.leading():
            held.add(LEADER)
        if held:
            kept = self._leases.renew(self.replica_id, held, now, self._ttl_ms)
            with self._lock:
                lost = (held - kept) & (self._held - self._releasing)
            for key in sorted(lost):
                log.warning("lost the lease on %s (not renewed in time)", key)
            if LEADER in held and LEADER not in kept:
                log.warning("this replica no longer leads (its lease was not renewed in time)")
                self._leading_until = 0.0
            elif LEADER in kept:
                self._leading_until = started + self._ttl_ms / 1000 - self._beat
        if not self.leading() and self._leases.take(LEADER, self.replica_id, now, self._ttl_ms):
            log.info(
                "this replica (%s) leads: it runs the sweeps and the reconcile", self.replica_id
            )
            self._leading_until = started + self._ttl_ms / 1000 - self._beat
        self._leases.forget_replicas(now - 20 * self._ttl_ms)


def _tries(key: str, wait: float) -> Iterator[float]:
    """The pause before each try at a key: none before the first, then growing; LeaseTimeout
    once `wait` seconds are spent."""
    deadline = time.monotonic() + wait
    pause = FIRST_POLL
    yield 0.0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise LeaseTimeout(key)
        yield min(pause, left)
        pause = min(pause * 2, LAST_POLL)


def where() -> str:
    """This process's host, told apart precisely enough that a pid recorded with it can be
    checked by another process that says the same: the host name, the kernel's boot and the
    process namespace. Where those cannot be read, a place no other process shares."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return f"{socket.gethostname()} unchecked-{secrets.token_hex(8)}"
    return f"{socket.gethostname()} {boot} {namespace}"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
