"""Id makers for every object localbox hands out, and the clock type."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

Clock = Callable[[], float]


def system_clock() -> float:
    return time.time()


def new_container_id() -> str:
    return "cntr_" + secrets.token_hex(24)


def new_container_file_id() -> str:
    return "cfile_" + secrets.token_hex(16)


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


def new_skill_id() -> str:
    return "skill_" + secrets.token_hex(24)


def new_skill_version_id() -> str:
    return "skillver_" + secrets.token_hex(24)


def new_replica_id() -> str:
    """A server process's id among the replicas sharing a database (new at every start)."""
    return "rep_" + secrets.token_hex(6)


def new_exec_id() -> str:
    return "exec_" + secrets.token_hex(16)


def new_request_id() -> str:
    return "req_" + secrets.token_hex(16)


def new_response_id() -> str:
    return "resp_" + secrets.token_hex(24)


def new_item_id(prefix: str) -> str:
    """An output item's id: msg_, ci_, sh_ (shell call), sho_ (its output), fc_ (function)."""
    return f"{prefix}_" + secrets.token_hex(24)


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)
