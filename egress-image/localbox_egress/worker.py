"""One sandbox's proxy: mitmproxy listening on the proxy's address on that sandbox's own
network, with the policy of that sandbox only. Run in a process forked from the supervisor
(__main__.py), which has mitmproxy imported already, so a new one listens in a fraction of a
second and the operating system, not one shared event loop, shares the CPU between sandboxes.
"""

from __future__ import annotations

import asyncio
import resource
import signal
from pathlib import Path

from mitmproxy import options
from mitmproxy.proxy import server as proxy_server
from mitmproxy.tools.dump import DumpMaster

from localbox_egress.addon import Egress
from localbox_egress.policy import PolicyFile

IDLE_SECONDS = 60
"""A connection (a tunnel included) with nothing sent either way for this long is closed."""
MEMORY_BYTES = 1 << 30
"""Address space one sandbox's proxy process may use."""


def serve(listen: str, port: int, policy: Path, confdir: Path, upstream_ca: Path) -> None:
    """Serve until SIGTERM."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    proxy_server.TimeoutWatchdog.CONNECTION_TIMEOUT = IDLE_SECONDS

    async def main() -> None:
        opts = options.Options()
        master = DumpMaster(opts, with_termlog=True, with_dumper=False)
        master.addons.add(Egress(PolicyFile(policy)))
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
        await master.run()

    asyncio.run(main())
