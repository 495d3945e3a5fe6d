"""The mitmproxy addon: refuse what a sandbox's policy does not allow, swap secrets in."""

from __future__ import annotations

import logging
from pathlib import Path

from mitmproxy import http

from localbox_egress.policy import (
    Policy,
    PolicyStore,
    printable,
    substitute_header,
    substitute_path,
)

log = logging.getLogger("localbox.egress")
POLICY_DIR = Path("/var/lib/localbox-egress/policies")


def _refuse(flow: http.HTTPFlow, reason: str) -> None:
    flow.response = http.Response.make(
        403,
        f"localbox egress proxy: blocked: {reason}.\n",
        {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"},
    )
    # Clients show the reason phrase of a refused CONNECT (requests: "Tunnel connection
    # failed: 403 ..."), so it names the host too.
    flow.response.reason = f"Blocked by localbox egress policy: {reason}"[:200]
    log.info("blocked: %s", reason)


class Egress:
    def __init__(self, store: PolicyStore) -> None:
        self.store = store

    def _policy(self, flow: http.HTTPFlow) -> Policy | None:
        try:
            return self.store.lookup(flow.client_conn.peername[0])
        except ValueError:
            return None

    def _check(self, flow: http.HTTPFlow) -> Policy | None:
        policy = self._policy(flow)
        if policy is None:
            _refuse(flow, f"no policy for client {printable(flow.client_conn.peername[0])}")
            return None
        reason = policy.refusal(flow.request.host, flow.request.port)
        if reason is not None:
            _refuse(flow, reason)
            return None
        return policy

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._check(flow)

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        policy = self._check(flow)
        if policy is None:
            return
        secrets = policy.secrets_for(flow.request.host)
        if not secrets:
            return
        headers = flow.request.headers
        for name in list(headers.keys()):
            values = headers.get_all(name)
            swapped = [substitute_header(v, secrets) for v in values]
            if swapped != values:
                headers.set_all(name, swapped)
        flow.request.path = substitute_path(flow.request.path, secrets)


addons = [Egress(PolicyStore(POLICY_DIR))]
