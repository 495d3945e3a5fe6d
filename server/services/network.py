"""Network policies: what an allowlisted container may reach, checked before any sandbox exists.

The rules, in one place: domains are host names (optionally with ":port" for a port besides
80 and 443), never IP addresses; a secret belongs to an allowlisted domain and is named like
an environment variable that localbox does not set itself; its value reaches the egress proxy
only, and the sandbox sees a placeholder in its place.
"""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address

from server.errors import InvalidRequest
from server.runtime import EgressPolicy, EgressSecret

MAX_DOMAINS = 256
MAX_SECRETS = 64
MAX_SECRET_BYTES = 10 << 20
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Set by localbox in allowlisted sandboxes (or stripped by the agent): a secret may not take them.
RESERVED_NAMES = frozenset(
    {
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "PIP_PROXY",
        "PIP_CERT",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "PYTHONPATH",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
    }
)


@dataclass(frozen=True)
class SecretRequest:
    domain: str
    name: str
    value: str = field(repr=False)


def is_ip_literal(host: str) -> bool:
    """Whether a resolver would take host for an address rather than a name to look up:
    besides the usual forms, every one inet_aton accepts (127.1, 2130706433, 0x7f.1, 0177.1)."""
    try:
        ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return True
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _host_matches(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def _domain(entry: str, param: str) -> str:
    value = entry.strip().lower().rstrip(".")
    if value.startswith("[") or is_ip_literal(value):  # IPv6, bracketed or not
        raise InvalidRequest(
            f"'{entry}' is an IP address; allowed_domains takes domain names.", param
        )
    host, sep, port = value.partition(":")
    if sep and (not port.isdigit() or not 1 <= int(port) <= 65535):
        raise InvalidRequest(f"'{entry}' has no valid port.", param)
    if is_ip_literal(host):
        raise InvalidRequest(
            f"'{entry}' is an IP address; allowed_domains takes domain names.", param
        )
    if len(host) > 253 or not _HOST.match(host) or "." not in host:
        raise InvalidRequest(f"'{entry}' is not a domain name.", param)
    return f"{host}:{int(port)}" if sep else host


def egress_policy(
    allowed_domains: Sequence[str], domain_secrets: Sequence[SecretRequest]
) -> EgressPolicy:
    """Validate an allowlist policy and give each secret its placeholder."""
    if not allowed_domains:
        raise InvalidRequest(
            "network_policy.allowed_domains must list at least one domain.",
            "network_policy.allowed_domains",
        )
    if len(allowed_domains) > MAX_DOMAINS:
        raise InvalidRequest(
            f"network_policy.allowed_domains lists more than {MAX_DOMAINS} domains.",
            "network_policy.allowed_domains",
        )
    if len(domain_secrets) > MAX_SECRETS:
        raise InvalidRequest(
            f"network_policy.domain_secrets lists more than {MAX_SECRETS} secrets.",
            "network_policy.domain_secrets",
        )
    domains = tuple(
        dict.fromkeys(
            _domain(d, f"network_policy.allowed_domains[{i}]")
            for i, d in enumerate(allowed_domains)
        )
    )
    hosts = [d.partition(":")[0] for d in domains]
    made: list[EgressSecret] = []
    for i, s in enumerate(domain_secrets):
        param = f"network_policy.domain_secrets[{i}]"
        domain = _domain(s.domain, f"{param}.domain").partition(":")[0]
        if not any(_host_matches(domain, host) for host in hosts):
            raise InvalidRequest(
                f"The secret {s.name!r} is for '{s.domain}', which allowed_domains does not allow.",
                f"{param}.domain",
            )
        if not _ENV_NAME.match(s.name) or s.name.upper() in RESERVED_NAMES:
            raise InvalidRequest(
                f"{s.name!r} cannot be a secret's name: use an environment variable name "
                "that localbox does not set itself.",
                f"{param}.name",
            )
        if s.name.upper().startswith("LOCALBOX_") or any(m.name == s.name for m in made):
            raise InvalidRequest(f"{s.name!r} cannot be a secret's name here.", f"{param}.name")
        if not s.value or len(s.value.encode()) > MAX_SECRET_BYTES:
            raise InvalidRequest(
                "A secret's value must be between 1 byte and 10 MiB.", f"{param}.value"
            )
        if any(c in s.value for c in "\r\n\0"):
            raise InvalidRequest(
                "A secret's value cannot hold line breaks or NUL (it goes into HTTP headers).",
                f"{param}.value",
            )
        placeholder = f"localbox-secret-{s.name.lower()}-{secrets.token_hex(16)}"
        made.append(EgressSecret(domain, s.name, placeholder, s.value))
    return EgressPolicy(allowed_domains=domains, secrets=tuple(made))
