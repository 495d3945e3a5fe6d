"""A "stop" ends what an earlier server left: the running call is interrupted, the queued
ones never run, and calls sent after it run as usual (the agent's logic, outside Docker)."""

from __future__ import annotations

import threading
import time
from typing import Any

from localbox_agent.__main__ import Agent  # type: ignore[import-not-found]
from localbox_agent.calls import Watch, stopped_error  # type: ignore[import-not-found]


class Frames:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def emit(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)

    def of(self, request_id: str) -> dict[str, Any]:
        return next(f for f in self.frames if f.get("id") == request_id)


class Guard:
    """In place of the watchdog: no scan of /mnt/data, no process of the host killed."""

    usage = 0
    disk_limit = 0

    def begin_call(self, disk_limit: int) -> dict[str, Any]:
        return {}

    def end_call(self) -> dict[str, Any]:
        return {}

    def take_notice(self) -> None:
        return None

    def over_disk(self, baseline: int) -> bool:
        return False


class Kernel:
    """Runs "sleep" until interrupted, anything else at once; remembers what ran."""

    pid = None

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.running = threading.Event()

    def alive(self) -> bool:
        return True

    def run(self, code: str, out: object, watch: Watch, silent: bool = False) -> dict[str, Any]:
        self.ran.append(code)
        if code == "sleep":
            self.running.set()
            while not watch.cancelled():
                time.sleep(0.01)
            return stopped_error("cancelled", watch, kept=True, what="the code")
        return {"status": "completed", "error": None, "state_preserved": True}


def agent() -> tuple[Agent, Frames, Kernel]:
    frames, kernel = Frames(), Kernel()
    a = Agent(frames)
    a.watchdog, a.kernel = Guard(), kernel
    return a, frames, kernel


def exec_request(request_id: str, code: str) -> dict[str, Any]:
    return {"op": "exec", "id": request_id, "code": code, "language": "python", "timeout": 60}


def work_off(a: Agent) -> None:
    while not a.requests.empty():
        number, req = a.requests.get()
        a.execute(req, number)


def test_queued_calls_before_a_stop_never_run() -> None:
    a, frames, kernel = agent()
    a.handle(exec_request("old-1", "one"))
    a.handle(exec_request("old-2", "two"))
    a.handle({"op": "stop", "id": "stop-1"})
    a.handle(exec_request("new", "three"))
    work_off(a)
    assert kernel.ran == ["three"]
    assert frames.of("stop-1") == {"id": "stop-1", "type": "stopped", "calls": 2}
    for old in ("old-1", "old-2"):
        done = frames.of(old)
        assert done["type"] == "done"
        assert done["status"] == "error"
        assert done["error"]["name"] == "Cancelled"
        assert done["state_preserved"] is True
    assert frames.of("new")["status"] == "completed"


def test_a_stop_interrupts_the_running_call_and_keeps_the_state() -> None:
    a, frames, kernel = agent()
    a.handle(exec_request("stray", "sleep"))
    worker = threading.Thread(target=work_off, args=(a,))
    worker.start()
    assert kernel.running.wait(5)
    started = time.monotonic()
    a.handle({"op": "stop", "id": "stop-1"})
    worker.join(5)
    assert not worker.is_alive()
    assert time.monotonic() - started < 1
    done = frames.of("stray")
    assert done["error"]["name"] == "Cancelled"
    assert done["state_preserved"] is True
    assert frames.of("stop-1")["calls"] == 1
    a.handle(exec_request("next", "after"))
    work_off(a)
    assert frames.of("next")["status"] == "completed"
    assert kernel.ran == ["sleep", "after"]


def test_a_stop_with_nothing_running_changes_nothing() -> None:
    a, frames, kernel = agent()
    a.handle({"op": "stop", "id": "stop-1"})
    a.handle(exec_request("first", "one"))
    work_off(a)
    assert frames.of("stop-1")["calls"] == 0
    assert kernel.ran == ["one"]
