"""The mitmproxy addon of one sandbox's proxy process: refuse what its policy does not allow,
connect only to the address it checked, swap secrets in on the way out and take them out on
the way back, and bound what the sandbox may hold open."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

from mitmproxy import connection, http
from mitmproxy.proxy import server_hooks

from localbox_egress.pacing import Pacer
from localbox_egress.policy import (
    Policy,
    PolicyFile,
    Redactor,
    is_ip_literal,
    normalise_host,
    printable,
    redact,
    substitute_header,
    substitute_path,
)

log = logging.getLogger("localbox.egress")
TEXT_TYPES = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "csv")
PLAIN = ("", "identity")
DNS_SECONDS = 10.0
REFUSAL_PAUSE = 1.0
"""Seconds a connection past the limit waits for its refusal."""


def _answer(flow: http.HTTPFlow, status: int, reason: str, phrase: str) -> None:
    flow.response = http.Response.make(
        status,
        f"localbox egress proxy: {phrase.lower()}: {reason}.\n",
        {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"},
    )
    # Clients show the reason phrase of a refused CONNECT (requests: "Tunnel connection
    # failed: 403 ..."), so it says why too.
    flow.response.reason = f"{phrase} by localbox egress policy: {reason}"[:200]
    log.info("%s: %s", phrase.lower(), reason)


def _refuse(flow: http.HTTPFlow, reason: str) -> None:
    _answer(flow, 403, reason, "Blocked")


def _textual(response: http.Response) -> bool:
    kind = response.headers.get("content-type", "").lower()
    return not kind or any(t in kind for t in TEXT_TYPES)


class Egress:
    def __init__(self, policy: PolicyFile) -> None:
        self.policy_file = policy
        self.open = 0
        self.pacer: Pacer | None = None
        """Set once this process saturated a core: new connections are paced from then on."""
        self.resolved: dict[tuple[str, int], tuple[float, list[str]]] = {}
        """Client connections open now: all from the one sandbox this process serves."""
        self.names: dict[tuple[str, str, int], str] = {}
        """(client connection id, address, port) -> the host name checked for it, so the
        TLS connection to that address is made (and verified) for the name."""

    # -- connections -------------------------------------------------------------------

    def pace(self) -> None:
        """From now on, the sandbox's new connections wait their turn past its rate."""
        if self.pacer is None:
            self.pacer = Pacer()

    async def client_connected(self, client: connection.Client) -> None:
        self.open += 1
        policy = self.policy_file.current()
        if policy is not None and self.open > 2 * policy.max_connections:
            # Far past the limit: closed unanswered, after a pause, so that a sandbox that
            # retries at once waits rather than spins (on its CPU and the proxy's).
            await asyncio.sleep(REFUSAL_PAUSE)
            client.error = "too many connections"
        elif policy is not None and self.pacer is not None:
            # A second's worth at once, then the rate: what a flood of new connections (a
            # TLS handshake or two each) can make this process do is bounded.
            delay = self.pacer.wait(policy.connection_rate, max(1, int(policy.connection_rate)))
            if delay > 0:
                await asyncio.sleep(delay)

    def client_disconnected(self, client: connection.Client) -> None:
        self.open -= 1
        for key in [k for k in self.names if k[0] == client.id]:
            del self.names[key]

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Verify (and name in SNI) a TLS server by the host name, not the pinned address."""
        server = data.server
        if server.address is None:
            return
        name = self.names.get((data.client.id, str(server.address[0]), server.address[1]))
        if name is not None and (server.sni is None or is_ip_literal(server.sni)):
            server.sni = name

    # -- requests ----------------------------------------------------------------------

    def _check(self, flow: http.HTTPFlow) -> Policy | None:
        policy = self.policy_file.current()
        client = flow.client_conn.peername[0]
        if policy is None or not policy.admits(client):
            _refuse(flow, f"no policy for client {printable(client)}")
            return None
        if self.open > policy.max_connections:
            reason = (
                f"this container holds {self.open} connections, more than its limit of "
                f"{policy.max_connections} (LOCALBOX_EGRESS_MAX_CONNECTIONS); close some"
            )
            _answer(flow, 429, reason, "Limited")
            assert flow.response is not None
            flow.response.headers["retry-after"] = str(int(REFUSAL_PAUSE))
            return None
        reason = policy.refusal(flow.request.host, flow.request.port)
        if reason is not None:
            _refuse(flow, reason)
            return None
        return policy

    async def _address(self, flow: http.HTTPFlow, policy: Policy) -> str | None:
        """The address to connect to for the request's host, checked; None when refused."""
        host, port = normalise_host(flow.request.host), flow.request.port
        address, reason = policy.pick_address(host, await self._resolve(host, port))
        if address is None:
            _refuse(flow, reason or f"{printable(host)} cannot be reached")
        return address

    async def _checked(self, flow: http.HTTPFlow) -> Policy | None:
        policy = self._check(flow)
        if policy is None and flow.response is not None and flow.response.status_code == 429:
            await asyncio.sleep(REFUSAL_PAUSE)  # the answer waits: retrying at once spins
        return policy

    async def _resolve(self, host: str, port: int) -> list[str]:
        """The addresses host resolves to, kept for DNS_SECONDS: a sandbox making many
        requests does not load the resolver (which every sandbox's proxy shares)."""
        now = time.monotonic()
        cached = self.resolved.get((host, port))
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError:
            return []
        addresses = list(dict.fromkeys(str(i[4][0]) for i in infos))
        if len(self.resolved) > 1024:
            self.resolved.clear()
        self.resolved[(host, port)] = (now + DNS_SECONDS, addresses)
        return addresses

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        policy = await self._checked(flow)
        if policy is not None:
            await self._address(flow, policy)  # refused here already, with a clear answer

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        policy = await self._checked(flow)
        if policy is None:
            return
        host = normalise_host(flow.request.host)
        secrets = policy.secrets_for(host)
        if secrets:
            headers = flow.request.headers
            for name in list(headers.keys()):
                values = headers.get_all(name)
                swapped = [substitute_header(v, secrets) for v in values]
                if swapped != values:
                    headers.set_all(name, swapped)
            flow.request.path = substitute_path(flow.request.path, secrets)
        # Resolved once, checked, and connected to as that address: a name that resolves
        # elsewhere the next time (DNS rebinding) changes nothing.
        address = await self._address(flow, policy)
        if address is None:
            return
        header = flow.request.host_header
        flow.request.host = address
        flow.request.host_header = header
        self.names[(flow.client_conn.id, address, flow.request.port)] = host

    # -- responses ---------------------------------------------------------------------

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """Real secret values never come back to the sandbox: taken out of response headers,
        and out of text bodies as they stream (compressed ones in `response`)."""
        policy = self.policy_file.current()
        if flow.response is None or policy is None or not policy.secrets:
            return
        pairs = policy.redactions()
        headers = flow.response.headers
        for name in list(headers.keys()):
            values = headers.get_all(name)
            cleaned = [redact(v.encode(), pairs).decode(errors="replace") for v in values]
            if cleaned != values:
                headers.set_all(name, cleaned)
        encoding = headers.get("content-encoding", "").lower().strip()
        if _textual(flow.response) and encoding in PLAIN:
            flow.response.stream = Redactor(pairs)
            # A placeholder is not as long as the value it stands for: the length goes, and
            # an HTTP/1.1 answer is sent in chunks instead.
            headers.pop("content-length", None)
            if flow.response.http_version == "HTTP/1.1":
                headers["transfer-encoding"] = "chunked"

    def response(self, flow: http.HTTPFlow) -> None:
        policy = self.policy_file.current()
        if flow.response is None or policy is None or not policy.secrets:
            return
        if flow.response.stream or not _textual(flow.response):
            return
        content = flow.response.get_content(strict=False)
        if content:
            cleaned = redact(content, policy.redactions())
            if cleaned != content:
                flow.response.set_content(cleaned)
