"""The server trusts nothing its agents send: bounded lines, checked fields, confined paths."""

from __future__ import annotations

import logging
import time

import pytest

from server.runtime.base import ExecDone, ImageOutput, OutputChunk
from server.runtime.frames import FrameParser, LineReader, confined_path


def test_lines_are_split_and_overlong_ones_dropped_whole() -> None:
    reader = LineReader(max_line=10)
    reader.feed(b'{"a":1}\n0123456789ABCDEF')
    assert reader.next_line() == b'{"a":1}'
    assert reader.next_line() is None
    reader.feed(b"more of the long line\nok\n")
    assert reader.next_line() == b"ok"
    assert reader.next_line() is None
    assert reader.dropped == 1


def test_reading_one_huge_line_is_linear() -> None:
    reader = LineReader(max_line=1 << 20)
    chunk = b"x" * (1 << 20)
    began = time.process_time()
    for _ in range(64):  # 64 MiB without a newline, a MiB at a time
        reader.feed(chunk)
        assert reader.next_line() is None
    reader.feed(b"\nfine\n")
    assert reader.next_line() == b"fine"
    assert time.process_time() - began < 2.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a.txt", "a.txt"),
        ("d/e/f.csv", "d/e/f.csv"),
        ("/mnt/data/x/y", "x/y"),
        ("x/./y", "x/y"),
        ("x/../y", "y"),
        ("../../../etc/shadow", None),
        ("/mnt/data/../../etc/shadow", None),
        ("/etc/shadow", None),
        ("..", None),
        (".", None),
        ("", None),
        ("a\0b", None),
        ("bad\udcff", None),
        (7, None),
        ("x" * 5000, None),
    ],
)
def test_paths_must_stay_under_mnt_data(raw: object, expected: str | None) -> None:
    assert confined_path(raw) == expected


def test_done_frames_are_checked_field_by_field(caplog: pytest.LogCaptureFixture) -> None:
    parser = FrameParser("cntr_x")
    with caplog.at_level(logging.WARNING, logger="localbox.runtime"):
        done = parser.event(
            {
                "type": "done",
                "status": "pwned",
                "error": {"name": 1, "value": "v"},
                "state_preserved": "yes",
                "files": [
                    {"path": "ok.txt", "bytes": 3, "mtime": 1.5},
                    {"path": "../../../etc/shadow", "bytes": 1, "mtime": 1},
                    {"path": "../../../etc/passwd", "bytes": 1, "mtime": 1},
                    {"path": "neg.txt", "bytes": -1, "mtime": 1},
                    {"path": "nan.txt", "bytes": 1, "mtime": float("nan")},
                    {"path": "bool.txt", "bytes": True, "mtime": 1},
                    "not an object",
                ],
                "removed": ["gone.txt", "/etc/hosts", 5],
                "truncated": {"stdout": -5, "stderr": 10},
                "exit_code": "0",
                "duration_ms": -3,
            }
        )
    assert isinstance(done, ExecDone)
    assert done.status == "error"
    assert done.error is not None
    assert (done.error.name, done.error.value) == ("Error", "v")
    assert done.state_preserved is False
    assert [(f.path, f.bytes) for f in done.files] == [("ok.txt", 3)]
    assert done.removed == ["gone.txt"]
    assert done.truncated == {"stderr": 10}
    assert done.exit_code is None
    assert done.duration_ms == 0
    # Each kind of problem is logged once, however often it occurs.
    outside = [r for r in caplog.records if "outside /mnt/data" in r.getMessage()]
    assert len(outside) == 2  # one for files, one for removed paths


def test_unknown_frames_are_dropped_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    parser = FrameParser("cntr_x")
    with caplog.at_level(logging.WARNING, logger="localbox.runtime"):
        for kind in ("exfiltrate", "exfiltrate", "other", None):
            assert parser.event({"type": kind, "data": "x"}) is None
        assert parser.event({"type": "image", "media_type": "text/html", "data": "x"}) is None
    assert len([r for r in caplog.records if "a frame of unknown type" in r.getMessage()]) == 1
    assert parser.event({"type": "stream", "name": "evil", "text": "t"}) == OutputChunk(
        "stdout", "t"
    )
    assert parser.event({"type": "image", "media_type": "image/png", "data": "QQ=="}) == (
        ImageOutput("image/png", "QQ==")
    )
