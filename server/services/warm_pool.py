"""WarmPool: spare sandboxes, started ahead of need with the interpreter up and the usual
imports loaded, that a container create claims instead of starting a sandbox.

Spares belong to no container: the API never lists them, and the capacity limits do not count
them (they hold at most `size` sandboxes of the default memory limit). A background thread
keeps `size` of them ready; claiming one is a rename in the runtime (Docker labels cannot
change, so the sandbox's name is what ties it to its container). The refill waits until no
spare has been taken for REFILL_DELAY: making a sandbox keeps the engine and both cores busy,
which would slow the claim itself and the new container's first calls.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence

from server.runtime import ExecDone, ExecRequest, SandboxRuntime, SandboxRuntimeError

log = logging.getLogger("localbox.pool")

RETRY_SECONDS = 5.0
REFILL_DELAY = 0.5
WARM_TIMEOUT = 120.0
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def new_spare_id() -> str:
    return f"spare_{secrets.token_hex(16)}"


def warm_code(modules: Sequence[str]) -> str:
    """Code that imports the modules (skipping missing ones) and binds no name."""
    names = [m for m in modules if _MODULE.match(m)]
    return (
        "def _localbox_warm():\n"
        "    import importlib\n"
        f"    for name in {names!r}:\n"
        "        try:\n"
        "            importlib.import_module(name)\n"
        "        except Exception:\n"
        "            pass\n"
        "_localbox_warm()\n"
        "del _localbox_warm\n"
    )


class WarmPool:
    def __init__(
        self,
        runtime: SandboxRuntime,
        *,
        size: int,
        memory_bytes: int,
        warm_imports: Sequence[str] = (),
        refill_delay: float = REFILL_DELAY,
        has_room: Callable[[], bool] = lambda: True,
        replica: str = "",
    ) -> None:
        self._runtime = runtime
        self.replica = replica
        """The server process whose spares these are (the runtime labels them so)."""
        self.size = size
        self.memory_bytes = memory_bytes
        self._warm_code = warm_code(warm_imports)
        self._ready: deque[str] = deque()
        self._busy: set[str] = set()
        """Spares being created, warmed or claimed: reconcile leaves them alone."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._refill_delay = refill_delay
        self._last_take = float("-inf")
        """When a spare was last taken (time.monotonic): the refill waits REFILL_DELAY."""
        self._closed = threading.Event()
        """Set (under the lock) by close(); ends the refill thread and any pause it waits out."""
        self._failing = False
        self._has_room = has_room
        """Whether the host has the memory for one more spare (else retried later)."""
        self._short = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Keep the pool full in the background (reconcile() removes an earlier run's)."""
        if self.size <= 0:
            return
        self._thread = threading.Thread(target=self._keep_full, name="warm-pool", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop refilling and remove the ready spares (a restart makes new ones)."""
        with self._lock:
            self._closed.set()
            ready = list(self._ready)
            self._ready.clear()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for spare_id in ready:
            self._destroy(spare_id)

    def ready_count(self) -> int:
        with self._lock:
            return len(self._ready)

    def take(self) -> str | None:
        """A ready spare for the caller to claim (then it calls done()), or None if empty."""
        with self._lock:
            spare_id = self._ready.popleft() if self._ready else None
            if spare_id is not None:
                self._busy.add(spare_id)
                self._last_take = time.monotonic()
        if self.size > 0:
            self._wake.set()  # refill in the background, once takes pause
        return spare_id

    def done(self, spare_id: str, claimed: bool) -> None:
        """The caller is through with a spare it took; one it could not claim is removed."""
        with self._lock:
            self._busy.discard(spare_id)
        if not claimed:
            self._destroy(spare_id)

    def reconcile(self, alive: Collection[str] | None = None) -> None:
        """Forget ready spares that stopped or vanished and remove every spare of this
        replica the pool does not own (stopped); the refill restores the count. Given the
        replicas alive, also remove the spares of those that are not (an earlier run of
        this server among them); without, leave other replicas' spares alone."""
        spares = [
            s
            for s in self._runtime.list_spares()
            if s.replica == self.replica or (alive is not None and s.replica not in alive)
        ]
        running = {s.spare_id for s in spares if s.state == "running" and s.replica == self.replica}
        with self._lock:
            lost = [s for s in self._ready if s not in running]
            for spare_id in lost:
                self._ready.remove(spare_id)
            owned = set(self._ready) | self._busy
        for spare in spares:
            if spare.spare_id not in owned:
                log.info("warm pool: removing spare %s (%s)", spare.spare_id, spare.state)
                self._destroy(spare.spare_id)
        if lost:
            log.info("warm pool: %d spare(s) stopped or vanished; refilling", len(lost))
        self._wake.set()

    # ------------------------------------------------------------------ the refill thread

    def _keep_full(self) -> None:
        while not self._closed.is_set():
            self._wake.clear()
            self._wait_for_a_pause()
            if not self._fill_one():
                self._wake.wait(RETRY_SECONDS if self._failing or self._short else None)

    def _wait_for_a_pause(self) -> None:
        """Until REFILL_DELAY has passed since the last take (or the pool closes)."""
        while True:
            with self._lock:
                left = self._last_take + self._refill_delay - time.monotonic()
            if left <= 0 or self._closed.wait(left):
                return

    def _fill_one(self) -> bool:
        """Make one spare if the pool is short; False when there is nothing to do (or the
        runtime failed, or the host is short of memory: retried later)."""
        with self._lock:
            if self._closed.is_set() or len(self._ready) >= self.size:
                return False
        self._short = not self._has_room()
        if self._short:
            return False
        with self._lock:
            spare_id = new_spare_id()
            self._busy.add(spare_id)
        try:
            self._runtime.create_spare(spare_id, self.memory_bytes)
            self._warm(spare_id)
        except SandboxRuntimeError as exc:
            if not self._failing:
                log.warning("warm pool: could not start a spare sandbox: %s", exc)
            self._failing = True
            with self._lock:
                self._busy.discard(spare_id)
            self._destroy(spare_id)
            return False
        if self._failing:
            log.info("warm pool: spares start again")
        self._failing = False
        with self._lock:
            self._busy.discard(spare_id)
            keep = not self._closed.is_set()
            if keep:
                self._ready.append(spare_id)
        if not keep:
            self._destroy(spare_id)
        return keep

    def _warm(self, spare_id: str) -> None:
        """Wait for the interpreter and load the usual imports, leaving no trace."""
        request = ExecRequest(
            id=f"warm-{spare_id}",
            code=self._warm_code,
            language="python",
            timeout=WARM_TIMEOUT,
            max_output=1 << 16,
            disk_limit=-1,  # keep the sandbox's own
            silent=True,
        )
        for event in self._runtime.execute(spare_id, request):
            if isinstance(event, ExecDone) and event.status != "completed":
                name = event.error.name if event.error else event.status
                raise SandboxRuntimeError(f"warming spare {spare_id} failed: {name}")

    def _destroy(self, spare_id: str) -> None:
        try:
            self._runtime.destroy(spare_id)
        except SandboxRuntimeError as exc:
            log.warning("warm pool: could not remove spare %s yet: %s", spare_id, exc)
