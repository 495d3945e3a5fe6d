"""New connections are paced: a burst at once, then `rate` a second, each one past that told
how long to wait for its turn."""

from __future__ import annotations

import pytest
from localbox_egress import pacing  # type: ignore[import-not-found]


def test_a_burst_goes_at_once_and_the_rest_wait_their_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(pacing.time, "monotonic", lambda: now[0])
    pacer = pacing.Pacer()
    assert [pacer.wait(10.0, 4) for _ in range(4)] == [0.0] * 4
    # Past the burst, the waits line up a tenth of a second apart.
    assert [round(pacer.wait(10.0, 4), 3) for _ in range(3)] == [0.1, 0.2, 0.3]
    now[0] += 0.3  # those three are through
    assert round(pacer.wait(10.0, 4), 3) == 0.1
    now[0] += 60  # a quiet minute refills the bucket, never past the burst
    assert [pacer.wait(10.0, 4) for _ in range(4)] == [0.0] * 4
    assert pacer.wait(10.0, 4) > 0
