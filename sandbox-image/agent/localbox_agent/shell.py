"""Bash: each call is one `bash -c` as the sandbox user, in a session of its own."""

from __future__ import annotations

import codecs
import contextlib
import os
import selectors
import signal
import subprocess
import time
from typing import Any

from localbox_agent import procs
from localbox_agent.calls import PIDS_ERROR, Watch, stopped_error
from localbox_agent.kernel import DATA, POLL, user_environment
from localbox_agent.protocol import Output


def run_bash(code: str, out: Output, watch: Watch, keep: set[int]) -> dict[str, Any]:
    """Run code; keep names the processes a stop must spare (the interpreter)."""
    try:
        proc = subprocess.Popen(
            ["bash", "-c", code],
            cwd=DATA,
            env=user_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            **procs.drop_privileges(),
        )
    except OSError as exc:
        return {
            "status": "error",
            "error": out.error("SpawnError", str(exc), ""),
            "state_preserved": True,
        }
    procs.make_expendable(proc.pid)
    # Read both pipes from this thread: starting reader threads can fail once a fork bomb
    # has used up the process limit (threads count as processes).
    streams = selectors.DefaultSelector()
    for pipe, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        streams.register(pipe, selectors.EVENT_READ, (name, decoder))  # type: ignore[arg-type]
    stopping = None
    drain_until = 0.0  # after bash ends, background children may keep the pipes open
    while streams.get_map():
        for key, _ in streams.select(timeout=POLL / 5):
            name, decoder = key.data
            chunk = os.read(key.fd, 65536)
            if not chunk:
                streams.unregister(key.fileobj)
            if text := decoder.decode(chunk, final=not chunk):
                out.stream(name, text)
        if proc.poll() is not None:
            drain_until = drain_until or time.monotonic() + 2
            if time.monotonic() > drain_until:
                break
            continue
        if stopping is None:
            stopping = watch.stop_reason() or ("pids" if procs.pids_exhausted() else None)
            if stopping is not None:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
                procs.kill_user_processes(keep=keep)
    streams.close()
    proc.wait()
    if stopping == "pids":
        error = dict(
            PIDS_ERROR,
            value="The command started processes up to the sandbox's process limit (a fork "
            "bomb?); they were all killed.",
        )
        return {"status": "error", "error": error, "state_preserved": True}
    if stopping is not None:
        result = stopped_error(stopping, watch, kept=True, what="the command")
        result["exit_code"] = proc.returncode
        return result
    code_ = proc.returncode
    error = None
    if code_ != 0:
        value = f"signal {-code_}" if code_ < 0 else f"exit status {code_}"
        error = {"name": "ExitCode", "value": f"Command failed with {value}.", "traceback": ""}
    return {
        "status": "error" if error else "completed",
        "error": error,
        "state_preserved": True,
        "exit_code": code_,
    }
