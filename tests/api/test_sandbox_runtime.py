"""LOCALBOX_SANDBOX_RUNTIME: sandboxes run under the runtime it names (make test runs this
file once with runc and once with gVisor's runsc), and a runtime the engine lacks stops the
server before it serves."""

from __future__ import annotations

from pathlib import Path

import docker
import openai
import pytest

from tests.api.test_exec import run
from tests.conftest import SANDBOX_RUNTIME, LocalboxServer, serving

GVISOR_HELLO = "Starting gVisor"


def kernel_seen_from_inside(server: LocalboxServer, container_id: str) -> tuple[str, str]:
    """What the sandbox's kernel says of itself: /proc/version and dmesg (as the sandbox user)."""
    result = run(server, container_id, "cat /proc/version; dmesg 2>&1 | head -n 3", language="bash")
    assert result["status"] == "completed", result
    version, _, log = result["stdout"].partition("\n")
    return version, log


@pytest.mark.parametrize("memory_limit", [None, "4g"], ids=["warm-pool", "cold"])
def test_sandboxes_run_on_the_configured_kernel(
    server: LocalboxServer,
    client: openai.OpenAI,
    docker_client: docker.DockerClient,
    memory_limit: str | None,
) -> None:
    # The shared server keeps spares of the default size: the default is claimed from the
    # pool, another memory limit starts a sandbox cold (or resizes a spare).
    extra = {"memory_limit": memory_limit} if memory_limit else {}
    c = client.containers.create(name="kernel", **extra)  # type: ignore[arg-type]
    try:
        version, log = kernel_seen_from_inside(server, c.id)
        host_version = Path("/proc/version").read_text().strip()
        engine_runtime = docker_client.containers.get(f"localbox-{c.id}").attrs["HostConfig"][
            "Runtime"
        ]
        if SANDBOX_RUNTIME == "runsc":
            assert GVISOR_HELLO in log, log
            assert version != host_version
            assert engine_runtime == "runsc"
        else:
            assert "Operation not permitted" in log  # the host kernel's log is not theirs
            assert version == host_version
            assert engine_runtime == SANDBOX_RUNTIME
        # The interpreter's state lives on either way.
        assert run(server, c.id, "x = 6 * 7")["status"] == "completed"
        assert run(server, c.id, "print(x)")["stdout"] == "42\n"
    finally:
        client.containers.delete(c.id)


def test_a_runtime_the_engine_lacks_stops_the_server_at_start(tmp_path: Path) -> None:
    env = {"LOCALBOX_SANDBOX_RUNTIME": "no-such-runtime"}
    with pytest.raises(RuntimeError) as failed, serving(tmp_path / "data", env):
        pass  # the server must not come up
    message = str(failed.value)
    assert "localbox exited early" in message
    assert "LOCALBOX_SANDBOX_RUNTIME=no-such-runtime" in message
    assert "runc" in message  # the runtimes the engine has are named
