"""A sandbox that keeps its CPU busy steps aside for the others (its cgroup weighs least on
the host) and weighs as before once it calms down; the others are never touched."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import docker
import openai

from server.runtime.cpu_cgroup import (
    LOW_SHARES,
    LOW_WEIGHT,
    NORMAL_SHARES,
    NORMAL_WEIGHT,
    cpu_cgroup,
)
from tests.api.test_exec import run
from tests.conftest import LocalboxServer

SPIN = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass"


def weight(docker_client: docker.DockerClient, container_id: str) -> str:
    """ "low" or "normal": the sandbox's CPU weight as the host's kernel has it."""
    pid = docker_client.containers.get(f"localbox-{container_id}").attrs["State"]["Pid"]
    group = cpu_cgroup(pid)
    assert group is not None, "the sandbox's CPU cgroup is not visible on this host"
    value = int(group.weight.read_text())
    low, normal = (LOW_WEIGHT, NORMAL_WEIGHT) if group.v2 else (LOW_SHARES, NORMAL_SHARES)
    assert value in (low, normal), value
    return "low" if value == low else "normal"


def wait_for(check: Callable[[], bool], seconds: float) -> float:
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < seconds, "did not happen in time"
        time.sleep(0.2)
    return time.monotonic() - began


def test_a_busy_sandbox_steps_aside_and_comes_back(
    server: LocalboxServer, client: openai.OpenAI, docker_client: docker.DockerClient
) -> None:
    busy = client.containers.create(name="busy")
    calm = client.containers.create(name="calm")
    try:
        assert weight(docker_client, busy.id) == "normal"
        spinning = threading.Thread(
            target=run, args=(server, busy.id, SPIN.format(seconds=10)), kwargs={"timeout": 60}
        )
        spinning.start()
        took = wait_for(lambda: weight(docker_client, busy.id) == "low", 9)
        print(f"stepped aside after {took:.1f} s of spinning")
        assert weight(docker_client, calm.id) == "normal"
        # Weighed least, it still has the CPU nobody else wants, and answers.
        assert run(server, calm.id, "print(6 * 7)")["stdout"] == "42\n"
        spinning.join()
        wait_for(lambda: weight(docker_client, busy.id) == "normal", 15)
        assert run(server, busy.id, "print('back')")["stdout"] == "back\n"
    finally:
        client.containers.delete(busy.id)
        client.containers.delete(calm.id)
