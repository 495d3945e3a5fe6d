"""One sandbox's proxy: mitmproxy listening on the proxy's address on that sandbox's own
network, with the policy of that sandbox only. Run in a process forked from the supervisor
(__main__.py), which has mitmproxy imported already, so a new one listens in a fraction of a
second and the operating system, not one shared event loop, shares the CPU between sandboxes.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import time
from pathlib import Path

from mitmproxy import options
from mitmproxy.proxy import server as proxy_server
from mitmproxy.tools.dump import DumpMaster

from localbox_egress.addon import Egress
from localbox_egress.policy import PolicyFile

BUSY_SHARE = 0.8
BUSY_SECONDS = 3
"""A proxy process that keeps more than BUSY_SHARE of a core busy for BUSY_SECONDS in a row
runs at idle priority from then on (SCHED_IDLE: only CPU no one else wants), and paces its
sandbox's new connections (see Egress.pace), so that a sandbox flooding its proxy slows its
own traffic and not another sandbox's."""
IDLE_SECONDS = 60
"""A connection (a tunnel included) with nothing sent either way for this long is closed."""
MEMORY_BYTES = 1 << 30
"""Address space one sandbox's proxy process may use."""


async def step_aside_when_saturated(egress: Egress) -> None:
    busy = 0
    last = time.process_time()
    while True:
        await asyncio.sleep(1.0)
        now = time.process_time()
        busy = busy + 1 if now - last > BUSY_SHARE else 0
        last = now
        if busy >= BUSY_SECONDS:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            egress.pace()
            print(
                f"localbox-egress: {listen_label()} saturated a core; now at idle priority, "
                "its new connections paced"
            )
            return


def listen_label() -> str:
    return os.environ.get("LOCALBOX_EGRESS_LISTEN", "a proxy")


def serve(listen: str, port: int, policy: Path, confdir: Path, upstream_ca: Path) -> None:
    """Serve until SIGTERM."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    os.environ["LOCALBOX_EGRESS_LISTEN"] = listen
    proxy_server.TimeoutWatchdog.CONNECTION_TIMEOUT = IDLE_SECONDS

    async def main() -> None:
        opts = options.Options()
        master = DumpMaster(opts, with_termlog=True, with_dumper=False)
        egress = Egress(PolicyFile(policy))
        master.addons.add(egress)
        opts.update(
            mode="regular",
            listen_host=listen,
            listen_port=port,
            confdir=str(confdir),
            ssl_verify_upstream_trusted_ca=str(upstream_ca),
            connection_strategy="lazy",
            stream_large_bodies="256k",
            termlog_verbosity="warn",
            block_global=False,
        )
        loop = asyncio.get_running_loop()
        signal.signal(signal.SIGTERM, lambda *_: loop.call_soon_threadsafe(master.shutdown))
        signal.signal(signal.SIGINT, lambda *_: loop.call_soon_threadsafe(master.shutdown))
        watch = asyncio.create_task(step_aside_when_saturated(egress))
        try:
            await master.run()
        finally:
            watch.cancel()

    asyncio.run(main())
