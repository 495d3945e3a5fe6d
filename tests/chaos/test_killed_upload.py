"""kill -9 while a Files-API upload is being written: the restart leaves no byte of it behind
(nothing in files/.incoming, no stored bytes without a record) and lists no file."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import serving

SIZE = 256 << 20


def test_kill_9_during_an_upload_leaves_no_bytes(tmp_path: Path) -> None:
    payload = tmp_path / "big.bin"
    with payload.open("wb") as f:
        f.truncate(SIZE)  # sparse: cheap to make, read as zeros
    with serving(tmp_path / "data") as server:
        files_dir = server.data_dir / "files"
        incoming = files_dir / ".incoming"
        process = server.process
        assert process is not None
        seen: list[int] = []

        def kill_while_written() -> None:
            # The body is spooled first, then copied under a temporary name: kill as soon as
            # that copy has begun.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                sizes = [p.stat().st_size for p in incoming.iterdir()]
                if any(sizes):
                    seen.extend(sizes)
                    process.send_signal(signal.SIGKILL)
                    return
                time.sleep(0.001)

        killer = threading.Thread(target=kill_while_written)
        killer.start()
        # The server dies under the request.
        with payload.open("rb") as body, contextlib.suppress(httpx.TransportError):
            httpx.post(
                f"{server.base_url}/files",
                files={"file": ("big.bin", body)},
                data={"purpose": "assistants"},
                timeout=120,
            )
        killer.join(130)
        assert seen, "the upload was never caught while being written"
        process.wait(10)
        assert [p.name for p in incoming.iterdir()], "the kill left nothing to clean up"

        server.start()
        client = server.client(max_retries=0)
        assert list(incoming.iterdir()) == []
        assert sorted(p.name for p in files_dir.iterdir()) == [".incoming"]
        assert client.files.list().data == []
