"""Paging through 45 containers in both orders with after and before; the name filter."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest

from tests.conftest import LocalboxServer, _serve


@pytest.fixture(scope="module")
def paged_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalboxServer]:
    yield from _serve(tmp_path_factory.mktemp("localbox-paging"))


@pytest.fixture(scope="module")
def created(paged_server: LocalboxServer) -> list[tuple[int, str, str]]:
    """45 containers (30 'even', 15 'odd'), as (created_at, id, name) in ascending order."""

    async def make() -> list[tuple[int, str, str]]:
        async with paged_server.async_client(max_retries=0) as ac:
            sem = asyncio.Semaphore(8)

            async def one(i: int) -> tuple[int, str, str]:
                name = "odd" if i % 3 == 0 else "even"
                async with sem:
                    c = await ac.containers.create(name=name)
                return (c.created_at, c.id, c.name)

            return sorted(await asyncio.gather(*(one(i) for i in range(45))))

    return asyncio.run(make())


def test_auto_paging_desc_and_asc(
    paged_server: LocalboxServer, created: list[tuple[int, str, str]]
) -> None:
    client = paged_server.client(max_retries=0)
    expected_asc = [cid for _, cid, _ in created]
    desc = [c.id for c in client.containers.list(limit=7)]
    assert desc == expected_asc[::-1]
    asc = [c.id for c in client.containers.list(limit=10, order="asc")]
    assert asc == expected_asc


def test_pages_have_ids_and_has_more(
    paged_server: LocalboxServer, created: list[tuple[int, str, str]]
) -> None:
    client = paged_server.client(max_retries=0)
    ids = [cid for _, cid, _ in created][::-1]
    page = client.containers.list(limit=20)
    assert [c.id for c in page.data] == ids[:20]
    assert page.first_id == ids[0]
    assert page.last_id == ids[19]
    assert page.has_more is True
    page2 = client.containers.list(limit=20, after=page.last_id)
    assert [c.id for c in page2.data] == ids[20:40]
    page3 = client.containers.list(limit=20, after=page2.last_id)
    assert [c.id for c in page3.data] == ids[40:]
    assert page3.has_more is False
    empty = client.containers.list(limit=20, after=ids[-1])
    assert empty.data == []
    assert empty.first_id is None
    assert empty.last_id is None
    assert empty.has_more is False


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_before_walks_back(
    paged_server: LocalboxServer, created: list[tuple[int, str, str]], order: str
) -> None:
    client = paged_server.client(max_retries=0)
    ids = [cid for _, cid, _ in created]
    if order == "desc":
        ids = ids[::-1]
    anchor = ids[30]
    page = client.containers.list(limit=10, order=order, extra_query={"before": anchor})  # type: ignore[arg-type]
    assert [c.id for c in page.data] == ids[20:30]
    assert page.has_more is True
    first = client.containers.list(limit=10, order=order, extra_query={"before": ids[5]})  # type: ignore[arg-type]
    assert [c.id for c in first.data] == ids[:5]
    assert first.has_more is False
    between = client.containers.list(
        limit=100,
        order=order,  # type: ignore[arg-type]
        after=ids[10],
        extra_query={"before": ids[14]},
    )
    assert [c.id for c in between.data] == ids[11:14]


def test_name_filter_pages(
    paged_server: LocalboxServer, created: list[tuple[int, str, str]]
) -> None:
    client = paged_server.client(max_retries=0)
    odd = [cid for _, cid, name in created if name == "odd"]
    got = [c.id for c in client.containers.list(name="odd", limit=4, order="asc")]
    assert got == odd
    assert len(got) == 15
    assert client.containers.list(name="nobody").data == []


def test_listing_does_not_touch(
    paged_server: LocalboxServer, created: list[tuple[int, str, str]]
) -> None:
    client: openai.OpenAI = paged_server.client(max_retries=0)
    first = {c.id: c.last_active_at for c in client.containers.list(limit=100)}
    again = {c.id: c.last_active_at for c in client.containers.list(limit=100)}
    assert first == again
    assert len(first) == 45
