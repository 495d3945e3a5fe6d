"""Sandbox egress policies: which hosts a sandbox may reach, and the secrets swapped in on the way.

Pure Python (no mitmproxy), so it is unit-tested outside Docker. The server writes one JSON
file per allowlisted sandbox into the policy directory; the proxy finds a connection's policy
by the subnet of the sandbox's own internal network, which sandbox code cannot forge.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger("localbox.egress")

DEFAULT_PORTS = frozenset({80, 443})
_SAFE = re.compile(r"[^A-Za-z0-9.:_\[\]-]")


def normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def is_ip_literal(host: str) -> bool:
    """Whether a resolver would take host for an address rather than a name to look up:
    besides the usual forms, every one inet_aton accepts (127.1, 2130706433, 0x7f.1, 0177.1)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return True
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def host_matches(host: str, domain: str) -> bool:
    """Exact host, or a subdomain of it: "example.com" matches "api.example.com"."""
    return host == domain or host.endswith("." + domain)


def printable(host: str) -> str:
    """The host as it may appear in an error message or a log line."""
    return _SAFE.sub("?", host)[:253]


@dataclass(frozen=True)
class Rule:
    domain: str
    port: int | None = None
    """A port besides 80 and 443 this domain may be reached on."""

    @classmethod
    def parse(cls, entry: str) -> Rule:
        domain, sep, port = normalise_host(entry).partition(":")
        return cls(domain, int(port) if sep else None)


@dataclass(frozen=True)
class Secret:
    domain: str
    placeholder: str
    value: str


@dataclass(frozen=True)
class Policy:
    container_id: str
    rules: tuple[Rule, ...]
    secrets: tuple[Secret, ...] = field(default=())

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Policy:
        domains = data.get("allowed_domains")
        secrets = data.get("secrets") or []
        if not isinstance(domains, list) or not isinstance(secrets, list):
            raise ValueError("allowed_domains and secrets must be lists")
        return cls(
            container_id=str(data["container_id"]),
            rules=tuple(Rule.parse(str(d)) for d in domains),
            secrets=tuple(
                Secret(normalise_host(str(s["domain"])), str(s["placeholder"]), str(s["value"]))
                for s in secrets
            ),
        )

    def refusal(self, host: str, port: int) -> str | None:
        """Why a request to host:port is refused, or None when it may go."""
        host = normalise_host(host)
        if not host:
            return "a request without a host"
        if is_ip_literal(host):
            return f"{printable(host)} is an IP address; only allowlisted domains are reachable"
        matching = [r for r in self.rules if host_matches(host, r.domain)]
        if not matching:
            return f"{printable(host)} is not on this container's allowlist"
        if port not in DEFAULT_PORTS and all(r.port != port for r in matching):
            return f"port {port} of {printable(host)} is not on this container's allowlist"
        return None

    def secrets_for(self, host: str) -> list[Secret]:
        host = normalise_host(host)
        return [s for s in self.secrets if host_matches(host, s.domain)]


def substitute_header(value: str, secrets: list[Secret]) -> str:
    for s in secrets:
        if s.placeholder in value:
            value = value.replace(s.placeholder, s.value)
    return value


def substitute_path(path: str, secrets: list[Secret]) -> str:
    """Swap placeholders in the query string only, the value percent-encoded."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    for s in secrets:
        if s.placeholder in query:
            query = query.replace(s.placeholder, quote(s.value, safe=""))
    return base + sep + query


class PolicyStore:
    """The policies in one directory, read again whenever the directory changes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._stamp: int | None = None
        self._policies: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Policy]] = []

    def lookup(self, client_ip: str) -> Policy | None:
        address = ipaddress.ip_address(client_ip.split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        self._refresh()
        for subnet, policy in self._policies:
            if address in subnet:
                return policy
        return None

    def _refresh(self) -> None:
        try:
            stamp = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:
            self._stamp, self._policies = None, []
            return
        if stamp == self._stamp:
            return
        policies = []
        complete = True
        for path in sorted(self.directory.glob("*.json")):
            try:
                data = json.loads(path.read_text())
                subnet = ipaddress.ip_network(str(data["subnet"]))
                policies.append((subnet, Policy.from_json(data)))
            except (OSError, ValueError, KeyError, TypeError):
                # Most likely a file still being written: read the directory again next time.
                complete = False
                log.warning("could not read policy %s; will retry", path.name)
        self._policies = policies
        self._stamp = stamp if complete else None
