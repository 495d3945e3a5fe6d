"""Limits that hold whether or not a call runs: disk, processes, and stray processes.

A thread samples /mnt/data's allocated size every INTERVAL seconds (longer when the tree is
so big that a scan takes a while). While a call runs, the call's own loop acts on what it
reports (interrupt first, so state can be kept). Between calls it acts itself:

- every process of the sandbox user except the interpreter is killed (nothing a call
  started outlives it, however it daemonised);
- if /mnt/data grows past the disk limit, or the process limit is nearly used up, every
  process of the sandbox user is killed, the interpreter included (a thread in it is the
  only thing that could have done it), and the next call is told so.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from localbox_agent import fileops, procs

INTERVAL = 0.25
DUTY = 0.1
"""At most this share of a core goes to scanning: a tree whose scan takes 50 ms is checked
every 0.5 s."""


def log(message: str) -> None:
    sys.stderr.write(f"localbox-agent: {message}\n")
    sys.stderr.flush()


class Watchdog:
    def __init__(self, disk_limit: int, kernel_pid: Callable[[], int | None]) -> None:
        self.disk_limit = disk_limit
        self.usage = 0
        self._kernel_pid = kernel_pid
        self._lock = threading.Lock()
        self._in_call = False
        self._baseline = 0
        self._notice: str | None = None
        self._bad_names: set[bytes] = set()

    # ------------------------------------------------------------ used by the call runner

    def begin_call(self, disk_limit: int) -> fileops.Snapshot:
        """Mark a call as running (the watchdog leaves its processes alone); returns the files
        as they are now (self.usage is then the call's baseline)."""
        with self._lock:
            self._in_call = True
            if disk_limit >= 0:
                self.disk_limit = disk_limit
        return self.snapshot()

    def end_call(self) -> fileops.Snapshot:
        """Kill what the call left running (all but the interpreter), go back to guarding, and
        return the files as the call left them."""
        with self._lock:
            procs.kill_user_processes(keep=self._keep())
            files = self.snapshot()
            self._baseline = self.usage
            self._in_call = False
        return files

    def take_notice(self) -> str | None:
        with self._lock:
            notice, self._notice = self._notice, None
        return notice

    def snapshot(self) -> fileops.Snapshot:
        files, self.usage = fileops.scan(on_bad_name=self._bad_name)
        return files

    def over_disk(self, baseline: int) -> bool:
        """Past the limit, and grown since baseline (code that deletes files may still run)."""
        return 0 < self.disk_limit < self.usage and self.usage > baseline

    # ------------------------------------------------------------ the thread

    def start(self) -> None:
        threading.Thread(target=self._run, name="watchdog", daemon=True).start()

    def _run(self) -> None:
        while True:
            began = time.monotonic()
            try:
                self._tick()
            except Exception as exc:  # keep guarding whatever happens
                log(f"watchdog: {exc!r}")
            spent = time.monotonic() - began
            time.sleep(max(INTERVAL, spent / DUTY))

    def _tick(self) -> None:
        self.snapshot()
        usage = self.usage
        with self._lock:
            if self._in_call:
                return
            if procs.pids_exhausted():
                self._clear_out(
                    "processes of the sandbox reached its process limit between calls (a fork "
                    "bomb?)"
                )
            elif self.over_disk(self._baseline):
                self._clear_out(
                    f"/mnt/data grew past the disk limit of {self.disk_limit} bytes between "
                    f"calls ({usage} bytes)"
                )
            else:
                procs.kill_user_processes(keep=self._keep())

    def _clear_out(self, why: str) -> None:
        log(f"killing every process of the sandbox user: {why}")
        procs.kill_user_processes()
        self._notice = (
            f"[localbox: {why}; every process of the sandbox user was killed and the "
            "interpreter restarted, so its state is lost]\n"
        )
        self.snapshot()
        self._baseline = self.usage

    def _keep(self) -> set[int]:
        pid = self._kernel_pid()
        return {pid} if pid else set()

    def _bad_name(self, raw: bytes) -> None:
        if raw not in self._bad_names and len(self._bad_names) < 1000:
            self._bad_names.add(raw)
            log(f"ignoring a file whose name is not UTF-8: {raw[-200:]!r}")
