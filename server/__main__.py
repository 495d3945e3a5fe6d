"""Entry point: read Settings once and serve create_app(settings) with uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import sys

import uvicorn

from server.app import create_app
from server.config import Settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> None:
    settings = Settings()
    if not is_loopback(settings.host) and not settings.api_key_list:
        print(
            f"localbox: refusing to listen on {settings.host}: anyone who can reach it could run "
            "code in sandboxes on this machine. Set LOCALBOX_API_KEYS (comma-separated bearer "
            "keys) or bind 127.0.0.1.",
            file=sys.stderr,
        )
        sys.exit(2)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Every sweep would be logged at INFO otherwise.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.root.level))
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
