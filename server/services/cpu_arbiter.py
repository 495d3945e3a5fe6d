"""Sandboxes that keep their CPU busy step aside for the ones that do not.

Every sandbox may use LOCALBOX_SANDBOX_CPUS cores, and all weigh the same for the kernel's
scheduler. On a small host one sandbox busy for good (a flood of requests through its proxy,
a training loop) then adds its scheduling delays to every other sandbox's calls. So once a
sandbox has used more than BUSY_SHARE of its quota for BUSY_SECONDS in a row, it is weighed
least: it keeps whatever CPU no one else wants (all of it on an idle host) and other sandboxes
run first when they wake. After CALM_SECONDS below that it weighs as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.runtime import SandboxRuntime, SandboxRuntimeError

log = logging.getLogger("localbox.cpu")

BUSY_SHARE = 0.8
BUSY_SECONDS = 3
CALM_SECONDS = 5
LIST_SECONDS = 5.0
"""How often the running sandboxes are listed again (their CPU is read every second)."""


@dataclass
class _Seen:
    usage: float
    at: float
    busy: int = 0
    calm: int = 0
    low: bool = False


class CpuArbiter:
    def __init__(
        self,
        runtime: SandboxRuntime,
        running_ids: Callable[[], list[str]],
        cpus: float,
        interval: float = 1.0,
    ) -> None:
        """running_ids: the containers whose sandboxes run (from the store: no engine call)."""
        self._runtime = runtime
        self._running_ids = running_ids
        self._cpus = cpus
        self._interval = interval
        self._seen: dict[str, _Seen] = {}
        self._ids: list[str] = []
        self._listed: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unavailable_logged = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cpu-arbiter", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def low(self) -> list[str]:
        """The sandboxes weighed least now."""
        return [ident for ident, seen in list(self._seen.items()) if seen.low]

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.tick(time.monotonic())
            except SandboxRuntimeError as exc:
                log.debug("cpu arbiter: %s", exc)
            except Exception:
                log.exception("cpu arbiter failed; trying again")

    def tick(self, now: float) -> None:
        """Read each running sandbox's CPU since the last tick and weigh it accordingly."""
        if self._listed is None or now - self._listed >= LIST_SECONDS:
            self._ids = self._running_ids()
            self._listed = now
            for gone in set(self._seen) - set(self._ids):
                del self._seen[gone]
        read = [self._weigh(ident, now) for ident in self._ids]
        if read and not any(read) and not self._unavailable_logged:
            self._unavailable_logged = True
            log.info(
                "sandboxes' CPU cgroups are not visible to the server (is it in a container?): "
                "busy sandboxes will not step aside for others"
            )

    def _weigh(self, ident: str, now: float) -> bool:
        """Whether the sandbox's CPU could be read."""
        usage = self._runtime.cpu_usage(ident)
        if usage is None:
            self._seen.pop(ident, None)
            return False
        seen = self._seen.get(ident)
        if seen is None or usage < seen.usage:
            self._seen[ident] = _Seen(usage, now, low=seen.low if seen else False)
            return True
        elapsed = now - seen.at
        share = (usage - seen.usage) / (elapsed * self._cpus) if elapsed > 0 else 0.0
        seen.usage, seen.at = usage, now
        if share >= BUSY_SHARE:
            seen.busy, seen.calm = seen.busy + 1, 0
            stepping_aside = not seen.low and seen.busy >= BUSY_SECONDS
            if stepping_aside and self._runtime.set_cpu_low(ident, True):
                seen.low = True
                log.info(
                    "container %s kept its CPU busy for %d s: it now gets the CPU no other "
                    "sandbox wants, until it calms down",
                    ident,
                    BUSY_SECONDS,
                )
        else:
            seen.busy, seen.calm = 0, seen.calm + 1
            if seen.low and seen.calm >= CALM_SECONDS and self._runtime.set_cpu_low(ident, False):
                seen.low = False
                log.info("container %s calmed down: it weighs as much as any sandbox again", ident)
        return True
