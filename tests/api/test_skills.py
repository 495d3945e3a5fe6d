"""The Skills API through the openai SDK: skills, versions, content, and every bundle refusal."""

from __future__ import annotations

import asyncio
import io
import stat
import zipfile
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai.types import Skill

from tests.conftest import LocalboxServer, _serve

MAX_FILES = 20
MAX_BYTES = 1 << 20


@pytest.fixture(scope="module")
def skills_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalboxServer]:
    yield from _serve(
        tmp_path_factory.mktemp("localbox-skills"),
        {"LOCALBOX_SKILL_MAX_FILES": str(MAX_FILES), "LOCALBOX_SKILL_MAX_BYTES": str(MAX_BYTES)},
    )


@pytest.fixture
def sdk(skills_server: LocalboxServer) -> openai.OpenAI:
    # Strict: every answer must validate against the SDK's own models.
    return skills_server.client(max_retries=0, _strict_response_validation=True)


def manifest(name: str = "greeter", description: str = "Greets people by name.") -> bytes:
    return f"---\nname: {name}\ndescription: {description}\n---\n\n# {name}\n".encode()


def folder(name: str = "greeter", description: str = "Greets people by name.") -> list[tuple]:
    """A directory upload: (relative path, bytes) per file, as the SDK sends `files[]`."""
    return [
        (f"{name}/SKILL.md", manifest(name, description)),
        (f"{name}/scripts/greet.py", b"import sys\nprint('hello', sys.argv[1])\n"),
    ]


def zipped(entries: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in entries.items():
            zf.writestr(path, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def skill_zip(name: str = "greeter", description: str = "Greets people by name.") -> bytes:
    return zipped(dict(folder(name, description)))


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def test_create_from_a_directory_upload(sdk: openai.OpenAI) -> None:
    skill = sdk.skills.create(files=folder())
    assert isinstance(skill, Skill)
    assert skill.id.startswith("skill_")
    assert skill.object == "skill"
    assert (skill.name, skill.description) == ("greeter", "Greets people by name.")
    assert (skill.default_version, skill.latest_version) == ("1", "1")
    assert skill.created_at > 0
    assert sdk.skills.retrieve(skill.id) == skill


def test_create_from_a_zip(sdk: openai.OpenAI) -> None:
    skill = sdk.skills.create(files=("greeter.zip", skill_zip("zipped", "From a zip.")))
    assert (skill.name, skill.description, skill.default_version) == ("zipped", "From a zip.", "1")
    # The bundle comes back as the files uploaded, under their one folder.
    content = sdk.skills.content.retrieve(skill.id).read()
    assert members(content) == dict(folder("zipped", "From a zip."))


def test_versions_default_and_latest(sdk: openai.OpenAI) -> None:
    skill = sdk.skills.create(files=folder("versioned", "First."))
    second = sdk.skills.versions.create(skill.id, files=folder("versioned", "Second."))
    assert second.object == "skill.version"
    assert second.id.startswith("skillver_")
    assert (second.skill_id, second.version, second.description) == (skill.id, "2", "Second.")
    now = sdk.skills.retrieve(skill.id)
    assert (now.default_version, now.latest_version, now.description) == ("1", "2", "First.")

    # default=true moves the pointer at once; update moves it back.
    third = sdk.skills.versions.create(
        skill.id, files=("v3.zip", skill_zip("versioned", "Third.")), default=True
    )
    assert third.version == "3"
    now = sdk.skills.retrieve(skill.id)
    assert (now.default_version, now.latest_version, now.description) == ("3", "3", "Third.")
    moved = sdk.skills.update(skill.id, default_version="2")
    assert (moved.default_version, moved.latest_version, moved.description) == ("2", "3", "Second.")

    assert sdk.skills.versions.retrieve("2", skill_id=skill.id) == second
    assert sdk.skills.versions.retrieve("latest", skill_id=skill.id) == third
    listed = sdk.skills.versions.list(skill.id, order="asc")
    assert [v.version for v in listed] == ["1", "2", "3"]
    page = sdk.skills.versions.list(skill.id, limit=1)
    assert [v.version for v in page.data] == ["3"]
    assert page.has_more
    assert [[v.version for v in p.data] for p in page.iter_pages()] == [["3"], ["2"], ["1"]]

    # Content: the default version's zip, or any version's.
    default_zip = members(sdk.skills.content.retrieve(skill.id).read())
    assert default_zip["versioned/SKILL.md"] == manifest("versioned", "Second.")
    first_zip = members(sdk.skills.versions.content.retrieve("1", skill_id=skill.id).read())
    assert first_zip["versioned/SKILL.md"] == manifest("versioned", "First.")


def test_deleting_versions_and_skills(sdk: openai.OpenAI) -> None:
    skill = sdk.skills.create(files=folder("deletable"))
    sdk.skills.versions.create(skill.id, files=folder("deletable"))
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.skills.versions.delete("1", skill_id=skill.id)
    assert exc.value.code == "default_version"
    assert "default version" in exc.value.message

    gone = sdk.skills.versions.delete("2", skill_id=skill.id)
    assert (gone.object, gone.deleted, gone.version) == ("skill.version.deleted", True, "2")
    assert gone.id.startswith("skillver_")
    with pytest.raises(openai.NotFoundError):
        sdk.skills.versions.retrieve("2", skill_id=skill.id)
    with pytest.raises(openai.NotFoundError):
        sdk.skills.versions.content.retrieve("2", skill_id=skill.id)
    assert sdk.skills.retrieve(skill.id).latest_version == "1"
    # Numbers are never reused.
    assert sdk.skills.versions.create(skill.id, files=folder("deletable")).version == "3"

    deleted = sdk.skills.delete(skill.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (skill.id, "skill.deleted", True)
    for call in (
        lambda: sdk.skills.retrieve(skill.id),
        lambda: sdk.skills.content.retrieve(skill.id),
        lambda: sdk.skills.versions.list(skill.id),
        lambda: sdk.skills.delete(skill.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()


def test_deleting_the_only_version_deletes_the_skill(sdk: openai.OpenAI) -> None:
    skill = sdk.skills.create(files=folder("single"))
    assert sdk.skills.versions.delete("1", skill_id=skill.id).deleted
    with pytest.raises(openai.NotFoundError):
        sdk.skills.retrieve(skill.id)


def test_listing_pages_in_order(sdk: openai.OpenAI) -> None:
    created = [sdk.skills.create(files=folder(f"listed-{i}")) for i in range(3)]
    # Newest last; ties within a second are broken by id.
    made = [s.id for s in sorted(created, key=lambda s: (s.created_at, s.id))]
    ascending = [s.id for s in sdk.skills.list(order="asc", limit=2)]
    assert [i for i in ascending if i in made] == made
    descending = [s.id for s in sdk.skills.list(limit=1)]
    assert [i for i in descending if i in made] == made[::-1]
    after = sdk.skills.list(order="asc", after=made[0], limit=100)
    assert [s.id for s in after.data if s.id in made] == made[1:]
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.skills.list(after="skill_nope")
    assert exc.value.param == "after"


def test_unknown_and_malformed_references(sdk: openai.OpenAI) -> None:
    skill = sdk.skills.create(files=folder("referenced"))
    with pytest.raises(openai.NotFoundError):
        sdk.skills.retrieve("skill_missing")
    with pytest.raises(openai.NotFoundError) as nf:
        sdk.skills.versions.retrieve("9", skill_id=skill.id)
    assert nf.value.param == "version"
    for bad in ("abc", "0", "-1", "1.5"):
        with pytest.raises(openai.BadRequestError) as exc:
            sdk.skills.versions.retrieve(bad, skill_id=skill.id)
        assert exc.value.param == "version"
    with pytest.raises(openai.NotFoundError) as nf:
        sdk.skills.update(skill.id, default_version="7")
    assert nf.value.param == "default_version"
    with pytest.raises(openai.NotFoundError):
        sdk.skills.versions.create("skill_missing", files=folder("referenced"))
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.skills.versions.create(
            skill.id, files=folder("referenced"), extra_body={"default": "x"}
        )
    assert exc.value.param == "default"


GOOD = dict(folder())

BAD_UPLOADS: list[tuple[str, list[tuple] | tuple, str]] = [
    ("no-manifest", [("greeter/README.md", b"hi")], "No SKILL.md"),
    (
        "two-manifests",
        [*folder(), ("greeter/nested/SKILL.md", manifest())],
        "Found 2 SKILL.md",
    ),
    ("no-front-matter", [("greeter/SKILL.md", b"# Greeter\n")], "no YAML front matter"),
    (
        "unclosed-front-matter",
        [("greeter/SKILL.md", b"---\nname: greeter\n")],
        "no YAML front matter",
    ),
    ("front-matter-not-yaml", [("greeter/SKILL.md", b"---\nname: [a\n---\n")], "not valid YAML"),
    ("no-name", [("greeter/SKILL.md", b"---\ndescription: d\n---\n")], "has no 'name'"),
    ("no-description", [("greeter/SKILL.md", b"---\nname: greeter\n---\n")], "no 'description'"),
    ("bad-name", [("greeter/SKILL.md", manifest("My Skill!"))], "not a valid skill name"),
    ("two-folders", [*folder(), ("other/notes.md", b"x")], "2 top-level folders"),
    ("loose-file", [("SKILL.md", manifest())], "not inside a folder"),
    ("dotdot-in-upload", [*folder(), ("greeter/../evil.sh", b"x")], "contains '..'"),
    ("absolute-in-zip", ("s.zip", zipped({**GOOD, "/etc/cron.d/evil": b"x"})), "is absolute"),
    ("dotdot-in-zip", ("s.zip", zipped({**GOOD, "greeter/../../evil": b"x"})), "contains '..'"),
    (
        "symlink-in-zip",
        ("s.zip", zipped(GOOD, symlink="greeter/passwd")),
        "symbolic link",
    ),
    (
        "bomb-by-size",
        ("s.zip", zipped({**GOOD, "greeter/zeros.bin": bytes(MAX_BYTES + 1)})),
        "LOCALBOX_SKILL_MAX_BYTES",
    ),
    (
        "bomb-by-count",
        ("s.zip", zipped({**GOOD, **{f"greeter/f{i}.txt": b"x" for i in range(MAX_FILES)}})),
        "LOCALBOX_SKILL_MAX_FILES",
    ),
    (
        "too-many-parts",
        [*folder(), *[(f"greeter/f{i}.txt", b"x") for i in range(MAX_FILES)]],
        "LOCALBOX_SKILL_MAX_FILES",
    ),
    ("not-a-zip", ("s.zip", b"PK\x03\x04 but not really a zip"), "not a valid zip"),
]


@pytest.mark.parametrize(
    ("files", "message"), [(f, m) for _, f, m in BAD_UPLOADS], ids=[i for i, _, _ in BAD_UPLOADS]
)
def test_bad_bundles_are_refused(
    sdk: openai.OpenAI, files: list[tuple] | tuple, message: str
) -> None:
    before = {s.id for s in sdk.skills.list(limit=100)}
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.skills.create(files=files)
    assert exc.value.status_code == 400
    assert exc.value.param == "files"
    assert message in exc.value.message
    assert exc.value.type == "invalid_request_error"
    # A new version is checked the same way, and nothing is left behind either way.
    skill = sdk.skills.create(files=folder())
    with pytest.raises(openai.BadRequestError) as again:
        sdk.skills.versions.create(skill.id, files=files)
    assert message in again.value.message
    assert sdk.skills.retrieve(skill.id).latest_version == "1"
    sdk.skills.delete(skill.id)
    assert {s.id for s in sdk.skills.list(limit=100)} == before


def test_bundles_are_kept_normalised_on_disk(
    sdk: openai.OpenAI, skills_server: LocalboxServer
) -> None:
    skill = sdk.skills.create(files=("g.zip", skill_zip("on-disk")))
    first = sdk.skills.versions.retrieve("1", skill_id=skill.id)
    second = sdk.skills.versions.create(skill.id, files=folder("on-disk"))
    # Named by version id, which no other server sharing the data dir could give a bundle.
    root = skills_server.data_dir / "skills" / skill.id
    assert sorted(p.name for p in root.iterdir()) == sorted([f"{first.id}.zip", f"{second.id}.zip"])
    sdk.skills.versions.delete(second.version, skill_id=skill.id)
    assert sorted(p.name for p in root.iterdir()) == [f"{first.id}.zip"]
    sdk.skills.delete(skill.id)
    assert not root.exists()
    assert list((skills_server.data_dir / "skills" / ".incoming").iterdir()) == []


def test_upload_without_files_and_json_bodies(skills_server: LocalboxServer) -> None:
    r = httpx.post(f"{skills_server.base_url}/skills", files={"other": ("a.txt", b"x")})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "files"
    r = httpx.post(f"{skills_server.base_url}/skills", json={"files": "x"})
    assert r.status_code == 400
    assert "multipart/form-data" in r.json()["error"]["message"]
    r = httpx.get(f"{skills_server.base_url}/skills/skill_none/content")
    assert r.status_code == 404
    assert r.json()["error"]["param"] == "skill_id"


def test_content_is_served_as_a_zip(sdk: openai.OpenAI, skills_server: LocalboxServer) -> None:
    skill = sdk.skills.create(files=folder("served"))
    r = httpx.get(f"{skills_server.base_url}/skills/{skill.id}/versions/1/content")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    assert 'filename="served.zip"' in r.headers["content-disposition"]
    assert members(r.content)["served/scripts/greet.py"].startswith(b"import sys")


def test_the_async_client(skills_server: LocalboxServer) -> None:
    async def scenario() -> None:
        async with skills_server.async_client(
            max_retries=0, _strict_response_validation=True
        ) as client:
            skill = await client.skills.create(files=folder("async-made"))
            version = await client.skills.versions.create(
                skill.id, files=("a.zip", skill_zip("async-made", "Again.")), default=True
            )
            assert version.version == "2"
            assert [v.version async for v in client.skills.versions.list(skill.id)] == ["2", "1"]
            content = await client.skills.content.retrieve(skill.id)
            assert b"Again." in members(content.read())["async-made/SKILL.md"]
            assert (await client.skills.delete(skill.id)).deleted

    asyncio.run(scenario())
