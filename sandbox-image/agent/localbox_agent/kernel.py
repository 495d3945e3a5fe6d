"""The Python interpreter: one Jupyter kernel (ipykernel, driven by jupyter_client) that lives
as long as the sandbox, running as the sandbox user with none of the agent's channel fds."""

from __future__ import annotations

import contextlib
import glob
import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import time
from typing import Any

from localbox_agent import procs
from localbox_agent.calls import PIDS_ERROR, Watch, stopped_error
from localbox_agent.protocol import IMAGE_TYPES, Output, truncated

DATA = "/mnt/data"
RUNTIME_DIR = "/run/localbox"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
INTERRUPT_GRACE = 3.0
POLL = 0.05
START_TIMEOUT = 60.0
READY_POLL = 0.05


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
        JUPYTER_RUNTIME_DIR="/tmp/.jupyter-runtime",
    )
    return env


def private_environment() -> None:
    """Point the agent's own Jupyter and IPython folders where the sandbox user cannot go,
    and away from the user's, which the user must own."""
    home = "/tmp/.localbox-agent"
    os.makedirs(home, mode=0o700, exist_ok=True)
    for key, sub in (
        ("IPYTHONDIR", "ipython"),
        ("MPLCONFIGDIR", "matplotlib"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_CONFIG_DIR", "config"),
    ):
        os.environ[key] = f"{home}/{sub}"


class PythonKernel:
    """ipykernel started directly (no kernel spec lookup, no KernelManager: they cost half a
    second at every start) and spoken to over Unix sockets in /run/localbox."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.kc: Any = None
        self._serial = 0
        self._connection_file = ""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> None:
        if self.alive():
            return
        self.stop()
        from jupyter_client.blocking import BlockingKernelClient
        from jupyter_client.connect import write_connection_file

        env = user_environment()
        env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
        env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        self._serial += 1
        prefix = f"{RUNTIME_DIR}/kernel-{os.getpid()}-{self._serial}"
        self._connection_file, _ = write_connection_file(
            f"{prefix}.json",
            ip=f"{prefix}-ipc",
            transport="ipc",
            key=secrets.token_hex(16).encode(),
        )
        # The kernel runs as the sandbox user and reads this file; the key in it guards
        # nothing that user's code could not do anyway.
        os.chmod(self._connection_file, 0o644)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ipykernel_launcher",
                "-f",
                self._connection_file,
                # No history database: it costs time on every call and nobody reads it here.
                "--HistoryManager.enabled=False",
            ],
            cwd=DATA,
            env=env,
            # Never the agent's stdin/stdout/stderr: those are the channel to the server.
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # interrupts reach the code's own children too
            **procs.drop_privileges(),
        )
        kc = BlockingKernelClient(connection_file=self._connection_file)
        kc.load_connection_file()
        kc.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
        self.kc = kc
        try:
            self._wait_for_ready(START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        procs.make_expendable(self.proc.pid)

    def _wait_for_ready(self, timeout: float) -> None:
        """Until the kernel answers on its shell socket and its output reaches us: asking for
        kernel_info until both the reply and a status message on iopub came back."""
        deadline = time.monotonic() + timeout
        replied = False
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError("the Python interpreter exited while starting")
            if not replied:
                self.kc.kernel_info()
                try:
                    msg = self.kc.get_shell_msg(timeout=READY_POLL)
                    replied = msg.get("msg_type") == "kernel_info_reply"
                except queue.Empty:
                    continue
            try:
                self.kc.get_iopub_msg(timeout=READY_POLL)
                self._drain_iopub()
                return
            except queue.Empty:
                replied = False  # the iopub socket joined late: ask again
        raise RuntimeError(f"the Python interpreter did not start within {timeout:.0f} s")

    def _drain_iopub(self) -> None:
        while True:
            try:
                self.kc.get_iopub_msg(timeout=0)
            except queue.Empty:
                return

    def interrupt(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGINT)

    def stop(self) -> None:
        if self.kc is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
        if self.proc is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=5)
        if self._connection_file:
            for path in glob.glob(self._connection_file.removesuffix(".json") + "*"):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        self.proc = self.kc = None
        self._connection_file = ""

    def restart(self) -> None:
        """Kill the interpreter and everything of the sandbox user; the next call starts anew."""
        self.stop()
        procs.kill_user_processes()

    def _drain_shell(self) -> None:
        """Drop earlier execute replies (read lazily, so no call waits for its own)."""
        while True:
            try:
                self.kc.get_shell_msg(timeout=0)
            except queue.Empty:
                return

    def run(self, code: str, out: Output, watch: Watch, silent: bool = False) -> dict[str, Any]:
        """Run code in the interpreter; silent code leaves no trace in its history."""
        try:
            self.ensure()
        except Exception as exc:  # the kernel could not start (memory, pids…)
            self.restart()
            return {
                "status": "error",
                "error": out.error("KernelStartError", str(exc), ""),
                "state_preserved": False,
            }
        ooms = procs.oom_kills()
        self._drain_shell()
        msg_id = self.kc.execute(code, silent=silent, store_history=not silent, allow_stdin=False)
        error: dict[str, str] | None = None
        stopping: str | None = None
        interrupted_at = 0.0
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=POLL)
            except queue.Empty:
                msg = None
            if isinstance(msg, dict):
                parent = msg.get("parent_header")
                if isinstance(parent, dict) and parent.get("msg_id") == msg_id:
                    if self._handle(msg, out) == "idle":
                        break
                    error = self._error(msg, out) or error
                continue
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

    @staticmethod
    def _handle(msg: dict[str, Any], out: Output) -> str | None:
        """Forward one of the call's messages; "idle" when the call is over. The content comes
        from the user's process, so nothing about its shape is taken on trust."""
        kind, content = msg.get("msg_type"), msg.get("content")
        if not isinstance(content, dict):
            return None
        if kind == "stream":
            text = content.get("text")
            if isinstance(text, str):
                out.stream("stderr" if content.get("name") == "stderr" else "stdout", text)
        elif kind in ("display_data", "execute_result"):
            data = content.get("data")
            if not isinstance(data, dict):
                return None
            image = next((t for t in IMAGE_TYPES if isinstance(data.get(t), str)), None)
            if image is not None:
                out.image(image, data[image])
            elif kind == "execute_result" and isinstance(data.get("text/plain"), str):
                out.stream("stdout", data["text/plain"] + "\n")
        elif kind == "status" and content.get("execution_state") == "idle":
            return "idle"
        return None

    @staticmethod
    def _error(msg: dict[str, Any], out: Output) -> dict[str, str] | None:
        content = msg.get("content")
        if msg.get("msg_type") != "error" or not isinstance(content, dict):
            return None
        lines = content.get("traceback")
        traceback = "\n".join(str(line) for line in lines) if isinstance(lines, list) else ""
        error = out.error(str(content.get("ename", "Error")), str(content.get("evalue", "")), "")
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
