"""Fixtures for the client tests: the LiteLLM proxy in front of localbox."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import ROOT, LocalboxServer, free_port

LITELLM_PY = ROOT / ".venv-litellm" / "bin" / "python"
LITELLM_CLI = ROOT / ".venv-litellm" / "bin" / "litellm"
OFFLINE = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
MASTER_KEY = "sk-proxy-master-for-the-test-suite"
PROXY_ENV = {**OFFLINE, "LITELLM_MASTER_KEY": MASTER_KEY}


def readme_proxy_config(base_url: str, api_key: str) -> str:
    """The README's own LiteLLM proxy config.yaml, pointed at the server under test."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"```yaml\n(# config\.yaml.*?)```", readme, re.S)
    assert match, "the README has no LiteLLM proxy config.yaml block"
    config = match.group(1)
    assert "http://127.0.0.1:8000/v1" in config
    assert '"anything"' in config
    return config.replace("http://127.0.0.1:8000/v1", base_url).replace(
        '"anything"', f'"{api_key}"'
    )


@dataclass
class Proxy:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def proxy(
    keyed_server: LocalboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    """The LiteLLM proxy, offline, run with the README's config pointed at localbox."""
    tmp = tmp_path_factory.mktemp("litellm-proxy")
    config = tmp / "config.yaml"
    config.write_text(readme_proxy_config(keyed_server.base_url, keyed_server.api_key))
    port = free_port()
    with (tmp / "proxy.log").open("ab") as log:
        process = subprocess.Popen(
            [str(LITELLM_CLI), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **PROXY_ENV},
            stdout=log,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, (tmp / "proxy.log").read_text()
        try:
            if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, (tmp / "proxy.log").read_text()
        time.sleep(0.25)
    yield Proxy(url, process)
    process.terminate()
    process.wait(timeout=30)
