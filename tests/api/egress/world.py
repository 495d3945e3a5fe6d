"""An egress test world: a localbox server, and an upstream container on the egress proxy's
outside network under the aliases allowed.test, sub.allowed.test, other.test, denied.test and
packages.test, serving HTTP and HTTPS with a test CA the proxy is told to trust (and a
one-package index). Nothing here touches the internet."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import openai
from docker.models.containers import Container as DockerContainer

from tests.api.test_exec import run
from tests.conftest import LocalboxServer, serving

HERE = Path(__file__).resolve().parent
ALIASES = ["allowed.test", "sub.allowed.test", "other.test", "denied.test", "packages.test"]
EXTRA_NAMES = ["flood.test"]
"""Names the test certificate also covers, for upstreams a test starts itself."""
SECRET = "sk-real-0123456789abcdef"
PRIVATE_RANGES = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
SANDBOX_IMAGE = os.environ.get("LOCALBOX_SANDBOX_IMAGE", "localbox-sandbox:latest")

FETCH = """
import json, urllib.error, urllib.request
def fetch(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return [r.status, r.read().decode()]
    except urllib.error.HTTPError as e:
        return [e.code, e.read().decode()]
    except Exception as e:
        return [None, repr(e)]
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> None:
    """A test CA (ca.pem) and a certificate for every upstream alias (leaf.pem, leaf.key)."""
    folder.mkdir(parents=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=localbox test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
        "-subj", "/CN=allowed.test",
        cwd=folder,
    )  # fmt: skip
    sans = ",".join(f"DNS:{a}" for a in [*ALIASES, *EXTRA_NAMES])
    (folder / "ext.cnf").write_text(
        f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext.cnf",
        cwd=folder,
    )  # fmt: skip
    for name in ("leaf.key", "leaf.pem"):
        (folder / name).chmod(0o644)


def make_index(www: Path) -> None:
    """A one-package index: /simple/tinypkg/ links a wheel under /files/."""
    wheel = "tinypkg-1.0-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("tinypkg/__init__.py", "VALUE = 1\n")
        z.writestr(
            "tinypkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n"
        )
        z.writestr(
            "tinypkg-1.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        z.writestr("tinypkg-1.0.dist-info/RECORD", "")
    (www / "files").mkdir(parents=True)
    (www / "files" / wheel).write_bytes(buffer.getvalue())
    (www / "simple" / "tinypkg").mkdir(parents=True)
    (www / "simple" / "index.html").write_text('<a href="/simple/tinypkg/">tinypkg</a>\n')
    (www / "simple" / "tinypkg" / "index.html").write_text(
        f'<html><body><a href="/files/{wheel}">{wheel}</a></body></html>\n'
    )


@dataclass
class EgressWorld:
    server: LocalboxServer
    client: openai.OpenAI
    upstream: DockerContainer
    upstream_ip: str
    docker: docker.DockerClient
    root: Path

    def create(self, domains: list[str], secrets: list[dict[str, str]] | None = None) -> Any:
        policy: dict[str, Any] = {"type": "allowlist", "allowed_domains": domains}
        if secrets is not None:
            policy["domain_secrets"] = secrets
        return self.client.containers.create(name="egress", network_policy=policy)  # type: ignore[arg-type]

    def python(self, container_id: str, code: str) -> Any:
        result = run(self.server, container_id, FETCH + code, timeout=120)
        assert result["status"] == "completed", result
        return json.loads(result["stdout"].strip().splitlines()[-1])

    def received(self) -> list[dict[str, Any]]:
        """What the upstream received, oldest first."""
        lines = self.upstream.logs(stdout=True, stderr=False).decode().splitlines()
        return [r for r in map(json.loads, lines) if "path" in r]


def start_upstream(
    engine: docker.DockerClient,
    server: LocalboxServer,
    root: Path,
    aliases: list[str],
    remote: bool = False,
) -> tuple[DockerContainer, str]:
    """An upstream container on the proxy's outside network under these aliases, and its
    address there (labelled with the server's instance, so its clean-up removes it). A
    `remote` one stands for a server elsewhere: it runs at the lowest CPU weight the engine
    gives (a container's weight, not a nice value, which only counts inside its own cgroup),
    so that the work it does (which would be another machine's) does not weigh on this one."""
    outside = f"localbox-egress-{server.instance_id}"
    command = ["python3", "/srv/upstream.py", "/srv/certs/leaf.pem", "/srv/certs/leaf.key"]
    upstream = engine.containers.run(
        SANDBOX_IMAGE,
        command,
        cpu_shares=2 if remote else None,
        detach=True,
        name=f"localbox-upstream-{aliases[0]}-{server.instance_id}",
        labels={"localbox.instance": server.instance_id, "localbox.test": "upstream"},
        network=outside,
        networking_config={outside: engine.api.create_endpoint_config(aliases=aliases)},
        volumes={
            str(HERE / "upstream.py"): {"bind": "/srv/upstream.py", "mode": "ro"},
            str(root / "certs"): {"bind": "/srv/certs", "mode": "ro"},
            str(root / "www"): {"bind": "/srv/www", "mode": "ro"},
        },
    )
    deadline = time.monotonic() + 30
    while b'"ready"' not in upstream.logs():
        assert time.monotonic() < deadline, upstream.logs()
        time.sleep(0.1)
    upstream.reload()
    return upstream, upstream.attrs["NetworkSettings"]["Networks"][outside]["IPAddress"]


@contextmanager
def egress_world(root: Path, extra_env: dict[str, str] | None = None) -> Iterator[EgressWorld]:
    """A server with its data under root, and the upstream; all removed at the end."""
    make_certificates(root / "certs")
    make_index(root / "www")
    env = {"LOCALBOX_EGRESS_EXTRA_CA": str(root / "certs" / "ca.pem"), **(extra_env or {})}
    with serving(root / "data", env) as server:
        client = server.client(max_retries=0)
        # The first allowlisted container makes the proxy and its outside network, which the
        # upstream then joins under its aliases.
        first = client.containers.create(
            name="first",
            network_policy={"type": "allowlist", "allowed_domains": ["allowed.test"]},  # type: ignore[arg-type]
        )
        engine = docker.from_env()
        upstream, ip = start_upstream(engine, server, root, ALIASES)
        world = EgressWorld(server, client, upstream, ip, engine, root)
        try:
            yield world
        finally:
            world.client.containers.delete(first.id)  # the server may have been restarted
            engine.close()
