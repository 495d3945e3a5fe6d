"""Every curl command in the README runs against a real server (and the LiteLLM proxy), so
the README cannot drift from what localbox does."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import zipfile
from pathlib import Path

import openai
import pytest

from tests.clients.conftest import MASTER_KEY, Proxy
from tests.conftest import ROOT, LocalboxServer


def readme_curl_commands() -> list[str]:
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [line.strip() for line in joined.splitlines() if line.startswith("curl ")]
    return commands


COMMANDS = readme_curl_commands()


def test_the_readme_has_curl_examples() -> None:
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_curl_command(
    command: str, keyed_server: LocalboxServer, proxy: Proxy, tmp_path: Path
) -> None:
    client = keyed_server.client(max_retries=0)
    container = client.containers.create(name="readme")
    cfile = client.containers.files.create(container.id, file=("report.csv", b"r,s\n"))
    ffile = client.files.create(file=("seed.txt", b"seed"), purpose="assistants")
    (tmp_path / "data.csv").write_bytes(b"a,b\n1,2\n")
    (tmp_path / "notes.txt").write_bytes(b"notes")
    skill_md = b"---\nname: my-skill\ndescription: Says hello.\n---\n"
    (tmp_path / "my-skill" / "scripts").mkdir(parents=True)
    (tmp_path / "my-skill" / "SKILL.md").write_bytes(skill_md)
    (tmp_path / "my-skill" / "scripts" / "hello.py").write_bytes(b"print('hello')\n")
    with zipfile.ZipFile(tmp_path / "my-skill.zip", "w") as zf:
        zf.writestr("my-skill/SKILL.md", skill_md)
    skill = client.skills.create(files=[("my-skill/SKILL.md", skill_md)])
    concrete = (
        command.replace("http://127.0.0.1:8000", keyed_server.url)
        .replace("http://localhost:4000", proxy.url)
        .replace("cntr_…", container.id)
        .replace("cfile_…", cfile.id)
        .replace("file-…", ffile.id)
        .replace("skill_…", skill.id)
        .replace("curl -s", "curl -sS --fail-with-body", 1)
    )
    assert "…" not in concrete, f"unknown placeholder in: {command}"
    proc = subprocess.run(
        ["bash", "-c", concrete],
        cwd=tmp_path,
        env={**os.environ, "KEY": keyed_server.api_key, "LITELLM_MASTER_KEY": MASTER_KEY},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, (concrete, proc.stdout, proc.stderr)
    if proc.stdout.startswith(b"{"):
        body = json.loads(proc.stdout)
        assert body.get("error") is None, body
    with contextlib.suppress(openai.NotFoundError):  # the command may have deleted it
        client.containers.delete(container.id)
    with contextlib.suppress(openai.NotFoundError):
        client.skills.delete(skill.id)
