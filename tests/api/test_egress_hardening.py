"""Egress hardening, with real sandboxes, the real proxy and a bystander:

- an allowed name that resolves to an inside address (here: the upstream's address on a
  Docker network) is refused with a 403 that says why, over HTTP and HTTPS alike, unless
  LOCALBOX_EGRESS_ALLOW_PRIVATE opens its range;
- one sandbox holding idle tunnels and flooding cannot hold more than
  LOCALBOX_EGRESS_MAX_CONNECTIONS connections (more get 429, or are closed far past it), and
  a bystander's requests all succeed, their p99 within 10x its quiet value (one shared proxy
  process made it 40-80x). The target is under 2x: `make bench` prints the figure, 3-6x on
  two cores, where the flooding sandbox also keeps one of the two busy itself.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.egress.flood import BYSTANDER, FLOOD, p99
from tests.api.egress.world import PRIVATE_RANGES, EgressWorld, egress_world, start_upstream
from tests.api.test_cpu_step_aside import weight
from tests.api.test_exec import run


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EgressWorld]:
    with egress_world(tmp_path_factory.mktemp("strict")) as made:
        yield made


@pytest.fixture(scope="module")
def open_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EgressWorld]:
    env = {"LOCALBOX_EGRESS_ALLOW_PRIVATE": PRIVATE_RANGES}
    with egress_world(tmp_path_factory.mktemp("flood"), env) as made:
        yield made


def test_an_allowed_name_that_leads_inside_is_refused(strict: EgressWorld) -> None:
    bystander = strict.create(["allowed.test"])
    assert run(strict.server, bystander.id, "state = 5")["status"] == "completed"
    c = strict.create(["allowed.test", "other.test"])
    before = len(strict.received())
    plain, secure = strict.python(
        c.id,
        "print(json.dumps([fetch('http://allowed.test/inside'),"
        " fetch('https://other.test/inside')]))",
    )
    ip = strict.upstream_ip
    assert plain[0] == 403
    assert f"allowed.test resolves to {ip}, an address of the host or of one of its " in plain[1]
    assert "LOCALBOX_EGRESS_ALLOW_PRIVATE" in plain[1]
    assert secure[0] is None  # the tunnel itself is refused, with the reason
    assert "403" in secure[1]
    assert f"other.test resolves to {ip}" in secure[1]
    assert len(strict.received()) == before  # nothing reached the upstream
    still = run(strict.server, bystander.id, "print(state)")
    assert still["stdout"] == "5\n"
    for made in (c, bystander):
        strict.client.containers.delete(made.id)


def test_the_range_an_operator_opens_is_reachable(open_world: EgressWorld) -> None:
    c = open_world.create(["allowed.test"])
    answer = open_world.python(c.id, "print(json.dumps(fetch('https://allowed.test/opened')))")
    assert answer == [200, "hello from allowed.test over https\n"]
    open_world.client.containers.delete(c.id)


def bystander_times(world: EgressWorld, container_id: str, n: int = 200) -> list[float]:
    result = run(world.server, container_id, BYSTANDER.format(n=n), timeout=120)
    assert result["status"] == "completed", result
    times: list[float] = json.loads(result["stdout"])
    return times


def test_a_flooding_sandbox_cannot_slow_another(open_world: EgressWorld) -> None:
    flood_upstream, _ = start_upstream(
        open_world.docker, open_world.server, open_world.root, ["flood.test"], remote=True
    )
    bystander = open_world.create(["allowed.test"])
    flooder = open_world.create(["flood.test"])
    bystander_times(open_world, bystander.id, 20)  # warm: interpreter, first connections
    quiet = bystander_times(open_world, bystander.id)

    flooded: dict[str, Any] = {}

    def flood() -> None:
        code = FLOOD.format(tunnels=150, threads=100, seconds=25)
        flooded.update(run(open_world.server, flooder.id, code, timeout=120))

    thread = threading.Thread(target=flood)
    thread.start()
    time.sleep(8)  # the tunnels are taken and let go, and the threads are flooding
    during = bystander_times(open_world, bystander.id)
    # The flooding sandbox keeps its CPU busy: it has stepped aside for the others.
    flooder_weight = weight(open_world.docker, flooder.id)
    thread.join()

    assert flooded["status"] == "completed", flooded
    report = json.loads(flooded["stdout"])
    tunnels, requests = report["tunnels"], report["requests"]
    assert tunnels.get("200", 0) <= 64, tunnels  # LOCALBOX_EGRESS_MAX_CONNECTIONS
    assert tunnels.get("429", 0) + tunnels.get("closed", 0) + tunnels.get("error", 0) >= 150 - 64
    assert requests["ok"] > 0, requests
    assert flood_upstream.logs().count(b'"/flood"') >= requests["ok"]
    assert len(during) == 200  # every bystander request succeeded
    assert flooder_weight == "low"
    assert weight(open_world.docker, bystander.id) == "normal"
    # make bench shows the target (under 2x; 1.6-1.7x measured). The p99 of 200 requests on a
    # two-core machine that runs the rest of the suite's clean-up meanwhile is noisy (up to
    # 3.1x seen), so the test keeps room; with one shared proxy process it was 40-80x.
    assert p99(during) < 5 * p99(quiet), {"quiet": p99(quiet), "during": p99(during)}
    for made in (bystander, flooder):
        open_world.client.containers.delete(made.id)
