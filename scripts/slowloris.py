"""A bounded slowloris load against a local localbox, with /health timed while it runs.

Opens up to --connections connections to 127.0.0.1:--port, each sending an unfinished request
("GET /health HTTP/1.1\\r\\nHost: x\\r\\n" and nothing more), keeps them for --seconds, and
meanwhile asks GET /health on a fresh connection every --probe-every seconds. Stops by itself
and prints what it saw. Loopback only: it never targets another address.

    .venv/bin/python scripts/slowloris.py --port 8000 --connections 20100 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from dataclasses import asdict, dataclass, field

HOST = "127.0.0.1"
PARTIAL = b"GET /health HTTP/1.1\r\nHost: x\r\n"
PROBE = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
PROBE_RESERVE = 64  # descriptors kept free for the probes


@dataclass
class Report:
    connections_opened: int = 0
    connect_failures: int = 0
    closed_by_server: int = 0
    first_close_after_s: float | None = None
    refused_with_status: dict[str, int] = field(default_factory=dict)
    probes: int = 0
    probe_failures: int = 0
    probe_statuses: dict[str, int] = field(default_factory=dict)
    probe_p50_ms: float = 0.0
    probe_max_ms: float = 0.0
    seconds: float = 0.0


async def probe(port: int, limit: float) -> tuple[str, float]:
    started = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(PROBE)
            status_line = await reader.readline()
            writer.close()
        status = status_line.split(b" ")[1].decode() if status_line else "closed"
    except (OSError, TimeoutError, IndexError) as exc:
        status = type(exc).__name__
    return status, (time.monotonic() - started) * 1000


async def hold(port: int, report: Report, started: float, stop: asyncio.Event) -> None:
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        report.connect_failures += 1
        return
    report.connections_opened += 1
    try:
        writer.write(PARTIAL)
        read = asyncio.ensure_future(reader.read(256))
        halt = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({read, halt}, return_when=asyncio.FIRST_COMPLETED)
        if read in done:
            report.closed_by_server += 1
            if report.first_close_after_s is None:
                report.first_close_after_s = round(time.monotonic() - started, 2)
            data = read.result() if not read.exception() else b""
            if data.startswith(b"HTTP/1.1 "):
                code = data.split(b" ")[1].decode()
                report.refused_with_status[code] = report.refused_with_status.get(code, 0) + 1
        else:
            read.cancel()
        halt.cancel()
    except OSError:
        report.closed_by_server += 1
    finally:
        writer.close()


async def run(args: argparse.Namespace) -> Report:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    budget = min(args.connections, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - PROBE_RESERVE)
    report = Report()
    stop = asyncio.Event()
    started = time.monotonic()
    holders = []
    latencies: list[float] = []

    async def opener() -> None:
        for i in range(budget):
            if time.monotonic() - started > args.seconds:
                break
            holders.append(asyncio.ensure_future(hold(args.port, report, started, stop)))
            if i % 200 == 199:
                await asyncio.sleep(0.01)

    open_task = asyncio.ensure_future(opener())
    while time.monotonic() - started < args.seconds:
        status, ms = await probe(args.port, args.probe_timeout)
        report.probes += 1
        report.probe_statuses[status] = report.probe_statuses.get(status, 0) + 1
        if status != "200":
            report.probe_failures += 1
        latencies.append(ms)
        await asyncio.sleep(args.probe_every)
    await open_task
    stop.set()
    await asyncio.gather(*holders)
    latencies.sort()
    report.probe_p50_ms = round(latencies[len(latencies) // 2], 1) if latencies else 0.0
    report.probe_max_ms = round(latencies[-1], 1) if latencies else 0.0
    report.seconds = round(time.monotonic() - started, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--probe-every", type=float, default=0.25)
    parser.add_argument("--probe-timeout", type=float, default=3.0)
    args = parser.parse_args()
    print(json.dumps(asdict(asyncio.run(run(args))), indent=2))


if __name__ == "__main__":
    main()
