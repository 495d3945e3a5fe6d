"""A localbox whose /v1/responses talks to a scripted upstream model (a real HTTP server
the tests start), with real Docker sandboxes behind the tools."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import LocalboxServer, _serve
from tests.responses.scripted_upstream import ScriptedUpstream

UPSTREAM_KEY = "sk-upstream-secret-1234"


@pytest.fixture(scope="session")
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(api_key=UPSTREAM_KEY) as scripted:
        yield scripted


@pytest.fixture(scope="session")
def responses_server(
    tmp_path_factory: pytest.TempPathFactory, upstream: ScriptedUpstream
) -> Iterator[LocalboxServer]:
    """localbox with the scripted upstream as its model (Chat Completions), and a warm pool."""
    yield from _serve(
        tmp_path_factory.mktemp("localbox-responses"),
        {
            "LOCALBOX_MODEL_BASE_URL": upstream.base_url,
            "LOCALBOX_MODEL_API_KEY": UPSTREAM_KEY,
            "LOCALBOX_MODEL_MAX_RETRIES": "0",
            "LOCALBOX_WARM_POOL": "1",
        },
    )


@pytest.fixture
def scripted(upstream: ScriptedUpstream) -> Iterator[ScriptedUpstream]:
    """The upstream with an empty script and no requests recorded; every step a test
    scripted must have been used by its end."""
    upstream.script()
    upstream.received.clear()
    yield upstream
    assert upstream.remaining() == 0, "the test scripted steps the loop never asked for"


@pytest.fixture
def rclient(responses_server: LocalboxServer) -> Iterator[openai.OpenAI]:
    with responses_server.client(max_retries=0) as c:
        yield c
