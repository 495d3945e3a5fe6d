"""Replicas: several localbox processes on ONE PostgreSQL database and ONE data dir, each on a
port of its own, behind HAProxy (Debian's, round-robin), as an operator would run them.

Used by the tests in this package and by scripts/bench_replicas.py. Everything is real: the
servers are `python -m server` processes, the balancer is an `haproxy -db` process with a
config written here, the database is one made on the tests' PostgreSQL and dropped at the end.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import httpx
import openai

from tests.conftest import (
    ROOT,
    LocalboxServer,
    create_postgres_database,
    drop_postgres_database,
    free_port,
    postgres_admin_url,
    remove_sandboxes,
)

HAPROXY_ENV = "LOCALBOX_TEST_HAPROXY"
"""A path to an haproxy binary; without it scripts/ensure-haproxy.sh finds (or installs) one."""

REPLICA_HEADER = "x-localbox-replica"
"""Set by the balancer on every answer: the name (r0, r1, ...) of the replica that served it."""

PROXY = "localbox"
"""The balancer's proxy section, as its statistics name it."""

REPLICA_ENV = {
    "LOCALBOX_WARM_POOL": "2",
    "LOCALBOX_WARM_IMPORTS": "",
    "LOCALBOX_LOG_LEVEL": "info",
    # Sweeps and reconciles often, so that whatever one replica's sweeper does to another's
    # containers (or spares) happens within a test.
    "LOCALBOX_EXPIRY_SWEEP_SECONDS": "1",
    "LOCALBOX_RECONCILE_SECONDS": "2",
    # A killed replica's turns lapse after 5 s (15 by default), so tests of it are short.
    "LOCALBOX_LEASE_SECONDS": "5",
}


def haproxy_binary() -> str:
    """HAPROXY_ENV's path, or the one scripts/ensure-haproxy.sh reports (installing it)."""
    path = os.environ.get(HAPROXY_ENV, "")
    if path:
        return path
    script = ROOT / "scripts" / "ensure-haproxy.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"no haproxy for the replica tests: {done.stderr.strip()}")
    return done.stdout.strip()


def haproxy_config(port: int, servers: list[tuple[str, int]], stats_socket: Path) -> str:
    """HTTP mode, round-robin over the replicas, each checked on GET /health twice a second.

    A request that cannot connect to its replica (killed) is retried, on another replica
    (`option redispatch`), up to three times; a request already sent is never retried, since
    localbox's POSTs are not idempotent. Timeouts allow for long exec calls (300 s, the
    largest exec timeout by default).
    """
    lines = [
        "global",
        "    maxconn 4096",
        f"    stats socket {stats_socket} mode 600 level admin",
        "    log stdout format raw daemon",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option redispatch 1",
        "    retries 3",
        "    timeout connect 2s",
        "    timeout http-request 60s",
        "    timeout queue 60s",
        "    timeout client 300s",
        "    timeout server 300s",
        "    timeout check 2s",
        "    http-reuse safe",
        "",
        f"listen {PROXY}",
        f"    bind 127.0.0.1:{port}",
        "    balance roundrobin",
        "    option httpchk",
        "    http-check send meth GET uri /health ver HTTP/1.1 hdr Host localhost",
        "    http-check expect status 200",
        "    default-server inter 500ms fastinter 250ms downinter 500ms rise 2 fall 2",
        f"    http-response set-header {REPLICA_HEADER} %[srv_name]",
    ]
    lines += [f"    server {name} 127.0.0.1:{p} check" for name, p in servers]
    return "\n".join(lines) + "\n"


@dataclass
class Balancer:
    """An haproxy process in the foreground (-db) with a config of its own."""

    workdir: Path
    servers: list[tuple[str, int]]
    port: int = field(default_factory=free_port)
    binary: str = field(default_factory=haproxy_binary)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "haproxy.cfg"

    @property
    def stats_socket(self) -> Path:
        return self.workdir / "haproxy.sock"

    @property
    def log_file(self) -> Path:
        return self.workdir / "haproxy.log"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(haproxy_config(self.port, self.servers, self.stats_socket))
        check = subprocess.run(
            [self.binary, "-c", "-q", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refuses its config: {check.stdout}{check.stderr}")
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-f", str(self.config_path), "-db"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def command(self, line: str) -> str:
        """One command on haproxy's stats socket (its runtime API), and its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.stats_socket))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self) -> dict[str, str]:
        """{replica name: its check status ("UP", "DOWN", "UP 1/2", ...)} as haproxy sees it."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(text.splitlines())
        return {
            row["svname"]: row["status"]
            for row in rows
            if row.get("pxname") == PROXY and row.get("svname") not in ("FRONTEND", "BACKEND")
        }

    def wait_until(self, name: str, status: str, timeout: float = 30) -> None:
        """Until haproxy's checks say replica `name` is `status` (UP or DOWN)."""
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited: {self.log_text()[-2000:]}")
            with suppress(OSError):
                seen = self.states().get(name, "")
                if seen == status:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"haproxy never saw {name} {status} (last: {seen!r})")


@dataclass
class Cluster:
    """N replicas (LocalboxServer) sharing a database and a data dir, and their balancer."""

    root: Path
    database_url: str
    replicas: list[LocalboxServer]
    balancer: Balancer
    api_key: str = "sk-test"
    clients: list[openai.OpenAI] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The balancer's address: what clients use."""
        return self.balancer.url

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def data_dir(self) -> Path:
        return self.replicas[0].data_dir

    @property
    def instance_id(self) -> str:
        return self.replicas[0].instance_id

    @staticmethod
    def name(index: int) -> str:
        return f"r{index}"

    def client(self, **kwargs: object) -> openai.OpenAI:
        """An SDK client on the balancer; closed with the cluster."""
        client = openai.OpenAI(base_url=self.base_url, api_key=self.api_key, **kwargs)  # type: ignore[arg-type]
        self.clients.append(client)
        return client

    def http(self, base: str | None = None, timeout: float = 180) -> httpx.Client:
        """An HTTP client on base (the balancer by default) with the API key; the caller
        closes it."""
        return httpx.Client(
            base_url=base or self.base_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=timeout,
        )

    def kill(self, index: int, wait_down: bool = False) -> None:
        """kill -9 replica `index` (no clean-up of any kind); optionally wait until the
        balancer's checks have taken it out."""
        self.replicas[index].stop(signal.SIGKILL)
        if wait_down:
            self.balancer.wait_until(self.name(index), "DOWN")

    def restart(self, index: int) -> None:
        """Start replica `index` again (same port, data dir, database) and wait until the
        balancer sends it requests again."""
        replica = self.replicas[index]
        if replica.process is not None and replica.process.poll() is None:
            return
        replica.process = None
        replica.start()
        self.balancer.wait_until(self.name(index), "UP")

    def ensure_running(self) -> None:
        """Every replica serving and checked UP by the balancer (restarts any that died)."""
        for index, replica in enumerate(self.replicas):
            if replica.process is None or replica.process.poll() is not None:
                self.restart(index)
        for index in range(len(self.replicas)):
            self.balancer.wait_until(self.name(index), "UP")

    def log_sizes(self) -> list[int]:
        return [r.log_file.stat().st_size if r.log_file.exists() else 0 for r in self.replicas]

    def close(self) -> None:
        """Stop the balancer and every replica (each, whatever the others do)."""
        with ExitStack() as stop:
            for replica in self.replicas:
                stop.callback(replica.stop)
            stop.callback(self.balancer.stop)
            for client in self.clients:
                stop.callback(client.close)
        self.clients.clear()


def run_code(http: httpx.Client, container_id: str, code: str, **body: Any) -> dict[str, Any]:
    """POST /v1/containers/{id}/exec (a localbox extension) on http's server; its answer."""
    r = http.post(f"containers/{container_id}/exec", json={"code": code, **body})
    if r.status_code != 200:
        raise AssertionError(f"exec in {container_id} answered {r.status_code}: {r.text}")
    result: dict[str, Any] = r.json()
    return result


def brief(result: dict[str, Any]) -> dict[str, Any]:
    """What an assertion message needs of an exec answer."""
    keys = ("status", "stdout", "stderr", "error", "state_preserved", "duration_ms")
    return {key: result.get(key) for key in keys}


def _start(replica: LocalboxServer) -> None:
    replica.start()


@contextmanager
def running_cluster(
    root: Path,
    replicas: int = 3,
    env: dict[str, str] | None = None,
    admin_url: str | None = None,
) -> Iterator[Cluster]:
    """Start `replicas` localbox processes on one new database and one data dir under root,
    and haproxy in front of them; yield the cluster once /health answers through the
    balancer and every replica is checked UP. At the end everything is stopped, the
    instance's sandboxes, volumes and networks removed and the database dropped (each step
    taken even when one before it failed)."""
    database_url = create_postgres_database(admin_url or postgres_admin_url())
    data_dir = root / "data"
    cluster: Cluster | None = None
    try:
        servers = [
            LocalboxServer(
                data_dir=data_dir,
                env={**REPLICA_ENV, **(env or {})},
                database_url=database_url,
                log_path=root / "logs" / f"replica-{i}.log",
            )
            for i in range(replicas)
        ]
        balancer = Balancer(
            workdir=root / "balancer",
            servers=[(Cluster.name(i), s.port) for i, s in enumerate(servers)],
        )
        cluster = Cluster(root=root, database_url=database_url, replicas=servers, balancer=balancer)
        # The first one alone: it makes the instance id, migrates and claims the database;
        # the others then start together, as a deployment's replicas would.
        servers[0].start()
        if replicas > 1:
            with ThreadPoolExecutor(replicas - 1) as pool:
                list(pool.map(_start, servers[1:]))
        balancer.start()
        _wait_for_health(cluster)
        cluster.ensure_running()
        yield cluster
    finally:
        with ExitStack() as cleanup:  # run last to first, each whatever the others did
            cleanup.callback(drop_postgres_database, database_url)
            cleanup.callback(remove_instance, data_dir)
            if cluster is not None:
                cleanup.callback(cluster.close)


def remove_instance(data_dir: Path, attempts: int = 10) -> None:
    """Remove every Docker object of the data dir's instance (once its servers are stopped).
    An engine still finishing a removal a server began answers a conflict: tried again."""
    id_file = data_dir / "instance-id"
    if not id_file.exists():
        return
    for attempt in range(attempts):
        try:
            remove_sandboxes(id_file.read_text().strip())
            return
        except docker.errors.APIError:
            if attempt == attempts - 1:
                raise
            time.sleep(1)


def _wait_for_health(cluster: Cluster, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{cluster.url}/health", timeout=2)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise RuntimeError(f"/health never answered 200 through the balancer: {last}")
