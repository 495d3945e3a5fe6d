"""Start the egress proxy: make the CA once, publish its bundle for sandboxes, run mitmdump."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from pathlib import Path

STATE = Path("/var/lib/localbox-egress")
CONFDIR = STATE / "mitmproxy"
POLICIES = STATE / "policies"
INCOMING = STATE / "incoming"
PUBLIC = Path("/var/lib/localbox-egress-ca")
"""Mounted read-only at /etc/ssl/certs in allowlisted sandboxes: certificates only."""
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
UPSTREAM_BUNDLE = Path("/tmp/upstream-ca.pem")
PORT = 3128
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
    """0 when the proxy listens and the sandboxes' bundle is published."""
    if not (PUBLIC / "ca-certificates.crt").exists():
        return 1
    try:
        socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
    except OSError:
        return 1
    return 0


def _key(arg: str) -> str:
    if not _KEY.match(arg):
        raise SystemExit(f"not a policy key: {arg!r}")
    return arg


def install(key: str) -> None:
    """Move a policy the server staged into place in one step (replacing any for its subnet)."""
    staged = INCOMING / f"{key}.json"
    json.loads(staged.read_text())
    staged.replace(POLICIES / f"{key}.json")


def remove(key: str) -> None:
    (POLICIES / f"{key}.json").unlink(missing_ok=True)


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
    addon = Path(__file__).with_name("addon.py")
    argv = [
        "mitmdump",
        "--mode", "regular",
        "--listen-host", "0.0.0.0",
        "--listen-port", str(PORT),
        "--set", f"confdir={CONFDIR}",
        "--set", f"ssl_verify_upstream_trusted_ca={UPSTREAM_BUNDLE}",
        "--set", "connection_strategy=lazy",
        "--set", "stream_large_bodies=256k",
        "--set", "flow_detail=0",
        "--set", "termlog_verbosity=warn",
        "--set", "block_global=false",
        "-s", str(addon),
    ]  # fmt: skip
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
