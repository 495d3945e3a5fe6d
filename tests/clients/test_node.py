"""openai-node (the `openai` npm package) through Node's own test runner, against a real server."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import ROOT, LocalboxServer

NODE_DIR = ROOT / "tests" / "node"


def test_openai_node_workflow(keyed_server: LocalboxServer) -> None:
    env = {
        **os.environ,
        "LOCALBOX_BASE_URL": keyed_server.base_url,
        "LOCALBOX_API_KEY": keyed_server.api_key,
    }
    proc = subprocess.run(
        ["node", "--test", "--test-reporter=spec", "containers.test.mjs"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pass 2" in proc.stdout
    assert "fail 0" in proc.stdout
