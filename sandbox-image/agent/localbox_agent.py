#!/usr/bin/env python3
"""localbox agent: runs inside every sandbox and executes code for the server.

It is the sandbox's main process. The server talks to it over the container's own stdin and
stdout (the Docker attach stream; an exec stream works the same), one JSON object per line:

  request  {"op": "exec", "id", "code", "language": "python"|"bash", "timeout",
            "max_output", "disk_limit"}          -> stream/image events, then one "done"
  request  {"op": "ping", "id"}                  -> {"id", "type": "pong"}

Python runs in a Jupyter kernel (ipykernel, driven by jupyter_client) that lives as long as
the sandbox, so state survives between calls and across restarts of the server.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import queue
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

DATA = "/mnt/data"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
INTERRUPT_GRACE = 3.0
POLL = 0.05
_out_lock = threading.Lock()
_stdout = sys.stdout.buffer


def emit(event: dict[str, Any]) -> None:
    line = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    with _out_lock:
        _stdout.write(line)
        _stdout.flush()


def log(message: str) -> None:
    sys.stderr.write(f"localbox-agent: {message}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- files under /mnt/data


def snapshot() -> dict[str, tuple[int, int]]:
    """path (relative to /mnt/data) -> (size, mtime_ns) of every regular file."""
    found: dict[str, tuple[int, int]] = {}
    for root, dirs, files in os.walk(DATA):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        for name in files:
            full = os.path.join(root, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if os.path.isfile(full) and not os.path.islink(full):
                found[os.path.relpath(full, DATA)] = (st.st_size, st.st_mtime_ns)
    return found


def disk_usage() -> int:
    total = 0
    for size, _ in snapshot().values():
        total += size
    return total


def oom_kills() -> int:
    """How many times the kernel's OOM killer has struck in this sandbox's memory cgroup."""
    for path, key in (
        ("/sys/fs/cgroup/memory.events", "oom_kill"),
        ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
    ):
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except OSError:
            continue
    return 0


def _read_int(*paths: str) -> int | None:
    for path in paths:
        try:
            with open(path) as f:
                value = f.read().strip()
            return int(value) if value.isdigit() else None
        except OSError:
            continue
    return None


def pids_exhausted() -> bool:
    """Whether the sandbox is close to its process limit (a fork bomb, most likely)."""
    limit = _read_int("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
    current = _read_int("/sys/fs/cgroup/pids/pids.current", "/sys/fs/cgroup/pids.current")
    return bool(limit and current is not None and current >= 0.9 * limit)


PIDS_ERROR = {
    "name": "ProcessLimitExceeded",
    "value": "The code started processes up to the sandbox's process limit (a fork bomb?); "
    "every process was killed and the interpreter restarted, so its state is lost.",
    "traceback": "",
}


def kill_until_gone(chosen: Callable[[int], bool] = lambda _pid: True) -> None:
    """SIGKILL the chosen processes (never init or this agent) until none is left, so that a
    fork bomb racing the kills loses."""
    keep = {1, os.getpid()}
    for _ in range(200):
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in keep]
        targets = [pid for pid in pids if chosen(pid)]
        if not targets:
            return
        for pid in targets:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def kill_everything_else() -> None:
    """Kill every process in the sandbox but init and this agent (fork bombs included)."""
    kill_until_gone()


def make_expendable(pid: int) -> None:
    """Let the OOM killer take this process before the agent."""
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


# ---------------------------------------------------------------- one execution's output


class Output:
    """Caps each stream at max_output bytes and counts what it drops."""

    def __init__(self, request_id: str, max_output: int) -> None:
        self.id = request_id
        self.max = max_output
        self.sent = {"stdout": 0, "stderr": 0}
        self.dropped = {"stdout": 0, "stderr": 0}

    def stream(self, name: str, text: str) -> None:
        data = text.encode("utf-8", "replace")
        room = self.max - self.sent[name]
        if room <= 0:
            self.dropped[name] += len(data)
            return
        if len(data) > room:
            self.dropped[name] += len(data) - room
            text = data[:room].decode("utf-8", "ignore")
            data = data[:room]
        self.sent[name] += len(data)
        emit({"id": self.id, "type": "stream", "name": name, "text": text})

    def image(self, media_type: str, data: str) -> None:
        emit({"id": self.id, "type": "image", "media_type": media_type, "data": data})


class Watch:
    """Checks, while code runs, the deadline and the disk limit of /mnt/data."""

    def __init__(self, timeout: float, disk_limit: int) -> None:
        self.deadline = time.monotonic() + timeout
        self.disk_limit = disk_limit
        self._next_disk = 0.0
        # Only growth counts: code that deletes files must run even while over the limit.
        self._start_usage = disk_usage() if disk_limit > 0 else 0

    def timed_out(self) -> bool:
        return time.monotonic() >= self.deadline

    def over_disk(self) -> bool:
        if self.disk_limit <= 0:
            return False
        usage = disk_usage()
        return usage > self.disk_limit and usage > self._start_usage

    def disk_full(self) -> bool:
        if self.disk_limit <= 0:
            return False
        now = time.monotonic()
        if now < self._next_disk:
            return False
        self._next_disk = now + 0.25
        return self.over_disk()


def disk_error(limit: int) -> dict[str, str]:
    return {
        "name": "DiskQuotaExceeded",
        "value": f"/mnt/data grew past the sandbox's disk limit of {limit} bytes; "
        "the code was stopped. Delete files to free space.",
        "traceback": "",
    }


# ---------------------------------------------------------------- python: a Jupyter kernel


class PythonKernel:
    def __init__(self) -> None:
        self.km: Any = None
        self.kc: Any = None

    def alive(self) -> bool:
        return self.km is not None and self.km.is_alive()

    def ensure(self) -> None:
        if self.alive():
            return
        self.stop()
        from jupyter_client import KernelManager

        env = dict(os.environ)
        env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
        env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        km = KernelManager(kernel_name="python3")
        # The kernel must never write to our stdout: that is the protocol channel.
        km.start_kernel(
            cwd=DATA,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sys.stderr,
            # No history database: it costs time on every call and nobody reads it here.
            extra_arguments=["--HistoryManager.enabled=False"],
        )
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        self.km, self.kc = km, kc
        pid = getattr(getattr(km, "provisioner", None), "pid", None)
        if pid:
            make_expendable(int(pid))

    def stop(self) -> None:
        if self.kc is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
        if self.km is not None:
            with contextlib.suppress(Exception):
                self.km.shutdown_kernel(now=True)
        self.km = self.kc = None

    def restart(self) -> None:
        self.stop()
        kill_everything_else()

    def _drain_shell(self) -> None:
        """Drop earlier execute replies (read lazily, so no call waits for its own)."""
        while True:
            try:
                self.kc.get_shell_msg(timeout=0)
            except queue.Empty:
                return

    def run(self, req: dict[str, Any], out: Output, watch: Watch) -> dict[str, Any]:
        try:
            self.ensure()
        except Exception as exc:  # the kernel could not start (memory, pids…)
            self.restart()
            return {
                "status": "error",
                "error": {"name": "KernelStartError", "value": str(exc), "traceback": ""},
                "state_preserved": False,
            }
        ooms = oom_kills()
        self._drain_shell()
        msg_id = self.kc.execute(req["code"], store_history=True, allow_stdin=False)
        error = None
        outcome = "completed"
        interrupted_at = None
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=POLL)
            except queue.Empty:
                msg = None
            if msg is not None and msg.get("parent_header", {}).get("msg_id") == msg_id:
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    out.stream(content["name"], content["text"])
                elif kind in ("display_data", "execute_result"):
                    data = content.get("data", {})
                    if "image/png" in data:
                        out.image("image/png", data["image/png"])
                    elif kind == "execute_result" and "text/plain" in data:
                        out.stream("stdout", data["text/plain"] + "\n")
                elif kind == "error":
                    error = {
                        "name": content.get("ename", "Error"),
                        "value": content.get("evalue", ""),
                        "traceback": ANSI.sub("", "\n".join(content.get("traceback", []))),
                    }
                elif kind == "status" and content.get("execution_state") == "idle":
                    break
                continue
            if msg is not None:
                continue
            if pids_exhausted():
                self.restart()
                return {"status": "error", "error": PIDS_ERROR, "state_preserved": False}
            if not self.km.is_alive():
                killed_by_oom = oom_kills() > ooms
                self.restart()
                why = (
                    "it ran out of memory (memory_limit)"
                    if killed_by_oom
                    else "it was killed or crashed"
                )
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
            if interrupted_at is None and (watch.timed_out() or watch.disk_full()):
                outcome = "timeout" if watch.timed_out() else "disk"
                self.km.interrupt_kernel()
                interrupted_at = time.monotonic()
            elif interrupted_at is not None and time.monotonic() - interrupted_at > INTERRUPT_GRACE:
                self.restart()
                return {
                    "status": "timeout" if outcome == "timeout" else "error",
                    "error": disk_error(watch.disk_limit)
                    if outcome == "disk"
                    else {
                        "name": "TimeoutError",
                        "value": f"Execution exceeded {req['timeout']} s and did not stop when "
                        "interrupted; the interpreter was restarted and its state is lost.",
                        "traceback": "",
                    },
                    "state_preserved": False,
                }
        if outcome == "timeout":
            return {
                "status": "timeout",
                "error": {
                    "name": "TimeoutError",
                    "value": f"Execution exceeded {req['timeout']} s and was interrupted; "
                    "the interpreter's state is kept.",
                    "traceback": (error or {}).get("traceback", ""),
                },
                "state_preserved": True,
            }
        if outcome == "disk":
            return {
                "status": "error",
                "error": disk_error(watch.disk_limit),
                "state_preserved": True,
            }
        return {
            "status": "error" if error else "completed",
            "error": error,
            "state_preserved": True,
        }


# ---------------------------------------------------------------- bash: one process group


def run_bash(req: dict[str, Any], out: Output, watch: Watch) -> dict[str, Any]:
    try:
        proc = subprocess.Popen(
            ["bash", "-c", req["code"]],
            cwd=DATA,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return {
            "status": "error",
            "error": {"name": "SpawnError", "value": str(exc), "traceback": ""},
            "state_preserved": True,
        }
    make_expendable(proc.pid)
    # Read both pipes from this thread: starting reader threads can fail once a fork bomb
    # has used up the process limit (threads count as processes), and then nothing would
    # stop it.
    streams = selectors.DefaultSelector()
    for pipe, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        streams.register(pipe, selectors.EVENT_READ, (name, decoder))
    outcome = None
    drain_until = None  # after bash ends, background children may keep the pipes open
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
        if watch.timed_out():
            outcome = "timeout"
        elif watch.disk_full():
            outcome = "disk"
        elif pids_exhausted():
            outcome = "pids"
        if outcome:
            _kill_group(proc)
    streams.close()
    proc.wait()
    if outcome == "timeout":
        return {
            "status": "timeout",
            "error": {
                "name": "TimeoutError",
                "value": f"Command exceeded {req['timeout']} s and was killed.",
                "traceback": "",
            },
            "state_preserved": True,
            "exit_code": proc.returncode,
        }
    if outcome == "disk":
        return {"status": "error", "error": disk_error(watch.disk_limit), "state_preserved": True}
    if outcome == "pids":
        bash_pids_error = dict(
            PIDS_ERROR,
            value="The command started processes up to the "
            "sandbox's process limit (a fork bomb?); they were all killed.",
        )
        return {"status": "error", "error": bash_pids_error, "state_preserved": True}
    code = proc.returncode
    error = None
    if code != 0:
        value = f"signal {-code}" if code < 0 else f"exit status {code}"
        error = {"name": "ExitCode", "value": f"Command failed with {value}.", "traceback": ""}
    return {
        "status": "error" if error else "completed",
        "error": error,
        "state_preserved": True,
        "exit_code": code,
    }


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    # Anything of its session that left the group (a fork bomb racing the kill) goes too;
    # the Python kernel is in a session of its own and stays.
    kill_until_gone(lambda pid: _session(pid) == proc.pid)


def _session(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[3])  # session id
    except (OSError, IndexError, ValueError):
        return None


# ---------------------------------------------------------------- the request loop


KERNEL = PythonKernel()


def execute(req: dict[str, Any]) -> None:
    started = time.monotonic()
    out = Output(req["id"], int(req.get("max_output", 1 << 20)))
    watch = Watch(float(req.get("timeout", 30)), int(req.get("disk_limit", 0)))
    before = snapshot()
    if req.get("language", "python") == "bash":
        result = run_bash(req, out, watch)
    else:
        result = KERNEL.run(req, out, watch)
    if pids_exhausted():  # something left behind keeps forking: clear the sandbox out
        KERNEL.restart()
        result.update(status="error", error=PIDS_ERROR, state_preserved=False)
    elif result.get("status") == "completed" and watch.over_disk():
        result.update(status="error", error=disk_error(watch.disk_limit))
    after = snapshot()
    result.update(
        id=req["id"],
        type="done",
        files=[
            {"path": p, "bytes": s, "mtime": m / 1e9}
            for p, (s, m) in after.items()
            if before.get(p) != (s, m)
        ],
        removed=[p for p in before if p not in after],
        truncated=out.dropped,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    emit(result)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    emit({"id": None, "type": "ready"})
    for raw in sys.stdin.buffer:
        try:
            req = json.loads(raw)
        except ValueError:
            log(f"ignoring a line that is not JSON: {raw[:80]!r}")
            continue
        op = req.get("op")
        try:
            if op == "exec":
                execute(req)
            elif op == "ping":
                emit({"id": req.get("id"), "type": "pong", "kernel": KERNEL.alive()})
            else:
                emit(
                    {
                        "id": req.get("id"),
                        "type": "done",
                        "status": "error",
                        "error": {
                            "name": "BadRequest",
                            "value": f"unknown op {op!r}",
                            "traceback": "",
                        },
                        "state_preserved": True,
                    }
                )
        except Exception as exc:  # never die on one bad request
            log(f"request failed: {exc!r}")
            emit(
                {
                    "id": req.get("id"),
                    "type": "done",
                    "status": "error",
                    "error": {"name": type(exc).__name__, "value": str(exc), "traceback": ""},
                    "state_preserved": KERNEL.alive(),
                }
            )
    KERNEL.stop()


if __name__ == "__main__":
    main()
