"""Every JSON answer of the Containers, container files, Files and Skills routes matches the
official OpenAPI schema of its route, field by field: required fields present, no null where
the spec does not allow one, and no field the spec does not declare (tests/spec/schemas.py).

Requests go through the openai SDK's raw responses (the SDK's own request shapes) or httpx;
either way the JSON is read as sent, before any SDK model could hide a difference.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.api.test_exec import run
from tests.conftest import LocalboxServer
from tests.spec.schemas import check


@pytest.fixture
def http(server: LocalboxServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as c:
        yield c


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def raw(result: Any) -> Any:
    """The JSON body of an SDK `with_raw_response` call."""
    response: httpx.Response = result.http_response
    return ok(response)


def check_empty_list(page: dict[str, Any], name: str) -> None:
    """An empty page: the spec types first_id/last_id as strings (the Skills lists as string or
    null) but an empty page has no ids; localbox sends null, as the service does and as the
    SDKs read it. Everything else must match the spec."""
    assert page["data"] == []
    assert page["first_id"] is None
    assert page["last_id"] is None
    check({**page, "first_id": "", "last_id": ""}, name)


def not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    check(response.json(), "ErrorResponse")


def test_containers(http: httpx.Client, client: openai.OpenAI) -> None:
    created = raw(client.containers.with_raw_response.create(name="spec-container"))
    check(created, "ContainerResource")
    assert created["network_policy"] == {"type": "disabled"}
    cid = created["id"]
    try:
        check(ok(http.get(f"/containers/{cid}")), "ContainerResource")
        page = ok(http.get("/containers", params={"name": "spec-container", "limit": 5}))
        check(page, "ContainerListResource")
        assert [c["id"] for c in page["data"]] == [cid]
        check_empty_list(
            ok(http.get("/containers", params={"name": "no-such-container"})),
            "ContainerListResource",
        )
    finally:
        deleted = raw(client.containers.with_raw_response.delete(cid))
    # The spec gives DELETE no body; localbox answers as the service does (LiteLLM reads it).
    assert deleted == {"id": cid, "object": "container.deleted", "deleted": True}
    not_found(http.get("/containers/cntr_none"))


def test_container_with_a_file_id_and_expiry(http: httpx.Client, client: openai.OpenAI) -> None:
    file_id = client.files.create(file=("seed.txt", b"seed"), purpose="user_data").id
    body = {
        "name": "spec-configured",
        "expires_after": {"anchor": "last_active_at", "minutes": 5},
        "memory_limit": "1g",
        "file_ids": [file_id],
    }
    created = ok(http.post("/containers", json=body))
    check(created, "ContainerResource")
    assert created["expires_after"] == {"anchor": "last_active_at", "minutes": 5}
    http.delete(f"/containers/{created['id']}")


def test_container_files(http: httpx.Client, client: openai.OpenAI, server: LocalboxServer) -> None:
    cid = client.containers.create(name="spec-files").id
    try:
        uploaded = raw(
            client.containers.files.with_raw_response.create(cid, file=("up.txt", b"hello"))
        )
        check(uploaded, "ContainerFileResource")
        assert uploaded["source"] == "user"
        file_id = client.files.create(file=("from-files.txt", b"x"), purpose="user_data").id
        copied = ok(http.post(f"/containers/{cid}/files", json={"file_id": file_id}))
        check(copied, "ContainerFileResource")
        # A file the code wrote is listed with source "assistant".
        assert run(server, cid, "open('made.txt', 'w').write('made')")["status"] == "completed"
        page = ok(http.get(f"/containers/{cid}/files", params={"limit": 10}))
        check(page, "ContainerFileListResource")
        assert sorted(f["source"] for f in page["data"]) == ["assistant", "user", "user"]
        for f in page["data"]:
            check(ok(http.get(f"/containers/{cid}/files/{f['id']}")), "ContainerFileResource")
        for f in page["data"]:
            deleted = raw(
                client.containers.files.with_raw_response.delete(f["id"], container_id=cid)
            )
            # No body in the spec; localbox answers as the service does.
            assert deleted == {"id": f["id"], "object": "container.file.deleted", "deleted": True}
        check_empty_list(ok(http.get(f"/containers/{cid}/files")), "ContainerFileListResource")
        not_found(http.get(f"/containers/{cid}/files/cfile_none"))
    finally:
        client.containers.delete(cid)


def test_files(http: httpx.Client, client: openai.OpenAI) -> None:
    plain = raw(client.files.with_raw_response.create(file=("p.txt", b"p"), purpose="user_data"))
    check(plain, "OpenAIFile")
    assert "expires_at" not in plain  # optional in the spec, and this file never expires
    expiring = raw(
        client.files.with_raw_response.create(
            file=("e.txt", b"e"),
            purpose="assistants",
            expires_after={"anchor": "created_at", "seconds": 3600},
        )
    )
    check(expiring, "OpenAIFile")
    assert expiring["expires_at"] == expiring["created_at"] + 3600
    batch = raw(client.files.with_raw_response.create(file=("b.jsonl", b"{}\n"), purpose="batch"))
    check(batch, "OpenAIFile")
    for f in (plain, expiring, batch):
        got = ok(http.get(f"/files/{f['id']}"))
        check(got, "OpenAIFile")
        assert got == f
    page = ok(http.get("/files", params={"limit": 100}))
    check(page, "ListFilesResponse")
    listed = {f["id"]: f for f in page["data"]}
    assert listed[plain["id"]] == plain
    assert listed[expiring["id"]] == expiring
    for f in (plain, expiring, batch):
        deleted = raw(client.files.with_raw_response.delete(f["id"]))
        check(deleted, "DeleteFileResponse")
        assert deleted == {"id": f["id"], "object": "file", "deleted": True}
    not_found(http.get(f"/files/{plain['id']}"))


def skill_folder(name: str, description: str) -> list[tuple[str, bytes]]:
    manifest = f"---\nname: {name}\ndescription: {description}\n---\n\n# {name}\n".encode()
    return [(f"{name}/SKILL.md", manifest), (f"{name}/run.py", b"print('hi')\n")]


def skill_zip(name: str, description: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, data in skill_folder(name, description):
            zf.writestr(path, data)
    return buf.getvalue()


def test_skills(http: httpx.Client, client: openai.OpenAI) -> None:
    skill = raw(client.skills.with_raw_response.create(files=skill_folder("spec-skill", "One.")))
    check(skill, "SkillResource")
    sid = skill["id"]
    check(ok(http.get(f"/skills/{sid}")), "SkillResource")
    version = raw(
        client.skills.versions.with_raw_response.create(
            sid, files=("v2.zip", skill_zip("spec-skill", "Two."))
        )
    )
    check(version, "SkillVersionResource")
    updated = raw(client.skills.with_raw_response.update(sid, default_version="2"))
    check(updated, "SkillResource")
    assert (updated["default_version"], updated["latest_version"]) == ("2", "2")
    page = ok(http.get("/skills", params={"limit": 100}))
    check(page, "SkillListResource")
    assert sid in [s["id"] for s in page["data"]]
    versions = ok(http.get(f"/skills/{sid}/versions"))
    check(versions, "SkillVersionListResource")
    assert [v["version"] for v in versions["data"]] == ["2", "1"]
    check(ok(http.get(f"/skills/{sid}/versions/1")), "SkillVersionResource")
    gone = raw(client.skills.versions.with_raw_response.delete("1", skill_id=sid))
    check(gone, "DeletedSkillVersionResource")
    assert gone == {
        "id": gone["id"],
        "object": "skill.version.deleted",
        "deleted": True,
        "version": "1",
    }
    deleted = raw(client.skills.with_raw_response.delete(sid))
    check(deleted, "DeletedSkillResource")
    assert deleted == {"id": sid, "object": "skill.deleted", "deleted": True}
    not_found(http.get(f"/skills/{sid}"))
