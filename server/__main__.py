"""Entry point: read Settings once and serve create_app(settings) with uvicorn at our edge."""

from __future__ import annotations

import logging
import sys

import uvicorn

from server.app import create_app
from server.config import Settings
from server.edge import Edge, EdgeProtocol, connection_cap, raise_descriptor_limit
from server.host_memory import lower_own_oom_score
from server.instance import DataDirInUse, hold_data_dir
from server.logs import configure_logging
from server.middleware import is_loopback_name
from server.runtime.engine_runtimes import RuntimeMisconfigured

log = logging.getLogger("localbox")


def main() -> None:
    settings = Settings()
    if not is_loopback_name(settings.host.lower()) and not settings.api_key_list:
        print(
            f"localbox: refusing to listen on {settings.host}: anyone who can reach it could run "
            "code in sandboxes on this machine. Set LOCALBOX_API_KEYS (comma-separated bearer "
            "keys) or bind 127.0.0.1.",
            file=sys.stderr,
        )
        sys.exit(2)
    configure_logging(settings.log_level, settings.log_format)
    try:
        shared = settings.resolved_database_url.startswith(("postgresql", "postgres:"))
        hold_data_dir(settings.resolved_data_dir, shared=shared)
    except DataDirInUse as exc:
        print(f"localbox: refusing to start: {exc}", file=sys.stderr)
        sys.exit(2)
    lower_own_oom_score()
    descriptors = raise_descriptor_limit()
    edge = Edge(
        max_connections=connection_cap(settings.max_connections, descriptors),
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
    )
    log.info("open-file limit %d; at most %d client connections", descriptors, edge.max_connections)
    app = create_app(settings)
    try:
        app.state.runtime.preflight()
    except RuntimeMisconfigured as exc:
        print(f"localbox: {exc}", file=sys.stderr)
        sys.exit(2)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        http=EdgeProtocol.bound_to(edge),
        log_level=settings.log_level.lower(),
        log_config=None,
        access_log=False,  # localbox.access logs each request with its id, route and duration
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
