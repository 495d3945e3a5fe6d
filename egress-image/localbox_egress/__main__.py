"""Start the egress proxy: make the CA once, publish its bundle for sandboxes, and supervise one
proxy process per allowlisted sandbox (see worker.py).

The supervisor watches the policy directory: each policy gets a process, forked from this one
(which imported mitmproxy once), listening on the proxy's address on that sandbox's network;
a policy removed stops its process, a process that dies is started again. `install` returns
once the sandbox's proxy listens, so a container is handed out with its proxy ready.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

STATE = Path("/var/lib/localbox-egress")
CONFDIR = STATE / "mitmproxy"
POLICIES = STATE / "policies"
INCOMING = STATE / "incoming"
PUBLIC = Path("/var/lib/localbox-egress-ca")
"""Mounted read-only at /etc/ssl/certs in allowlisted sandboxes: certificates only."""
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
UPSTREAM_BUNDLE = Path("/tmp/upstream-ca.pem")
READY = Path("/tmp/localbox-egress-ready")
"""Made by the supervisor once it runs (on a tmpfs: gone when the proxy restarts)."""
PORT = 3128
POLL = 0.05
RESTART_PAUSE = 1.0
INSTALL_TIMEOUT = 20.0
_KEY = re.compile(r"^[0-9.]+_[0-9]+$")


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


def prepare() -> None:
    from mitmproxy.certs import CertStore

    os.umask(0o077)
    CONFDIR.mkdir(parents=True, exist_ok=True)
    POLICIES.mkdir(parents=True, exist_ok=True)
    INCOMING.mkdir(parents=True, exist_ok=True)
    # Made on the first start only: the state volume keeps it across restarts.
    CertStore.from_store(CONFDIR, "mitmproxy", 2048)
    ca = (CONFDIR / "mitmproxy-ca-cert.pem").read_bytes()
    system = SYSTEM_BUNDLE.read_bytes()
    PUBLIC.mkdir(parents=True, exist_ok=True)
    PUBLIC.chmod(0o755)
    _write(PUBLIC / "localbox-egress-ca.pem", ca, 0o644)
    _write(PUBLIC / "ca-certificates.crt", system.rstrip(b"\n") + b"\n" + ca, 0o644)
    extra = os.environ.get("LOCALBOX_EGRESS_EXTRA_CA_PEM", "").encode()
    _write(UPSTREAM_BUNDLE, system.rstrip(b"\n") + b"\n" + extra, 0o600)


def ready() -> int:
    """0 when the supervisor runs and the sandboxes' bundle is published."""
    return 0 if READY.exists() and (PUBLIC / "ca-certificates.crt").exists() else 1


def listen_address(key: str) -> str:
    """The proxy's own address on the network of the policy named key ("10.213.0.0_29"):
    the second host of the subnet (the first is the gateway, the third the sandbox)."""
    subnet = ipaddress.ip_network(key.replace("_", "/"))
    return str(list(subnet.hosts())[1])


def _listening(address: str, timeout: float = 0.2) -> bool:
    try:
        socket.create_connection((address, PORT), timeout=timeout).close()
    except OSError:
        return False
    return True


def _key(arg: str) -> str:
    if not _KEY.match(arg):
        raise SystemExit(f"not a policy key: {arg!r}")
    return arg


def install(key: str) -> None:
    """Move a policy the server staged into place in one step (replacing any for its subnet),
    then wait until the sandbox's proxy process listens."""
    staged = INCOMING / f"{key}.json"
    json.loads(staged.read_text())
    staged.replace(POLICIES / f"{key}.json")
    address = listen_address(key)
    deadline = time.monotonic() + INSTALL_TIMEOUT
    while not _listening(address):
        if time.monotonic() > deadline:
            raise SystemExit(f"the proxy for {key} did not start listening on {address}")
        time.sleep(POLL)


def remove(key: str) -> None:
    (POLICIES / f"{key}.json").unlink(missing_ok=True)


class Supervisor:
    """One proxy process per policy file, kept running while the file exists."""

    def __init__(self) -> None:
        from localbox_egress import worker  # mitmproxy, imported once for every fork

        self.worker = worker
        self.children: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.stopping = False

    def spawn(self, key: str) -> None:
        if time.monotonic() - self.started.get(key, float("-inf")) < RESTART_PAUSE:
            return  # it died at once: give it a moment
        self.started[key] = time.monotonic()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                self.worker.serve(
                    listen_address(key), PORT, POLICIES / f"{key}.json", CONFDIR, UPSTREAM_BUNDLE
                )
            except BaseException as exc:
                print(f"localbox-egress: proxy for {key} failed: {exc!r}", file=sys.stderr)
                code = 1
            finally:
                os._exit(code)
        self.children[key] = pid

    def reap(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for key, child in list(self.children.items()):
                if child == pid:
                    del self.children[key]

    def step(self) -> None:
        self.reap()
        wanted = {p.stem for p in POLICIES.glob("*.json") if _KEY.match(p.stem)}
        for key in wanted - self.children.keys():
            self.spawn(key)
        for key in self.children.keys() - wanted:
            self.stop(key)

    def stop(self, key: str) -> None:
        pid = self.children.pop(key, None)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def run(self) -> None:
        def _stop(*_: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        READY.touch()
        while not self.stopping:
            self.step()
            time.sleep(POLL)
        for key in list(self.children):
            self.stop(key)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    time.sleep(POLL)
            except ChildProcessError:
                break


def main() -> None:
    args = sys.argv[1:]
    if args == ["ready"]:
        sys.exit(ready())
    if len(args) == 2 and args[0] == "install":
        install(_key(args[1]))
        return
    if len(args) == 2 and args[0] == "remove":
        remove(_key(args[1]))
        return
    prepare()
    Supervisor().run()


if __name__ == "__main__":
    main()
