"""Sandbox egress policies: which hosts a sandbox may reach, which addresses a name may lead
to, the secrets swapped in on the way out and taken out again on the way back.

Pure Python (no mitmproxy), so it is unit-tested outside Docker. The server writes one JSON
file per allowlisted sandbox into the policy directory; each sandbox has a proxy process of
its own, listening on the sandbox's own internal network only, which reads that one file and
checks that a connection comes from the sandbox's subnet (which sandbox code cannot forge).
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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")
CGNAT = ipaddress.ip_network("100.64.0.0/10")
LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")


def _networks(values: object) -> tuple[Network, ...]:
    if not isinstance(values, list):
        return ()
    return tuple(ipaddress.ip_network(str(v), strict=False) for v in values)


def address_refusal(
    address: Address,
    blocked: tuple[Network, ...] = (),
    allowed: tuple[Network, ...] = (),
    denied: tuple[Network, ...] = (),
) -> str | None:
    """Why the proxy may not connect to this address, or None. Loopback, link-local (cloud
    metadata), private, shared (CGNAT), multicast, reserved and unspecified addresses, IPv6
    ULA and link-local, and the networks in blocked (the host's own addresses, Docker's
    networks) are refused unless allowed lists them; those in denied (the sandboxes' own
    networks) always are."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in NAT64:  # an IPv4 address reached through a NAT64 gateway
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in n for n in denied):
        return "an address of localbox's sandbox networks"
    if any(address in n for n in allowed):
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local or address in LINK_LOCAL:
        return "a link-local address (where clouds serve instance metadata)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "the unspecified address"
    if address in CGNAT:
        return "a shared (CGNAT) address"
    if any(address in n for n in blocked):
        return "an address of the host or of one of its Docker networks"
    if address.is_private or address.is_reserved or not address.is_global:
        return "a private or reserved address"
    return None


@dataclass(frozen=True)
class Policy:
    container_id: str
    rules: tuple[Rule, ...]
    secrets: tuple[Secret, ...] = field(default=())
    subnet: Network | None = None
    """The sandbox's own network: connections come from there or are refused."""
    blocked: tuple[Network, ...] = ()
    """The host's own addresses and Docker's networks, refused besides the special ranges."""
    allowed: tuple[Network, ...] = ()
    """Ranges the operator opened (LOCALBOX_EGRESS_ALLOW_PRIVATE)."""
    denied: tuple[Network, ...] = ()
    """Never reachable, whatever is allowed: the sandboxes' own networks."""
    max_connections: int = 64
    """Connections the sandbox may hold open at once (LOCALBOX_EGRESS_MAX_CONNECTIONS)."""
    connection_rate: float = 20.0
    """New connections a second a sandbox whose proxy process saturated a core may open from
    then on (LOCALBOX_EGRESS_CONNECTION_RATE); the ones past that wait their turn."""

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Policy:
        domains = data.get("allowed_domains")
        secrets = data.get("secrets") or []
        if not isinstance(domains, list) or not isinstance(secrets, list):
            raise ValueError("allowed_domains and secrets must be lists")
        subnet = data.get("subnet")
        return cls(
            container_id=str(data["container_id"]),
            rules=tuple(Rule.parse(str(d)) for d in domains),
            secrets=tuple(
                Secret(normalise_host(str(s["domain"])), str(s["placeholder"]), str(s["value"]))
                for s in secrets
            ),
            subnet=ipaddress.ip_network(str(subnet)) if subnet else None,
            blocked=_networks(data.get("blocked_networks")),
            allowed=_networks(data.get("allowed_networks")),
            denied=_networks(data.get("denied_networks")),
            max_connections=int(str(data.get("max_connections", 64))),
            connection_rate=float(str(data.get("connection_rate", 20.0))),
        )

    def admits(self, client_ip: str) -> bool:
        """Whether a connection from client_ip comes from this policy's sandbox."""
        if self.subnet is None:
            return False
        address = ipaddress.ip_address(client_ip.split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return address in self.subnet

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

    def pick_address(self, host: str, addresses: list[str]) -> tuple[str | None, str | None]:
        """Of the addresses host resolved to, the first the proxy may connect to, or None
        and why not."""
        if not addresses:
            return None, f"{printable(host)} does not resolve"
        first_reason = None
        for text in addresses:
            address = ipaddress.ip_address(text.split("%")[0])
            reason = address_refusal(address, self.blocked, self.allowed, self.denied)
            if reason is None:
                return text, None
            if first_reason is None:
                first_reason = (
                    f"{printable(host)} resolves to {address}, {reason}; the proxy reaches "
                    "public addresses only (LOCALBOX_EGRESS_ALLOW_PRIVATE opens ranges)"
                )
        return None, first_reason

    def secrets_for(self, host: str) -> list[Secret]:
        host = normalise_host(host)
        return [s for s in self.secrets if host_matches(host, s.domain)]

    def redactions(self) -> list[tuple[bytes, bytes]]:
        """(real value, placeholder) for every secret, as sent and percent-encoded: what
        must not come back to the sandbox in a response."""
        pairs: dict[bytes, bytes] = {}
        for s in self.secrets:
            for value in (s.value, quote(s.value, safe="")):
                pairs.setdefault(value.encode(), s.placeholder.encode())
        return sorted(pairs.items(), key=lambda p: -len(p[0]))


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


def redact(data: bytes, pairs: list[tuple[bytes, bytes]]) -> bytes:
    for value, placeholder in pairs:
        data = data.replace(value, placeholder)
    return data


class Redactor:
    """Takes real secret values out of a body streamed in chunks: a value cut across two
    chunks is still found, since the tail that could start one is held back until the next
    chunk (or the end, marked by an empty chunk)."""

    def __init__(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self.pairs = pairs
        self.hold = max((len(v) for v, _ in pairs), default=1) - 1
        self.pending = b""

    def __call__(self, chunk: bytes) -> list[bytes]:
        """The bytes that may go on now (none rather than an empty chunk, which HTTP/1.1
        chunked encoding would take for the end)."""
        data = redact(self.pending + chunk, self.pairs)
        if not chunk or self.hold == 0:  # the end, or nothing to hold back
            self.pending = b""
            return [data] if data else []
        cut = max(len(data) - self.hold, 0)
        self.pending = data[cut:]
        return [data[:cut]] if cut else []


class PolicyFile:
    """One sandbox's policy, read again whenever its file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._policy: Policy | None = None

    def current(self) -> Policy | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._policy = None, None
            return None
        stamp = (st.st_ino, st.st_mtime_ns)
        if stamp != self._stamp:
            try:
                self._policy = Policy.from_json(json.loads(self.path.read_text()))
                self._stamp = stamp
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("could not read policy %s; will retry", self.path.name)
                self._policy = None
        return self._policy
