"""Abuse is contained: each case ends with a clear status, the server and other sandboxes keep
working, and the sandbox is usable afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import DISK, MAX_OUTPUT, bystander_fine
from tests.api.test_exec import run
from tests.conftest import SANDBOX_RUNTIME, LocalboxServer


def assert_everything_else_fine(server: LocalboxServer, bystander: str, victim: str) -> None:
    bystander_fine(server, bystander)
    again = run(server, victim, "print('usable')")
    assert again["status"] == "completed", again
    assert again["stdout"] == "usable\n"


def test_endless_loop(abuse_server: LocalboxServer, bystander: str, victim: str) -> None:
    result = run(abuse_server, victim, "while True:\n    pass", timeout=2)
    assert result["status"] == "timeout"
    assert "exceeded 2" in result["error"]["value"]
    assert_everything_else_fine(abuse_server, bystander, victim)


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", "import os\nwhile True:\n    os.fork()"),
        ("bash", ":(){ :|:& };:"),
    ],
)
def test_fork_bomb(
    abuse_server: LocalboxServer, bystander: str, victim: str, language: str, code: str
) -> None:
    result = run(abuse_server, victim, code, language=language, timeout=20)
    assert result["status"] in ("error", "timeout"), result
    stopped = ("ProcessLimitExceeded", "BlockingIOError", "TimeoutError")
    if SANDBOX_RUNTIME == "runsc":
        # gVisor holds host memory for every task: now and then a Python fork bomb reaches
        # memory_limit before the task limit, and the sandbox restarts (see README Isolation).
        stopped += ("SandboxRestarted",)
    assert result["error"]["name"] in stopped, result
    assert_everything_else_fine(abuse_server, bystander, victim)


def test_allocating_past_memory_limit(
    abuse_server: LocalboxServer, bystander: str, victim: str
) -> None:
    run(abuse_server, victim, "before = 1")
    result = run(abuse_server, victim, "x = b'x' * (3 * 1024**3)", timeout=60)
    assert result["status"] == "error", result
    # Under gVisor the host's OOM killer takes gVisor's kernel, with the whole sandbox in it;
    # the engine starts the sandbox again and the call says so.
    assert result["error"]["name"] == (
        "SandboxRestarted" if SANDBOX_RUNTIME == "runsc" else "MemoryError"
    )
    assert result["state_preserved"] is False
    assert_everything_else_fine(abuse_server, bystander, victim)


def test_printing_a_gibibyte(abuse_server: LocalboxServer, bystander: str, victim: str) -> None:
    result = run(
        abuse_server,
        victim,
        "head -c 1073741824 /dev/zero | tr '\\0' x",
        language="bash",
        timeout=120,
    )
    assert result["status"] == "completed", {k: v for k, v in result.items() if k != "stdout"}
    assert len(result["stdout"]) < MAX_OUTPUT + 200
    assert result["stdout"].startswith("x" * 1000)
    assert f"output truncated, {(1 << 30) - MAX_OUTPUT} more bytes" in result["stdout"]

    py = run(abuse_server, victim, "for _ in range(200):\n    print('y' * 1_000_000)", timeout=60)
    assert py["status"] in ("completed", "timeout")
    assert len(py["stdout"]) < MAX_OUTPUT + 200
    assert "output truncated" in py["stdout"]
    assert_everything_else_fine(abuse_server, bystander, victim)


def test_filling_mnt_data(
    abuse_server: LocalboxServer, bystander: str, victim: str, tmp_path: Path
) -> None:
    result: dict[str, Any] = run(
        abuse_server, victim, "dd if=/dev/zero of=big.bin bs=1M count=100000", language="bash"
    )
    assert result["status"] == "error", result
    assert result["error"]["name"] == "DiskQuotaExceeded"
    assert str(DISK) in result["error"]["value"]
    fast = run(abuse_server, victim, "open('fast.bin', 'wb').write(b'z' * (30 << 20))")
    assert fast["status"] == "error"
    assert fast["error"]["name"] == "DiskQuotaExceeded"
    cleaned = run(abuse_server, victim, "rm -f big.bin fast.bin", language="bash")
    assert cleaned["status"] == "completed"
    assert_everything_else_fine(abuse_server, bystander, victim)
