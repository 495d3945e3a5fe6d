"""localbox agent: the sandbox's main process, executing code for the server.

It runs as root with few capabilities; the user's code runs as uid 1000 and can neither
read, signal nor trace it, nor reach the channel (its stdin and stdout, the Docker attach
stream; see protocol.py). Threads: this one reads requests, a worker runs calls one at a
time, and the watchdog guards the limits all the time.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
import time
from typing import Any

from localbox_agent import procs
from localbox_agent.calls import NOT_RUN, PIDS_ERROR, Watch, disk_error
from localbox_agent.kernel import PythonKernel
from localbox_agent.protocol import MAX_FILES_IN_DONE, Emitter, Limits, Output
from localbox_agent.shell import run_bash
from localbox_agent.watchdog import Watchdog, log

MAX_REQUEST = 64 << 20


class Agent:
    def __init__(self, emitter: Emitter) -> None:
        self.emitter = emitter
        self.kernel = PythonKernel()
        disk_limit = int(os.environ.get("LOCALBOX_DISK_LIMIT", "0") or 0)
        self.watchdog = Watchdog(disk_limit, lambda: self.kernel.pid)
        self.requests: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
        self._received = 0
        """Requests queued so far, each numbered in turn (by the reader only)."""
        self._stopped_through = 0
        """Requests numbered up to this were stopped by a "stop": never run."""
        self._current: tuple[str, Watch] | None = None
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------ the reader (main thread)

    def read_requests(self) -> None:
        stdin = sys.stdin.buffer
        while True:
            raw = stdin.readline(MAX_REQUEST)
            if not raw:
                return
            if not raw.endswith(b"\n"):  # too long: drop the rest of the line
                while (more := stdin.readline(MAX_REQUEST)) and not more.endswith(b"\n"):
                    pass
                log("ignoring a request longer than the limit")
                continue
            try:
                req = json.loads(raw)
            except ValueError:
                log(f"ignoring a line that is not JSON: {raw[:80]!r}")
                continue
            if isinstance(req, dict):
                self.handle(req)

    def handle(self, req: dict[str, Any]) -> None:
        """Act on one request: answer a ping, cancel or stop calls, or queue a call."""
        op = req.get("op")
        if op == "ping":
            self.emitter.emit({"id": req.get("id"), "type": "pong"})
        elif op == "cancel":
            self.cancel(str(req.get("id")))
        elif op == "stop":
            stopped = self.stop_all()
            self.emitter.emit({"id": req.get("id"), "type": "stopped", "calls": stopped})
        else:
            self._received += 1
            self.requests.put((self._received, req))

    def cancel(self, request_id: str) -> None:
        with self._lock:
            if self._current is not None and self._current[0] == request_id:
                self._current[1].cancel_event.set()
            else:
                self._cancelled.add(request_id)

    def stop_all(self) -> int:
        """Stop the running call and drop the queued ones: everything sent before now. A new
        server process (or a new channel) says so first, for their callers are gone. The
        running code is interrupted like a cancelled call, so the interpreter keeps its state
        if the code stops on an interrupt. Returns how many calls were running or queued."""
        with self._lock:
            self._stopped_through = self._received
            self._cancelled.clear()
            stopped = self.requests.qsize()  # for the log: about, a call being taken is missed
            if self._current is not None:
                self._current[1].cancel_event.set()
                stopped += 1
        if stopped:
            log(f"stopping {stopped} call(s) whose caller is gone")
        return stopped

    # ------------------------------------------------------------ the worker

    def work(self) -> None:
        self._boot_kernel()
        while True:
            number, req = self.requests.get()
            try:
                if req.get("op") == "exec":
                    self.execute(req, number)
                else:
                    self._done(req, "error", f"unknown op {req.get('op')!r}")
            except Exception as exc:  # never die on one bad request
                log(f"request failed: {exc!r}")
                self._done(req, "error", str(exc)[:1000], name=type(exc).__name__)

    def _boot_kernel(self) -> None:
        """Start the interpreter now, so the first call does not wait for it."""
        self.watchdog.begin_call(-1)
        try:
            self.kernel.ensure()
        except Exception as exc:
            log(f"the interpreter did not start: {exc!r}")
        finally:
            self.watchdog.end_call()

    def _done(self, req: dict[str, Any], status: str, value: str, name: str = "BadRequest") -> None:
        self.emitter.emit(
            {
                "id": req.get("id"),
                "type": "done",
                "status": status,
                "error": {"name": name, "value": value, "traceback": ""},
                "state_preserved": self.kernel.alive(),
            }
        )

    def execute(self, req: dict[str, Any], number: int) -> None:
        started = time.monotonic()
        request_id = str(req.get("id"))
        out = Output(self.emitter, request_id, Limits.of(req))
        timeout = req.get("timeout")
        timeout = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else 30.0
        disk_limit = req.get("disk_limit")
        before = self.watchdog.begin_call(disk_limit if isinstance(disk_limit, int) else -1)
        watch = Watch(timeout, self.watchdog)
        with self._lock:
            self._current = (request_id, watch)
            if request_id in self._cancelled or number <= self._stopped_through:
                self._cancelled.discard(request_id)
                watch.cancel_event.set()
        notice = self.watchdog.take_notice()
        try:
            if notice:
                out.stream("stderr", notice)
            code = str(req.get("code", ""))
            if watch.cancelled():  # before it began: its caller is gone, nothing is run
                result = {"status": "error", "error": dict(NOT_RUN), "state_preserved": True}
            elif req.get("language") == "bash":
                pid = self.kernel.pid
                result = run_bash(code, out, watch, {pid} if pid else set())
            else:
                result = self.kernel.run(code, out, watch, silent=req.get("silent") is True)
            if procs.pids_exhausted():  # something left behind keeps forking: clear out
                self.kernel.restart()
                result.update(status="error", error=PIDS_ERROR, state_preserved=False)
        finally:
            with self._lock:
                self._current = None
            after = self.watchdog.end_call()
        if notice:
            result["state_preserved"] = False
        if result.get("status") == "completed" and self.watchdog.over_disk(watch.baseline):
            result.update(status="error", error=disk_error(self.watchdog.disk_limit))
        changed = [
            {"path": p, "bytes": s, "mtime": m / 1e9}
            for p, (s, m) in after.items()
            if before.get(p) != (s, m)
        ]
        removed = [p for p in before if p not in after]
        result.update(
            id=request_id,
            type="done",
            files=changed[:MAX_FILES_IN_DONE],
            removed=removed[:MAX_FILES_IN_DONE],
            files_incomplete=max(len(changed), len(removed)) > MAX_FILES_IN_DONE,
            truncated=out.dropped,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        self.emitter.emit(result)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    # Nothing the user's code starts may inherit the channel: the kernel and bash get
    # /dev/null or pipes of their own, and every other fd is closed on exec.
    emitter = Emitter(os.dup(1))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # a stray print() here can never corrupt the channel
    os.close(devnull)
    procs.limit_user_tasks()
    agent = Agent(emitter)
    agent.watchdog.start()
    threading.Thread(target=agent.work, name="worker", daemon=True).start()
    emitter.emit({"id": None, "type": "ready"})
    agent.read_requests()
    agent.kernel.stop()


if __name__ == "__main__":
    main()
