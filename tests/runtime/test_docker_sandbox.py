"""Each API container is one hardened Docker container with a labelled volume at /mnt/data."""

from __future__ import annotations

import io
import os
import secrets

import docker
import docker.errors
import openai
import pytest

from server.runtime.base import ExecRequest, OutputChunk, SandboxFileNotFound, SandboxSpec
from server.runtime.docker import DockerRuntime
from tests.api.test_exec import run as run_code
from tests.conftest import SANDBOX_RUNTIME, LocalboxServer, remove_sandboxes


def _sandbox(
    docker_client: docker.DockerClient, container_id: str
) -> docker.models.containers.Container:
    return docker_client.containers.get(f"localbox-{container_id}")


def test_sandbox_is_hardened_and_labelled(
    server: LocalboxServer, client: openai.OpenAI, docker_client: docker.DockerClient
) -> None:
    c = client.containers.create(name="hardened", memory_limit="4g")
    sandbox = _sandbox(docker_client, c.id)
    # Made for the container, or a spare from the warm pool renamed for it (labels are fixed).
    labels = sandbox.labels
    assert sandbox.name == f"localbox-{c.id}"
    assert labels.get("localbox.container_id") == c.id or labels.get("localbox.spare") == "true"
    assert labels["localbox.instance"] == server.instance_id
    assert sandbox.status == "running"

    host = sandbox.attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    # Under gVisor the engine's pids limit is only a backstop, well above the sandbox's own
    # (RLIMIT_NPROC, see Isolation in the README).
    assert host["PidsLimit"] == (256 * 16 if SANDBOX_RUNTIME == "runsc" else 256)
    assert host["Runtime"] == SANDBOX_RUNTIME
    assert host["Memory"] == 4 << 30
    assert host["MemorySwap"] == 4 << 30
    assert host["NanoCpus"] == 1_000_000_000
    assert host["ReadonlyRootfs"] is True
    assert host["Init"] is True
    assert "/tmp" in host["Tmpfs"]
    # The agent runs as root with four capabilities; user code drops to uid 1000 with none.
    assert sandbox.attrs["Config"]["User"] == "0:0"
    assert sorted(host["CapAdd"]) == ["DAC_OVERRIDE", "KILL", "SETGID", "SETUID"]

    mounts = {m["Destination"]: m for m in sandbox.attrs["Mounts"]}
    assert mounts["/mnt/data"]["Type"] == "volume"
    assert mounts["/mnt/data"]["RW"] is True
    volume = docker_client.volumes.get(mounts["/mnt/data"]["Name"])
    volume_labels = volume.attrs["Labels"]
    assert volume_labels.get("localbox.container_id") == c.id or volume_labels["localbox.spare"]
    assert volume_labels["localbox.instance"] == server.instance_id

    client.containers.delete(c.id)
    with pytest.raises(docker.errors.NotFound):
        _sandbox(docker_client, c.id)
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(volume.name)


def test_sandbox_behaves_hardened_from_inside(
    server: LocalboxServer, client: openai.OpenAI, docker_client: docker.DockerClient
) -> None:
    c = client.containers.create(name="inside")
    sandbox = _sandbox(docker_client, c.id)

    def run(cmd: str) -> tuple[int | None, str]:
        """As user code runs it: through the exec API."""
        result = run_code(server, c.id, cmd, language="bash")
        return result["exit_code"], result["stdout"]

    assert run("id -u") == (0, "1000\n")
    assert run("pwd")[1] == "/mnt/data\n"
    assert run("touch /etc/x 2>/dev/null")[0] != 0  # read-only root
    assert run("echo hi > /mnt/data/a && cat /mnt/data/a") == (0, "hi\n")
    assert run("echo t > /tmp/t && cat /tmp/t") == (0, "t\n")
    assert run("ls /sys/class/net")[1].split() == ["lo"]
    assert run("grep CapEff /proc/self/status")[1].split()[1] == "0000000000000000"
    # PR_GET_NO_NEW_PRIVS (gVisor's /proc/self/status has no NoNewPrivs line).
    nnp = "import ctypes; print(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))"
    assert run(f'python3 -c "{nnp}"')[1].strip() == "1"
    assert "docker-init" in run("cat /proc/1/cmdline")[1]
    # /mnt/data survives a sandbox restart: it is a volume, not the container's layer.
    sandbox.restart(timeout=1)
    run("true")  # the first call after a restart behind the server's back reports it
    assert run("cat /mnt/data/a") == (0, "hi\n")
    client.containers.delete(c.id)


def test_python_stack_is_in_the_image(
    client: openai.OpenAI, docker_client: docker.DockerClient
) -> None:
    c = client.containers.create(name="stack")
    code, out = _sandbox(docker_client, c.id).exec_run(
        ["python3", "-c", "import numpy, pandas, matplotlib, ipykernel; print('ok')"]
    )
    assert (code, out) == (0, b"ok\n")
    client.containers.delete(c.id)


def _ls(runtime: DockerRuntime, cid: str, directory: str) -> list[str]:
    request = ExecRequest(
        id=f"ls-{secrets.token_hex(4)}",
        code=f"ls -A /mnt/data/{directory}",
        language="bash",
        timeout=30,
        max_output=4096,
        disk_limit=0,
    )
    out = "".join(e.text for e in runtime.execute(cid, request) if isinstance(e, OutputChunk))
    return sorted(out.split())


@pytest.mark.parametrize("direct", [True, False], ids=["volume-directly", "through-engine"])
def test_files_move_the_same_through_the_volume_or_the_engine(direct: bool) -> None:
    """Writing, settling and reading a file give the same result either way: straight in the
    data volume's directory (when the server can open it), or through the engine's archive
    API and the sandbox's file helper (when it cannot, as in a server without root). Either
    way a write goes to a temporary beside its name, never listed, and replaces the file in
    one rename once it is whole."""
    instance = f"test-{secrets.token_hex(4)}"
    runtime = DockerRuntime(
        os.environ.get("LOCALBOX_SANDBOX_IMAGE", "localbox-sandbox:latest"),
        instance,
        direct_volume_io=direct,
        sandbox_runtime=SANDBOX_RUNTIME,
    )
    cid = f"cntr_{secrets.token_hex(8)}"
    try:
        runtime.create(SandboxSpec(cid, 256 << 20))
        old = b"the acknowledged bytes"
        runtime.commit_file(cid, runtime.stage_file(cid, "sub/blob.bin", io.BytesIO(old), len(old)))
        data = os.urandom((3 << 20) + 7)
        staged = runtime.stage_file(cid, "sub/blob.bin", io.BytesIO(data), len(data))
        assert staged.temp.startswith("sub/.localbox-upload-")
        # Until it is placed, the old bytes stay, and the temporary is never listed.
        assert b"".join(runtime.open_file(cid, "sub/blob.bin")[1]) == old
        assert {f.path: f.bytes for f in runtime.list_files(cid)} == {"sub/blob.bin": len(old)}
        assert _ls(runtime, cid, "sub") == sorted(["blob.bin", staged.temp.split("/")[1]])
        runtime.commit_file(cid, staged)
        size, chunks = runtime.open_file(cid, "sub/blob.bin")
        assert size == len(data)
        assert b"".join(chunks) == data
        # A streamed write, settled at its real size as it is placed.
        staged = runtime.stage_file(cid, "sub/blob.bin", io.BytesIO(data), len(data))
        runtime.commit_file(cid, staged, size=10, tail=b"END")
        assert b"".join(runtime.open_file(cid, "sub/blob.bin")[1]) == data[:7] + b"END"
        staged = runtime.stage_file(cid, "short.bin", io.BytesIO(data), 100)
        runtime.commit_file(cid, staged, size=50, tail=b"")  # an empty tail
        assert b"".join(runtime.open_file(cid, "short.bin")[1]) == data[:50]
        files = {f.path: f.bytes for f in runtime.list_files(cid)}
        assert files == {"sub/blob.bin": 10, "short.bin": 50}
        assert _ls(runtime, cid, "sub") == ["blob.bin"]
        # A temporary that code in the sandbox removed: nothing is placed, the old file stays.
        staged = runtime.stage_file(cid, "sub/blob.bin", io.BytesIO(b"new"), 3)
        runtime.delete_file(cid, staged.temp)
        with pytest.raises(SandboxFileNotFound):
            runtime.commit_file(cid, staged)
        assert runtime.open_file(cid, "sub/blob.bin")[0] == 10
        # Temporaries that another server process (killed since) left go; one this process
        # is writing stays.
        killed = DockerRuntime(
            runtime.image, instance, direct_volume_io=direct, sandbox_runtime=SANDBOX_RUNTIME
        )
        for name in ("left-1", "sub/left-2"):
            killed.stage_file(cid, name, io.BytesIO(b"x"), 1)
        killed.client.close()
        writing = runtime.stage_file(cid, "w.bin", io.BytesIO(b"w"), 1)
        assert runtime.remove_stale_uploads(cid, 3600) == 0  # too recent
        assert runtime.remove_stale_uploads(cid, 0) == 2
        assert runtime.remove_stale_uploads(cid, 0) == 0  # swept clean: not looked at again
        assert _ls(runtime, cid, "") == sorted(["short.bin", "sub", writing.temp])
        assert _ls(runtime, cid, "sub") == ["blob.bin"]
        runtime.commit_file(cid, writing)
        assert _ls(runtime, cid, "") == ["short.bin", "sub", "w.bin"]
        # The sandbox's user owns what the server wrote, and sees the same bytes.
        request = ExecRequest(
            id="stat",
            code="stat -c '%u:%g %s' /mnt/data/sub/blob.bin",
            language="bash",
            timeout=30,
            max_output=4096,
            disk_limit=0,
        )
        seen = "".join(e.text for e in runtime.execute(cid, request) if isinstance(e, OutputChunk))
        assert seen.split() == ["1000:1000", "10"]
        with pytest.raises(SandboxFileNotFound):
            runtime.open_file(cid, "missing")
        assert (runtime._data_root(cid) is not None) == (direct and os.geteuid() == 0)
    finally:
        runtime.destroy(cid)
        runtime.client.close()
        remove_sandboxes(instance)
