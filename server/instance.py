"""The instance id: which Docker objects belong to this data directory's server.

A random id is made on the first start and kept in DATA_DIR/instance-id, so two deployments
whose data directories have the same path (every compose project's is /data) never take each
other's sandboxes. A data directory from before the id file keeps the id it always had (a hash
of its path), so its sandboxes survive the upgrade.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

FILE_NAME = "instance-id"
_VALID = re.compile(r"^[0-9a-f]{16,64}$")


def legacy_instance_id(data_dir: Path) -> str:
    """The id servers used before the id file: a hash of the data directory's path."""
    return hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]


def load_instance_id(data_dir: Path) -> str:
    """Read this data directory's id; make (and keep) one on the first start."""
    path = data_dir / FILE_NAME
    if path.exists():
        return _read(path)
    existing = (data_dir / "localbox.db").exists() or (data_dir / "files").is_dir()
    new_id = legacy_instance_id(data_dir) if existing else secrets.token_hex(8)
    data_dir.mkdir(parents=True, exist_ok=True)
    # Written whole, then linked into place: a crash never leaves a half-written id, and two
    # servers starting at once agree on the first one's.
    tmp = data_dir / f".{FILE_NAME}.{secrets.token_hex(4)}"
    try:
        tmp.write_text(new_id + "\n")
        os.link(tmp, path)
    except FileExistsError:
        return _read(path)
    finally:
        tmp.unlink(missing_ok=True)
    return new_id


def _read(path: Path) -> str:
    value = path.read_text().strip()
    if not _VALID.match(value):
        raise ValueError(f"{path} does not hold an instance id (16-64 lower-case hex digits)")
    return value


LOCK_NAME = "server.lock"


class DataDirInUse(Exception):
    """Another server holds the data directory in a way this one cannot share."""


def hold_data_dir(data_dir: Path, *, shared: bool) -> int:
    """Lock the data directory for this process's lifetime (the lock goes with the process):
    exclusively for a server on SQLite, which must be alone with it; shared for replicas on
    PostgreSQL, which take turns through the database. Returns the descriptor to keep open."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DataDirInUse(
            f"another localbox server (pid {holder}) uses the data dir {data_dir}. A server on "
            "SQLite must be alone with its data dir: stop the other one, or give this one "
            "another LOCALBOX_DATA_DIR. Several servers may share one data dir only as "
            "replicas on one PostgreSQL database (LOCALBOX_DATABASE_URL), all of them."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
