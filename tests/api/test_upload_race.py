"""Code in a container that swaps an upload's file for a symlink while the upload settles: the
upload is refused with a 409 naming the race (or wins), never a 500, and the log holds no
traceback; nothing outside /mnt/data is read or written, and a bystander is untouched."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx

from tests.api.conftest import bystander_fine
from tests.api.test_exec import run
from tests.conftest import LocalboxServer

SWAPPER = r"""
import glob, os, time
end = time.time() + 40
while time.time() < end and not os.path.exists('/mnt/data/stop'):
    for p in glob.glob('/mnt/data/.localbox-upload-*') + ['/mnt/data/big.bin']:
        try:
            os.unlink(p)
            os.symlink('/etc/passwd', p)
        except OSError:
            pass
"""
SIZE = 8 << 20  # large enough to be streamed into the sandbox as it arrives


def upload(server: LocalboxServer, container_id: str, data: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/containers/{container_id}/files",
        files={"file": ("big.bin", data)},
        timeout=60,
    )


def test_a_symlink_swapped_in_during_an_upload_is_a_409(
    abuse_server: LocalboxServer, bystander: str, victim: str
) -> None:
    swapper: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: swapper.update(run(abuse_server, victim, SWAPPER, timeout=60))
    )
    thread.start()
    time.sleep(1)
    codes: Counter[int] = Counter()
    conflicts: list[dict[str, Any]] = []
    data = b"x" * SIZE
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(conflicts) < 5:
        r = upload(abuse_server, victim, data)
        codes[r.status_code] += 1
        if r.status_code == 409:
            conflicts.append(r.json()["error"])
        else:
            assert r.status_code == 200, r.text
            # A file that won the race is the upload, not what a symlink points at.
            listed = httpx.get(
                f"{abuse_server.base_url}/containers/{victim}/files/{r.json()['id']}"
            )
            assert listed.status_code in (200, 404), listed.text
    # The swapper races this upload too: it lands once it wins.
    for _ in range(100):
        stop = httpx.post(
            f"{abuse_server.base_url}/containers/{victim}/files",
            files={"file": ("stop", b"")},
            timeout=60,
        )
        if stop.status_code != 409:
            break
    assert stop.status_code == 200, stop.text
    thread.join()
    assert swapper["status"] == "completed", swapper

    assert conflicts, f"the race never happened: {codes}"
    assert set(codes) <= {200, 409}, codes
    assert conflicts[0]["code"] == "upload_conflict"
    assert conflicts[0]["param"] == "file"
    assert "/mnt/data/big.bin" in conflicts[0]["message"]
    assert "try again" in conflicts[0]["message"]
    assert "Traceback" not in abuse_server.log_text()
    # With the swapper gone, the same upload lands whole, as a regular file.
    r = upload(abuse_server, victim, data)
    assert r.status_code == 200, r.text
    check = run(
        abuse_server,
        victim,
        "import os; p = '/mnt/data/big.bin'\n"
        "print(os.path.islink(p), os.path.getsize(p), open(p, 'rb').read(4))",
    )
    assert check["stdout"] == f"False {SIZE} b'xxxx'\n", check
    bystander_fine(abuse_server, bystander)
