"""Creating 20 containers at once must not stall the server: Docker calls stay off the loop."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.conftest import LocalboxServer


def test_twenty_creates_at_once_leave_the_server_responsive(
    fresh_server: LocalboxServer,
) -> None:
    async def scenario() -> tuple[list[str], list[float], float]:
        health_done: list[float] = []
        async with fresh_server.async_client(max_retries=0, timeout=120) as ac:

            async def create(i: int) -> str:
                return (await ac.containers.create(name=f"burst-{i}")).id

            async def poll_health(stop: asyncio.Event) -> None:
                async with httpx.AsyncClient() as http:
                    while not stop.is_set():
                        r = await http.get(f"{fresh_server.url}/health")
                        assert r.status_code == 200
                        health_done.append(time.monotonic())
                        await asyncio.sleep(0.02)

            stop = asyncio.Event()
            poller = asyncio.create_task(poll_health(stop))
            ids = await asyncio.gather(*(create(i) for i in range(20)))
            creates_done = time.monotonic()
            stop.set()
            await poller
            return list(ids), health_done, creates_done

    ids, health_done, creates_done = asyncio.run(scenario())
    assert len(set(ids)) == 20
    # /health kept answering while the creates were in flight.
    assert sum(1 for t in health_done if t < creates_done) >= 5
    listed = fresh_server.client().containers.list(limit=100)
    assert sorted(c.id for c in listed.data) == sorted(ids)
