"""Every frame the agent writes is bounded, whatever the code printed."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable

from localbox_agent.protocol import (  # type: ignore[import-not-found]
    STREAM_PIECE,
    Emitter,
    Limits,
    Output,
    truncated,
)


def collect(run: Callable[[Emitter], None]) -> list[dict[str, object]]:
    """The frames run() emits, read from a real pipe as the server would."""
    read, write = os.pipe()
    chunks: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(read, 1 << 20):
            chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        run(Emitter(write))
    finally:
        os.close(write)
        reader.join()
        os.close(read)
    return [json.loads(line) for line in b"".join(chunks).splitlines()]


def test_streams_are_capped_per_call_and_sent_in_small_pieces() -> None:
    def go(emitter: Emitter) -> None:
        out = Output(emitter, "r", Limits(max_output=100_000))
        out.stream("stdout", "é" * 80_000)  # 160,000 bytes
        out.stream("stdout", "more")
        out.stream("stderr", "\udcff lone surrogate")
        assert out.dropped == {"stdout": 60_004, "stderr": 0}

    sent = collect(go)
    stdout = [f for f in sent if f["name"] == "stdout"]
    assert all(len(str(f["text"]).encode()) <= STREAM_PIECE for f in stdout)
    assert sum(len(str(f["text"]).encode()) for f in stdout) == 100_000
    assert [f["text"] for f in sent if f["name"] == "stderr"] == ["? lone surrogate"]


def test_images_over_the_budget_become_a_note() -> None:
    def go(emitter: Emitter) -> None:
        out = Output(emitter, "r", Limits(max_image_bytes=1000))
        out.image("image/png", "A" * 800)
        out.image("image/png", "B" * 800)

    sent = collect(go)
    assert [f["type"] for f in sent] == ["image", "stream"]
    assert "was not returned" in str(sent[1]["text"])


def test_error_fields_are_truncated_with_a_marker() -> None:
    text = truncated("x" * 1000, 100)
    assert text.startswith("x" * 100)
    assert text.endswith("[localbox: truncated, 900 more bytes not shown]")
    assert truncated("short", 100) == "short"
