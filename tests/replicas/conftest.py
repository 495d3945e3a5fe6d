"""Fixtures for the replica tests: one cluster for the session (three replicas behind HAProxy),
every replica serving again before each test, and on a failure what the replicas and the
balancer logged meanwhile."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from contextlib import suppress
from pathlib import Path

import openai
import pytest

from tests.replicas.cluster import Cluster, running_cluster

REPLICAS = 3
LOG_START = pytest.StashKey[tuple[Cluster, list[int], int]]()
"""Where each replica's log, and the balancer's, stood when the test began."""
NOTEWORTHY = re.compile(r"WARNING|ERROR|CRITICAL|Traceback|Error|killed|restarted")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres: str) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("replicas"), REPLICAS, admin_url=postgres) as c:
        yield c


@pytest.fixture(autouse=True)
def _serving(cluster: Cluster, request: pytest.FixtureRequest) -> None:
    """Every replica up before the test (one a failed test left killed is started again), and
    where each log stood, so that a failure shows what was logged during the test."""
    cluster.ensure_running()
    sizes = cluster.log_sizes()
    request.node.stash[LOG_START] = (cluster, sizes, _size(cluster.balancer.log_file))


@pytest.fixture
def made(cluster: Cluster) -> Iterator[list[str]]:
    """Container ids a test made: deleted through the balancer afterwards."""
    ids: list[str] = []
    yield ids
    cluster.ensure_running()
    client = cluster.client(max_retries=2, timeout=120)
    for cid in ids:
        with suppress(openai.NotFoundError):
            client.containers.delete(cid)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and call.when == "call" and LOG_START in item.stash:
        cluster, starts, balancer_start = item.stash[LOG_START]
        for index, replica in enumerate(cluster.replicas):
            text = _tail(replica.log_file, starts[index])
            report.sections.append((f"replica r{index} log (noteworthy lines)", text))
        balancer = _tail(cluster.balancer.log_file, balancer_start, everything=True)
        report.sections.append(("balancer log (last lines)", balancer))
    return report


def _tail(path: Path, start: int, *, everything: bool = False, lines: int = 60) -> str:
    if not path.exists():
        return "(no log)"
    with path.open("rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    kept = text.splitlines()
    if not everything:
        kept = [line for line in kept if NOTEWORTHY.search(line)]
    return "\n".join(kept[-lines:]) or "(nothing)"
