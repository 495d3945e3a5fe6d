"""Busy sandboxes step aside: weighed least after BUSY_SECONDS over BUSY_SHARE of their CPU,
weighed as before after CALM_SECONDS below it."""

from __future__ import annotations

from collections.abc import Callable

from server.runtime import SandboxSpec
from server.services.cpu_arbiter import BUSY_SECONDS, CALM_SECONDS, CpuArbiter
from tests.services.memory_runtime import MemoryRuntime


class MeteredRuntime(MemoryRuntime):
    def __init__(self) -> None:
        super().__init__()
        self.usage: dict[str, float] = {}
        self.low: dict[str, bool] = {}

    def cpu_usage(self, container_id: str) -> float | None:
        return self.usage.get(container_id)

    def set_cpu_low(self, container_id: str, low: bool) -> bool:
        self.low[container_id] = low
        return True


def running(runtime: MeteredRuntime) -> Callable[[], list[str]]:
    return lambda: [s.container_id for s in runtime.list_sandboxes()]


def test_a_busy_sandbox_steps_aside_and_comes_back_when_calm() -> None:
    runtime = MeteredRuntime()
    for ident in ("busy", "idle"):
        runtime.create(SandboxSpec(ident, 1 << 30))
        runtime.usage[ident] = 0.0
    arbiter = CpuArbiter(runtime, running(runtime), cpus=1.0)
    now = 0.0
    arbiter.tick(now)
    for second in range(1, BUSY_SECONDS + 1):
        now += 1.0
        runtime.usage["busy"] += 0.95  # 95% of its one core
        runtime.usage["idle"] += 0.05
        arbiter.tick(now)
        assert runtime.low.get("busy", False) is (second >= BUSY_SECONDS)
    assert arbiter.low() == ["busy"]
    assert "idle" not in runtime.low  # never touched

    for second in range(1, CALM_SECONDS + 1):
        now += 1.0
        runtime.usage["busy"] += 0.1
        arbiter.tick(now)
        assert runtime.low["busy"] is (second < CALM_SECONDS)
    assert arbiter.low() == []


def test_a_short_burst_does_not_count_and_quotas_scale() -> None:
    runtime = MeteredRuntime()
    runtime.create(SandboxSpec("bursty", 1 << 30))
    runtime.usage["bursty"] = 0.0
    # Two cores each: one busy core is half of that.
    arbiter = CpuArbiter(runtime, running(runtime), cpus=2.0)
    now = 0.0
    arbiter.tick(now)
    for _ in range(10):
        now += 1.0
        runtime.usage["bursty"] += 1.0
        arbiter.tick(now)
    assert arbiter.low() == []
    for burst in (1.9, 1.9, 0.1, 1.9, 1.9, 0.1):  # never three busy seconds in a row
        now += 1.0
        runtime.usage["bursty"] += burst
        arbiter.tick(now)
    assert runtime.low == {}


def test_sandboxes_that_went_are_forgotten() -> None:
    runtime = MeteredRuntime()
    runtime.create(SandboxSpec("gone", 1 << 30))
    runtime.usage["gone"] = 0.0
    arbiter = CpuArbiter(runtime, running(runtime), cpus=1.0)
    now = 0.0
    for _ in range(BUSY_SECONDS + 1):
        arbiter.tick(now)
        now += 1.0
        runtime.usage["gone"] += 1.0
    assert arbiter.low() == ["gone"]
    runtime.destroy("gone")
    arbiter.tick(now + 10)  # listed again
    assert arbiter.low() == []
