"""The Python interpreter: one IPython shell process (interpreter.py) that lives as long as
the sandbox, runs as the sandbox user, and talks to the agent over pipes of its own (never
the agent's channel)."""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from typing import Any

from localbox_agent import procs
from localbox_agent.calls import PIDS_ERROR, Watch, stopped_error
from localbox_agent.protocol import IMAGE_TYPES, Output, truncated

DATA = "/mnt/data"
INTERPRETER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interpreter.py")
FASTBOOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastboot.py")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
INTERRUPT_GRACE = 3.0
POLL = 0.05
START_TIMEOUT = 60.0
DRAIN_SECONDS = 0.05
EVENT_SLACK = 1 << 20


def user_environment() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("LOCALBOX_") and k != "PYTHONPATH"
    }
    env.update(
        HOME="/home/sandbox",
        USER="sandbox",
        LOGNAME="sandbox",
        IPYTHONDIR="/tmp/.ipython",
        MPLCONFIGDIR="/tmp/.matplotlib",
    )
    return env


class PythonKernel:
    """Starts interpreter.py (an IPython shell, no Jupyter machinery: it starts in a third of
    the time and answers a call in about a millisecond) and runs calls in it."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self._requests = -1
        self._pipes: dict[int, str] = {}
        """Our ends of the interpreter's pipes: fd -> "stdout", "stderr" or "events"."""
        self._events = b""
        self._skipping = False
        """Dropping the rest of an event line that grew past the limit."""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> None:
        if self.alive():
            return
        self.stop()
        env = user_environment()
        env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
        requests_r, requests_w = os.pipe()
        events_r, events_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        # Loaded by path (nothing of the agent joins the import path), from the bytecode
        # the image compiled; fastboot first, so that the interpreter's imports come from
        # the boot bundle.
        boot = (
            "import importlib.util as u, sys\n"
            "sys.path[:] = [''] + [p for p in sys.path if p]\n"
            "def load(name, path):\n"
            "    s = u.spec_from_file_location(name, path); m = u.module_from_spec(s)\n"
            "    s.loader.exec_module(m); return m\n"
            f"f = load('localbox_fastboot', {FASTBOOT!r}); b = f.install()\n"
            f"load('localbox_interpreter', {INTERPRETER!r})"
            ".main(lambda: f.load_lazy(b), lambda: f.boot_finished(b))\n"
        )
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", boot, str(requests_r), str(events_w)],
                cwd=DATA,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                pass_fds=(requests_r, events_w),
                start_new_session=True,  # interrupts reach the code's own children too
                **procs.drop_privileges(),
            )
        finally:
            for fd in (requests_r, events_w, out_w, err_w):
                os.close(fd)
        self._requests = requests_w
        self._pipes = {out_r: "stdout", err_r: "stderr", events_r: "events"}
        for fd in self._pipes:
            os.set_blocking(fd, False)
        self._events = b""
        self._skipping = False
        try:
            self._wait_for_ready(START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        procs.make_expendable(self.proc.pid)

    def _wait_for_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            for fd in self._pipes:
                sel.register(fd, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                for key, _ in sel.select(timeout=POLL):
                    name = self._pipes[key.fd]
                    chunk = self._read(key.fd)
                    if name == "events":
                        self._events += chunk
                        if any(e.get("t") == "ready" for e in self._lines(1 << 16)):
                            return
                if not self.alive():
                    raise RuntimeError("the Python interpreter exited while starting")
        raise RuntimeError(f"the Python interpreter did not start within {timeout:.0f} s")

    @staticmethod
    def _read(fd: int) -> bytes:
        try:
            return os.read(fd, 1 << 16)
        except BlockingIOError:
            return b""

    def _lines(self, max_line: int) -> list[dict[str, Any]]:
        """Whole event lines read so far, parsed; a line longer than max_line is dropped."""
        events = []
        while b"\n" in self._events:
            line, _, self._events = self._events.partition(b"\n")
            if self._skipping:  # the end of an overlong line
                self._skipping = False
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        if len(self._events) > max_line:
            self._events = b""  # the rest of this line goes too, up to its newline
            self._skipping = True
        return events

    def interrupt(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGINT)

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=5)
        for fd in [self._requests, *self._pipes]:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.proc = None
        self._requests = -1
        self._pipes = {}
        self._events = b""
        self._skipping = False

    def restart(self) -> None:
        """Kill the interpreter and everything of the sandbox user; the next call starts anew."""
        self.stop()
        procs.kill_user_processes()

    def _discard_leftovers(self) -> None:
        """Drop what arrived between calls (a background thread's output, say)."""
        for fd in self._pipes:
            while self._read(fd):
                pass
        self._events = b""
        self._skipping = False

    def run(self, code: str, out: Output, watch: Watch, silent: bool = False) -> dict[str, Any]:
        """Run code in the interpreter; silent code leaves no trace in its history."""
        try:
            self.ensure()
        except Exception as exc:  # the interpreter could not start (memory, pids…)
            self.restart()
            return {
                "status": "error",
                "error": out.error("KernelStartError", str(exc), ""),
                "state_preserved": False,
            }
        ooms = procs.oom_kills()
        self._discard_leftovers()
        limits = out.limits
        request = {
            "code": code,
            "silent": silent,
            "max_image_bytes": limits.max_image_bytes,
            "max_error_bytes": limits.max_error_bytes,
        }
        try:
            _write_all(self._requests, json.dumps(request).encode() + b"\n")
        except OSError:
            return self._died(procs.oom_kills() > ooms)
        max_line = limits.max_image_bytes + 4 * limits.max_error_bytes + EVENT_SLACK
        decoders = {
            name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")
        }
        error: dict[str, str] | None = None
        stopping: str | None = None
        interrupted_at = 0.0
        done = False
        with selectors.DefaultSelector() as sel:
            for fd in self._pipes:
                sel.register(fd, selectors.EVENT_READ)
            while not done:
                for key, _ in sel.select(timeout=POLL):
                    name = self._pipes[key.fd]
                    chunk = self._read(key.fd)
                    if not chunk:
                        continue
                    if name != "events":
                        if text := decoders[name].decode(chunk):
                            out.stream(name, text)
                        continue
                    self._events += chunk
                    for event in self._lines(max_line):
                        kind = event.get("t")
                        if kind == "done":
                            done = True
                        elif kind == "error":
                            error = self._error(event, out)
                        else:
                            self._display(event, out)
                if done:
                    break
                if procs.pids_exhausted():
                    self.restart()
                    return {"status": "error", "error": PIDS_ERROR, "state_preserved": False}
                if not self.alive():
                    return self._died(procs.oom_kills() > ooms)
                if stopping is None:
                    stopping = watch.stop_reason()
                    if stopping is not None:
                        self.interrupt()
                        interrupted_at = time.monotonic()
                elif time.monotonic() - interrupted_at > INTERRUPT_GRACE:
                    self.restart()
                    return stopped_error(stopping, watch, kept=False, what="the code")
        self._drain(out, decoders)
        if stopping is not None:
            result = stopped_error(stopping, watch, kept=True, what="the code")
            if error and stopping != "disk":
                result["error"]["traceback"] = error["traceback"]
            return result
        return {
            "status": "error" if error else "completed",
            "error": error,
            "state_preserved": True,
        }

    def _drain(self, out: Output, decoders: dict[str, Any]) -> None:
        """The output printed before the call ended, still in the pipes."""
        deadline = time.monotonic() + DRAIN_SECONDS
        for fd, name in self._pipes.items():
            if name == "events":
                continue
            while time.monotonic() < deadline and (chunk := self._read(fd)):
                if text := decoders[name].decode(chunk):
                    out.stream(name, text)
            if text := decoders[name].decode(b"", final=True):
                out.stream(name, text)

    @staticmethod
    def _display(event: dict[str, Any], out: Output) -> None:
        """A rich output: the first image it holds, or for a cell's value its text. Its
        content comes from the user's process, so nothing about its shape is taken on trust."""
        data = event.get("data")
        if not isinstance(data, dict):
            return
        image = next((t for t in IMAGE_TYPES if isinstance(data.get(t), str)), None)
        if image is not None:
            out.image(image, data[image])
            return
        note = data.get("localbox/too-large")
        if isinstance(note, dict):
            out.image_not_sent(str(note.get("media_type", "image"))[:64], note.get("bytes"))
        elif event.get("t") == "result" and isinstance(data.get("text/plain"), str):
            out.stream("stdout", data["text/plain"] + "\n")

    @staticmethod
    def _error(event: dict[str, Any], out: Output) -> dict[str, str]:
        traceback = event.get("traceback")
        traceback = traceback if isinstance(traceback, str) else ""
        error = out.error(str(event.get("ename", "Error")), str(event.get("evalue", "")), "")
        # Cut before stripping colours, so a huge traceback costs little.
        error["traceback"] = ANSI.sub("", truncated(traceback, out.limits.max_error_bytes))
        return error

    def _died(self, killed_by_oom: bool) -> dict[str, Any]:
        self.restart()
        why = "it ran out of memory (memory_limit)" if killed_by_oom else "it was killed or crashed"
        return {
            "status": "error",
            "error": {
                "name": "MemoryError" if killed_by_oom else "KernelDied",
                "value": f"The Python interpreter died: {why}. Its state is lost; "
                "the next call starts a fresh one.",
                "traceback": "",
            },
            "state_preserved": False,
        }


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
