"""Fixtures: real localbox servers on free ports, the openai SDK pointed at them, Docker."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import docker
import httpx
import openai
import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent

POSTGRES_ENV = "LOCALBOX_TEST_POSTGRES_URL"
"""An admin URL of a PostgreSQL server. When set, every test server gets a database of its own
there (`make pytest-postgres`); otherwise servers keep SQLite in their data dir."""

SUITE_ENV = {
    # The suite keeps many idle sandboxes at once, more than the default container cap.
    # Capacity has its own tests, with small limits.
    "LOCALBOX_MAX_CONTAINERS": "1000",
    # Servers start with no warm pool unless a test asks for one (the shared server below
    # keeps a small one, so most tests create from spares); tests/api/test_warm_pool.py
    # covers the pool itself.
    "LOCALBOX_WARM_POOL": "0",
    "LOCALBOX_WARM_IMPORTS": "",
}


REPLICAS_DIR = ROOT / "tests" / "replicas"
"""Several servers on one database and data dir behind a load balancer (`make pytest-replicas`):
collected only when named on the command line, so that a plain `pytest` does not run them."""


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path != REPLICAS_DIR:
        return None
    for arg in config.args:
        named = Path(config.invocation_params.dir, arg.split("::", 1)[0]).resolve()
        if named == REPLICAS_DIR or REPLICAS_DIR in named.parents:
            return None
    return True


SANDBOX_RUNTIME = os.environ.get("LOCALBOX_SANDBOX_RUNTIME", "runc")
"""The runtime the suite's servers run sandboxes under (make test runs the sandbox-facing
suites once with runc and once with gVisor's runsc)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def postgres_admin_url() -> str:
    """POSTGRES_ENV's URL, or else the tests' own cluster's (started when it is not running)."""
    url = os.environ.get(POSTGRES_ENV, "")
    if url:
        return url
    script = ROOT / "scripts" / "ensure-postgres.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"could not start the tests' PostgreSQL: {done.stderr}")
    return done.stdout.strip()


def create_postgres_database(admin_url: str) -> str:
    """A new, empty database on admin_url's server; its URL."""
    name = f"lb_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def drop_postgres_database(url: str) -> None:
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


@contextmanager
def database_for(data_dir: Path) -> Iterator[str]:
    """The database URL a server on data_dir uses in this run: a fresh PostgreSQL database
    (dropped at the end) when POSTGRES_ENV is set, else SQLite in the data dir."""
    admin = os.environ.get(POSTGRES_ENV, "")
    if not admin:
        yield f"sqlite:///{data_dir.resolve() / 'localbox.db'}"
        return
    url = create_postgres_database(admin)
    try:
        yield url
    finally:
        drop_postgres_database(url)


@dataclass
class LocalboxServer:
    """A localbox process serving on 127.0.0.1:port with its own data dir."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    api_key: str = "sk-test"
    nofile: int | None = None
    """An open-file limit (soft and hard) for the server process, when a test needs one."""
    cgroup: Path | None = None
    """A cgroup directory (its memory controller's) the server process starts in."""
    database_url: str = ""
    """The server's database; by default SQLite in its data dir, or with POSTGRES_ENV set a
    PostgreSQL database of its own, made at its first start and dropped by close()."""
    owns_database: bool = False
    log_path: Path | None = None
    """Where the server's output goes; data_dir/server.log unless set (servers sharing one
    data dir, as replicas do, each keep a log of their own)."""
    process: subprocess.Popen[bytes] | None = None
    clients: list[openai.OpenAI] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def log_file(self) -> Path:
        return self.log_path or self.data_dir / "server.log"

    @property
    def instance_id(self) -> str:
        """The id the server keeps in its data dir (made on its first start)."""
        return (self.data_dir / "instance-id").read_text().strip()

    def start(self) -> None:
        if not self.database_url:
            admin = os.environ.get(POSTGRES_ENV, "")
            if admin:
                self.database_url = create_postgres_database(admin)
                self.owns_database = True
            else:
                data_dir = Path(self.env.get("LOCALBOX_DATA_DIR", self.data_dir))
                self.database_url = f"sqlite:///{data_dir.resolve() / 'localbox.db'}"
        env = {
            **os.environ,
            **SUITE_ENV,
            "LOCALBOX_HOST": "127.0.0.1",
            "LOCALBOX_PORT": str(self.port),
            "LOCALBOX_DATA_DIR": str(self.data_dir),
            "LOCALBOX_LOG_LEVEL": "warning",
            "LOCALBOX_DATABASE_URL": self.database_url,
            **self.env,
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "server"]
        if self.nofile is not None:
            argv = ["prlimit", f"--nofile={self.nofile}:{self.nofile}", *argv]
        if self.cgroup is not None:
            enter = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
            argv = ["sh", "-c", enter, str(self.cgroup), *argv]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"localbox exited early: {self.log_text()}")
            try:
                httpx.get(f"{self.url}/health", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"localbox did not start: {self.log_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        """Stop, and drop the database made for this server."""
        self.stop()
        if self.owns_database:
            drop_postgres_database(self.database_url)
            self.owns_database = False
            self.database_url = ""

    def log_text(self) -> str:
        path = self.log_file
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self, **kwargs: object) -> openai.OpenAI:
        """An SDK client for this server; closed when the server stops."""
        client = openai.OpenAI(base_url=self.base_url, api_key=self.api_key, **kwargs)  # type: ignore[arg-type]
        self.clients.append(client)
        return client

    def async_client(self, **kwargs: object) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, **kwargs)  # type: ignore[arg-type]


def remove_sandboxes(instance_id: str) -> None:
    """Remove every Docker object (container, volume, network) labelled with this instance id,
    one of the suite's own servers (the fixtures' clean-up): nobody else's are touched."""
    client = docker.from_env()
    label = f"localbox.instance={instance_id}"
    try:
        for c in client.containers.list(all=True, filters={"label": label}):
            c.remove(force=True)
        for v in client.volumes.list(filters={"label": label}):
            v.remove(force=True)
        for n in client.networks.list(filters={"label": label}):
            n.remove()
    finally:
        client.close()


@pytest.fixture(scope="session")
def postgres() -> str:
    """An admin URL of a real PostgreSQL server: POSTGRES_ENV's, or the tests' own cluster."""
    return postgres_admin_url()


@pytest.fixture
def postgres_database(postgres: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    url = create_postgres_database(postgres)
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


@contextmanager
def serving(
    data_dir: Path,
    env: dict[str, str] | None = None,
    nofile: int | None = None,
    cgroup: Path | None = None,
    database_url: str = "",
) -> Iterator[LocalboxServer]:
    """A server of the caller's own; stopped, and its sandboxes (and database) removed, at the
    end."""
    server = LocalboxServer(
        data_dir=data_dir, env=env or {}, nofile=nofile, cgroup=cgroup, database_url=database_url
    )
    try:
        server.start()
        yield server
    finally:
        server.close()
        if (server.data_dir / "instance-id").exists():
            remove_sandboxes(server.instance_id)


def _serve(tmp_dir: Path, env: dict[str, str] | None = None) -> Iterator[LocalboxServer]:
    with serving(tmp_dir, env) as server:
        yield server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalboxServer]:
    """A shared server with no API keys configured, and a warm pool of two spares."""
    yield from _serve(tmp_path_factory.mktemp("localbox"), {"LOCALBOX_WARM_POOL": "2"})


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalboxServer]:
    """A shared server that demands one of two API keys."""
    yield from _serve(
        tmp_path_factory.mktemp("localbox-keyed"), {"LOCALBOX_API_KEYS": "sk-test, sk-other"}
    )


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[LocalboxServer]:
    """A server of the test's own, with an empty database."""
    yield from _serve(tmp_path / "data")


@pytest.fixture
def client(server: LocalboxServer) -> Iterator[openai.OpenAI]:
    with server.client(max_retries=0) as c:
        yield c
