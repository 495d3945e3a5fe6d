"""Containers created with skills: unpacked read-only under /mnt/skills before the container is
returned, listed in /mnt/skills/index.json, and refused before any sandbox when bad."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import docker
import openai
import pytest

from tests.api.test_exec import run
from tests.api.test_skills import folder, manifest, skill_zip, zipped
from tests.conftest import LocalboxServer, _serve


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalboxServer]:
    yield from _serve(tmp_path_factory.mktemp("localbox-container-skills"))


@pytest.fixture
def sdk(box: LocalboxServer) -> openai.OpenAI:
    return box.client(max_retries=0, _strict_response_validation=True)


def inline(name: str, data: bytes, description: str = "Inline.") -> dict[str, Any]:
    return {
        "type": "inline",
        "name": name,
        "description": description,
        "source": {
            "type": "base64",
            "media_type": "application/zip",
            "data": base64.b64encode(data).decode(),
        },
    }


def bash(server: LocalboxServer, cid: str, command: str) -> tuple[int | None, str, str]:
    result = run(server, cid, command, language="bash")
    return result["exit_code"], result["stdout"], result["stderr"]


def sandboxes(docker_client: docker.DockerClient, server: LocalboxServer) -> int:
    label = f"localbox.instance={server.instance_id}"
    return len(docker_client.containers.list(all=True, filters={"label": label}))


def test_referenced_and_inline_skills_are_installed(
    box: LocalboxServer, sdk: openai.OpenAI, docker_client: docker.DockerClient
) -> None:
    skill = sdk.skills.create(files=folder("greeter", "Version one."))
    v2 = [
        (
            "greeter/SKILL.md",
            manifest("greeter", "Version two.") + b"Run scripts/greet.py NAME.\n",
        ),
        ("greeter/scripts/greet.py", b"import sys\nprint('hello,', sys.argv[1])\n"),
        ("greeter/scripts/tool.sh", b"#!/bin/sh\necho tool ran\n"),
    ]
    sdk.skills.versions.create(skill.id, files=v2)
    helper = zipped(
        {
            "helper/SKILL.md": manifest("helper-in-zip", "Front matter name."),
            "helper/lib/data.txt": b"42\n",
        }
    )
    c = sdk.containers.create(
        name="with-skills",
        skills=[
            {"type": "skill_reference", "skill_id": skill.id, "version": "2"},
            inline("helper", helper, "Helps inline."),
        ],
    )
    assert c.status == "running"

    code, out, _ = bash(box, c.id, "cat /mnt/skills/greeter/SKILL.md")
    assert code == 0
    assert "description: Version two." in out
    assert "Run scripts/greet.py NAME." in out
    assert bash(box, c.id, "python3 /mnt/skills/greeter/scripts/greet.py world")[:2] == (
        0,
        "hello, world\n",
    )
    assert bash(box, c.id, "sh /mnt/skills/greeter/scripts/tool.sh")[:2] == (0, "tool ran\n")
    # The inline skill is installed under the name the request gave it.
    assert bash(box, c.id, "cat /mnt/skills/helper/lib/data.txt")[:2] == (0, "42\n")
    python = run(box, c.id, "import json; print(json.load(open('/mnt/skills/index.json')))")
    index = json.loads(bash(box, c.id, "cat /mnt/skills/index.json")[1])
    assert index == [
        {"name": "greeter", "description": "Version two.", "path": "/mnt/skills/greeter"},
        {"name": "helper", "description": "Helps inline.", "path": "/mnt/skills/helper"},
    ]
    assert "greeter" in python["stdout"]

    # Read-only for user code, which cannot add, change or remove anything there.
    for attempt in (
        "touch /mnt/skills/new",
        "echo x >> /mnt/skills/greeter/SKILL.md",
        "rm /mnt/skills/greeter/scripts/greet.py",
        "mkdir /mnt/skills/greeter/more",
        "echo [] > /mnt/skills/index.json",
    ):
        assert bash(box, c.id, attempt)[0] != 0, attempt
    assert bash(box, c.id, "stat -c '%U %a' /mnt/skills/greeter /mnt/skills/index.json")[1] == (
        "root 755\nroot 644\n"
    )

    # Skills are not container files, and they are not counted against /mnt/data.
    assert list(sdk.containers.files.list(c.id)) == []
    assert bash(box, c.id, "du -s /mnt/data | cut -f1")[1].strip() in ("0", "4")

    # They outlive a restart of the sandbox (its Python state does not).
    docker_client.containers.get(f"localbox-{c.id}").restart(timeout=1)
    run(box, c.id, "pass")  # the first call after a restart behind the server's back
    assert bash(box, c.id, "cat /mnt/skills/helper/lib/data.txt")[:2] == (0, "42\n")

    sdk.containers.delete(c.id)
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(f"localbox-{c.id}-skills")


def test_default_and_latest_versions(box: LocalboxServer, sdk: openai.OpenAI) -> None:
    skill = sdk.skills.create(files=folder("pinned", "One."))
    sdk.skills.versions.create(skill.id, files=folder("pinned", "Two."))
    for version, expected in ((None, "One."), ("latest", "Two."), ("1", "One.")):
        ref: dict[str, Any] = {"type": "skill_reference", "skill_id": skill.id}
        if version is not None:
            ref["version"] = version
        c = sdk.containers.create(name="pinned", skills=[ref])  # type: ignore[list-item]
        index = json.loads(bash(box, c.id, "cat /mnt/skills/index.json")[1])
        assert index == [
            {"name": "pinned", "description": expected, "path": "/mnt/skills/pinned"}
        ], version
        sdk.containers.delete(c.id)


def test_a_container_without_skills_has_an_empty_skills_folder(
    box: LocalboxServer, sdk: openai.OpenAI
) -> None:
    c = sdk.containers.create(name="plain")
    assert bash(box, c.id, "ls -A /mnt/skills")[:2] == (0, "")
    sdk.containers.delete(c.id)


BAD: list[tuple[str, Any, type[openai.APIStatusError], str, str]] = [
    (
        "unknown-skill",
        [{"type": "skill_reference", "skill_id": "skill_missing"}],
        openai.NotFoundError,
        "skills.0.skill_id",
        "No skill found",
    ),
    (
        "unknown-version",
        [{"type": "skill_reference", "skill_id": "<skill>", "version": "9"}],
        openai.NotFoundError,
        "skills.0.version",
        "no version '9'",
    ),
    (
        "bad-version",
        [{"type": "skill_reference", "skill_id": "<skill>", "version": "two"}],
        openai.BadRequestError,
        "skills.0.version",
        "positive integer or 'latest'",
    ),
    (
        "bad-base64",
        [{**inline("x", b""), "source": {**inline("x", b"")["source"], "data": "@@@"}}],
        openai.BadRequestError,
        "skills.0.source.data",
        "not valid base64",
    ),
    (
        "inline-without-manifest",
        [inline("broken", zipped({"broken/README.md": b"x"}))],
        openai.BadRequestError,
        "skills.0",
        "No SKILL.md",
    ),
    (
        "inline-zip-slip",
        [inline("slip", zipped({"slip/SKILL.md": manifest("slip"), "../../x": b"x"}))],
        openai.BadRequestError,
        "skills.0",
        "contains '..'",
    ),
    (
        "inline-bad-name",
        [inline("../etc", skill_zip())],
        openai.BadRequestError,
        "skills.0.name",
        "not a valid skill name",
    ),
    (
        "two-of-one-name",
        [
            {"type": "skill_reference", "skill_id": "<skill>"},
            inline("refused", skill_zip()),
        ],
        openai.BadRequestError,
        "skills.1",
        "Two skills are named 'refused'",
    ),
    (
        "unknown-type",
        [{"type": "mystery"}],
        openai.BadRequestError,
        "skills.0",
        "",
    ),
]


@pytest.mark.parametrize(
    ("skills", "error", "param", "message"),
    [b[1:] for b in BAD],
    ids=[b[0] for b in BAD],
)
def test_bad_skills_are_refused_before_any_sandbox(
    box: LocalboxServer,
    sdk: openai.OpenAI,
    docker_client: docker.DockerClient,
    skills: list[dict[str, Any]],
    error: type[openai.APIStatusError],
    param: str,
    message: str,
) -> None:
    skill = sdk.skills.create(files=folder("refused"))
    body = json.loads(json.dumps(skills).replace("<skill>", skill.id))
    before = sandboxes(docker_client, box)
    with pytest.raises(error) as exc:
        sdk.containers.create(name="refused", skills=body)
    assert exc.value.param is not None
    assert exc.value.param.startswith(param)
    assert message in exc.value.message
    assert sandboxes(docker_client, box) == before
    assert [c for c in sdk.containers.list() if c.name == "refused"] == []
