"""Benchmark: one allowlisted sandbox floods the egress proxy (idle tunnels, then HTTPS
requests from 100 threads) while a bystander sandbox times plain requests through its own
proxy; the bystander's p50 and p99 with and without the flood, in one run.

Builds the same world as the egress tests (a localbox server, an upstream container for the
bystander and one for the flood, a test CA) in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import Row, p50, show  # noqa: E402

from tests.api.egress.flood import BYSTANDER, FLOOD, p99  # noqa: E402
from tests.api.egress.world import (  # noqa: E402
    PRIVATE_RANGES,
    EgressWorld,
    egress_world,
    start_upstream,
)
from tests.api.test_exec import run  # noqa: E402


def times(world: EgressWorld, container_id: str, n: int) -> list[float]:
    result = run(world.server, container_id, BYSTANDER.format(n=n), timeout=300)
    assert result["status"] == "completed", result
    found: list[float] = json.loads(result["stdout"])
    return found


def measure(n: int, seconds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"LOCALBOX_EGRESS_ALLOW_PRIVATE": PRIVATE_RANGES}
        with egress_world(Path(tmp), env) as world:
            start_upstream(world.docker, world.server, world.root, ["flood.test"], remote=True)
            bystander = world.create(["allowed.test"]).id
            flooder = world.create(["flood.test"]).id
            times(world, bystander, 20)
            quiet = times(world, bystander, n)
            flooded: dict[str, Any] = {}
            code = FLOOD.format(tunnels=150, threads=100, seconds=seconds)
            thread = threading.Thread(
                target=lambda: flooded.update(run(world.server, flooder, code, timeout=300))
            )
            thread.start()
            time.sleep(8)
            during = times(world, bystander, n)
            thread.join()
            assert flooded.get("status") == "completed", flooded
            report = json.loads(flooded["stdout"])
    return {"quiet": quiet, "during": during, "report": report}


def rows(n: int = 300, seconds: int = 30) -> list[Row]:
    seen = measure(n, seconds)
    quiet, during, report = seen["quiet"], seen["during"], seen["report"]
    held = report["tunnels"].get("200", 0)
    served = report["requests"]["ok"]
    return [
        Row("egress: bystander request p50, another sandbox flooding", p50(during),
            "the same, no flood", p50(quiet), ""),
        Row("egress: bystander request p99, another sandbox flooding", p99(during),
            "the same, no flood", p99(quiet), "< 2x"),
        Row("egress: idle tunnels the flooder could hold", held, "", None,
            "<= 64 (LOCALBOX_EGRESS_MAX_CONNECTIONS)", unit="tunnels"),
        Row(f"egress: flood requests served in {seconds} s", served, "", None, "",
            unit="requests"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=300, help="bystander requests per case")
    parser.add_argument("--seconds", type=int, default=30, help="how long the flood lasts")
    args = parser.parse_args()
    show(rows(args.n, args.seconds))


if __name__ == "__main__":
    main()
