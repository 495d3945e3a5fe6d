"""Which OCI runtime of the engine each sandbox runs under (LOCALBOX_SANDBOX_RUNTIME).

runc is the engine's own runtime. gVisor's runsc puts a kernel of its own between sandbox code
and the host's. The runsc Debian ships cannot give a container gVisor's own network stack
inside Docker's network namespaces, so it is registered twice: once with --network=none, for
sandboxes without a network (most of them, and every spare), and once with --network=host,
which under Docker means gVisor uses the container's own namespace (its bridge network to the
egress proxy, nothing else) through the host's stack: for allowlisted sandboxes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

GVISOR_NO_NETWORK = "runsc"
GVISOR_HOST_NETWORK = "runsc-host-network"

DAEMON_JSON_HINT = json.dumps(
    {
        "runtimes": {
            GVISOR_NO_NETWORK: {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]},
            GVISOR_HOST_NETWORK: {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host"]},
        }
    }
)


class RuntimeMisconfigured(Exception):
    """The engine cannot run sandboxes under the runtime the settings name."""


@dataclass(frozen=True)
class RuntimeChoice:
    """The engine runtimes sandboxes are made with."""

    name: str
    """LOCALBOX_SANDBOX_RUNTIME as given."""
    isolated: str
    """For sandboxes without a network (and spares)."""
    networked: str
    """For allowlisted sandboxes, which reach the egress proxy over a bridge network."""
    gvisor: bool


def _is_gvisor(entry: Mapping[str, object]) -> bool:
    return os.path.basename(str(entry.get("path", ""))) == "runsc"


def _args(entry: Mapping[str, object]) -> Sequence[str]:
    raw = entry.get("runtimeArgs") or []
    return [str(a) for a in raw] if isinstance(raw, list) else []


def _network_mode(entry: Mapping[str, object]) -> str:
    """The --network a runsc entry passes ("sandbox", gVisor's default, when none)."""
    mode = "sandbox"
    args = list(_args(entry))
    for i, arg in enumerate(args):
        if arg.startswith(("--network=", "-network=")):
            mode = arg.split("=", 1)[1]
        elif arg in ("--network", "-network") and i + 1 < len(args):
            mode = args[i + 1]
    return mode


def choose(wanted: str, engine: Mapping[str, Mapping[str, object]]) -> RuntimeChoice:
    """The runtimes to use for wanted, given the engine's (docker info's "Runtimes").
    RuntimeMisconfigured, saying what to do, when the engine cannot run sandboxes so."""
    known = ", ".join(sorted(engine)) or "none"
    if wanted not in engine:
        raise RuntimeMisconfigured(
            f"LOCALBOX_SANDBOX_RUNTIME={wanted}, but the Docker engine has no runtime of that "
            f"name (it has: {known}). "
            + (
                "Run `make run` as root on Debian to install and register gVisor, or add to "
                f"/etc/docker/daemon.json: {DAEMON_JSON_HINT} and send dockerd a SIGHUP."
                if wanted == "runsc"
                else "Use one of those, or register it with the engine first."
            )
        )
    entry = engine[wanted]
    if not _is_gvisor(entry):
        return RuntimeChoice(wanted, wanted, wanted, gvisor=False)
    if _network_mode(entry) != "none":
        raise RuntimeMisconfigured(
            f"LOCALBOX_SANDBOX_RUNTIME={wanted} is gVisor with its own network stack, which "
            "cannot start in Docker's network namespaces: register it with runtimeArgs "
            f'["--network=none"] in /etc/docker/daemon.json, as in {DAEMON_JSON_HINT}'
        )
    host_network = [
        name
        for name, other in sorted(engine.items())
        if _is_gvisor(other)
        and str(other.get("path")) == str(entry.get("path"))
        and _network_mode(other) == "host"
    ]
    if not host_network:
        raise RuntimeMisconfigured(
            f"LOCALBOX_SANDBOX_RUNTIME={wanted} needs a second gVisor runtime registered with "
            'runtimeArgs ["--network=host"] for sandboxes with a network allowlist (the engine '
            f"has: {known}); add it to /etc/docker/daemon.json, as in {DAEMON_JSON_HINT}, and "
            "send dockerd a SIGHUP"
        )
    preferred = GVISOR_HOST_NETWORK if GVISOR_HOST_NETWORK in host_network else host_network[0]
    return RuntimeChoice(wanted, wanted, preferred, gvisor=True)
