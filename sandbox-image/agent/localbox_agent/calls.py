"""What one call may use: its deadline, its cancellation, and the disk limit."""

from __future__ import annotations

import threading
import time
from typing import Any

from localbox_agent.watchdog import Watchdog


class Watch:
    def __init__(self, timeout: float, watchdog: Watchdog) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.watchdog = watchdog
        self.baseline = watchdog.usage
        self.cancel_event = threading.Event()

    def timed_out(self) -> bool:
        return time.monotonic() >= self.deadline

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def disk_full(self) -> bool:
        return self.watchdog.over_disk(self.baseline)

    def stop_reason(self) -> str | None:
        """Why the running code must stop now, if it must."""
        if self.cancelled():
            return "cancelled"
        if self.timed_out():
            return "timeout"
        if self.disk_full():
            return "disk"
        return None


def disk_error(limit: int) -> dict[str, str]:
    return {
        "name": "DiskQuotaExceeded",
        "value": f"/mnt/data grew past the sandbox's disk limit of {limit} bytes; "
        "the code was stopped. Delete files to free space.",
        "traceback": "",
    }


def stopped_error(reason: str, watch: Watch, *, kept: bool, what: str) -> dict[str, Any]:
    """The done fields of a call stopped for reason ("timeout", "cancelled" or "disk")."""
    state = (
        "the interpreter's state is kept."
        if kept
        else "it did not stop when interrupted, so the interpreter was restarted and its "
        "state is lost."
    )
    if reason == "disk":
        error = disk_error(watch.watchdog.disk_limit)
        status = "error"
    elif reason == "cancelled":
        error = {
            "name": "Cancelled",
            "value": f"The call was cancelled (its client went away); {what} was interrupted; "
            + state,
            "traceback": "",
        }
        status = "error"
    else:
        error = {
            "name": "TimeoutError",
            "value": f"Execution exceeded {watch.timeout:g} s; {what} was interrupted; " + state,
            "traceback": "",
        }
        status = "timeout"
    return {"status": status, "error": error, "state_preserved": kept}


PIDS_ERROR = {
    "name": "ProcessLimitExceeded",
    "value": "The code started processes up to the sandbox's process limit (a fork bomb?); "
    "every process was killed and the interpreter restarted, so its state is lost.",
    "traceback": "",
}


NOT_RUN = {
    "name": "Cancelled",
    "value": "The call was cancelled before it began (its client went away); nothing ran.",
    "traceback": "",
}
