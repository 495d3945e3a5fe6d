"""With the defaults, a test suite's worth of containers fits: 100 containers of the default
memory_limit on a 24 GiB machine, each answering an exec, and the 101st refused by the
container cap (not by memory)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from server.config import Settings
from tests.api.test_exec import run
from tests.conftest import serving

DEFAULTS = {
    f"LOCALBOX_{name.upper()}": str(Settings.model_fields[name].default)
    for name in ("max_containers", "warm_pool", "warm_imports", "min_free_memory", "memory_budget")
}


def test_the_default_cap_of_containers_is_reachable(tmp_path: Path) -> None:
    cap = Settings.model_fields["max_containers"].default
    assert cap == 100
    with serving(tmp_path / "data", DEFAULTS) as server:
        client = server.client(max_retries=0)
        with ThreadPoolExecutor(4) as pool:
            made = list(pool.map(lambda i: client.containers.create(name=f"c{i}").id, range(cap)))
            results = list(pool.map(lambda c: run(server, c, "print(6 * 7)"), made))
        assert len(set(made)) == cap
        assert [r["stdout"] for r in results] == ["42\n"] * cap
        assert all(c.memory_limit == "1g" for c in client.containers.list(limit=100).data)
        with pytest.raises(openai.RateLimitError) as full:
            client.containers.create(name="one too many")
        assert full.value.code == "too_many_containers"
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(client.containers.delete, made))
        assert client.containers.list().data == []
