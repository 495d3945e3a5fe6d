"""Choosing the engine runtimes for LOCALBOX_SANDBOX_RUNTIME from what `docker info` lists."""

from __future__ import annotations

import pytest

from server.runtime.engine_runtimes import RuntimeMisconfigured, choose

RUNC = {"path": "runc"}
NONE = {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}
HOST = {"path": "/usr/bin/runsc", "runtimeArgs": ["--platform=ptrace", "--network=host"]}


def test_runc_is_used_for_every_sandbox() -> None:
    choice = choose("runc", {"runc": RUNC, "runsc": NONE})
    assert (choice.isolated, choice.networked, choice.gvisor) == ("runc", "runc", False)


def test_gvisor_takes_its_host_network_twin_for_allowlisted_sandboxes() -> None:
    choice = choose("runsc", {"runc": RUNC, "runsc": NONE, "gvisor-net": HOST})
    assert (choice.isolated, choice.networked, choice.gvisor) == ("runsc", "gvisor-net", True)
    preferred = choose(
        "runsc", {"runsc": NONE, "a-net": HOST, "runsc-host-network": HOST, "z-net": HOST}
    )
    assert preferred.networked == "runsc-host-network"


@pytest.mark.parametrize(
    ("engine", "says"),
    [
        ({"runc": RUNC}, "has no runtime of that name (it has: runc)"),
        ({"runsc": {"path": "/usr/bin/runsc"}, "n": HOST}, "its own network stack"),
        ({"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network", "sandbox"]}}, "own"),
        ({"runsc": NONE}, 'runtimeArgs ["--network=host"]'),
        (
            {"runsc": NONE, "other": {"path": "/opt/runsc", "runtimeArgs": ["--network=host"]}},
            "second",
        ),
    ],
)
def test_what_cannot_run_sandboxes_is_refused_saying_what_to_do(
    engine: dict[str, dict[str, object]], says: str
) -> None:
    with pytest.raises(RuntimeMisconfigured) as refused:
        choose("runsc", engine)
    assert "LOCALBOX_SANDBOX_RUNTIME=runsc" in str(refused.value)
    assert says in str(refused.value)
    assert "/etc/docker/daemon.json" in str(refused.value)
