"""Skill bundles outside any server: hostile zips, the normalised zip, the install tar, and
ContainerService refusing bad skills before it makes a sandbox."""

from __future__ import annotations

import base64
import io
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from server.errors import InvalidSkill, SkillNotFound, SkillTooLarge
from server.services.activity import Activity
from server.services.container_files import ContainerFileService
from server.services.containers import ContainerService, CreateContainer
from server.services.files import FileService
from server.services.skill_bundle import (
    BundleLimits,
    Installed,
    install_archive,
    open_zip,
    read_zip,
    write_zip,
)
from server.services.skills import InlineSkill, SkillReference, SkillService, SkillUpload
from server.store import (
    BlobStore,
    ContainerFileRepository,
    ContainerRepository,
    Database,
    FileRepository,
    SkillBundleStore,
    SkillRepository,
)
from tests.services.clock import Clock
from tests.services.memory_runtime import MemoryRuntime

LIMITS = BundleLimits(max_files=10, max_bytes=1 << 20)
MANIFEST = b"---\nname: tool\ndescription: A tool.\n---\n"


def zipped(entries: dict[str, bytes], executable: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in entries.items():
            info = zipfile.ZipInfo(path)
            info.create_system = 3
            info.external_attr = (0o100755 if path in executable else 0o100644) << 16
            zf.writestr(info, data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def lie_about_size(data: bytes, member: str, declared: int) -> bytes:
    """Rewrite a member's uncompressed size in both its local header and the central
    directory, as a zip bomb does to slip past a check of declared sizes."""
    raw = bytearray(data)
    name = member.encode()
    local = raw.find(b"PK\x03\x04")
    while local != -1:
        name_len = struct.unpack_from("<H", raw, local + 26)[0]
        if raw[local + 30 : local + 30 + name_len] == name:
            struct.pack_into("<I", raw, local + 22, declared)
        local = raw.find(b"PK\x03\x04", local + 4)
    central = raw.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", raw, central + 28)[0]
        if raw[central + 46 : central + 46 + name_len] == name:
            struct.pack_into("<I", raw, central + 24, declared)
        central = raw.find(b"PK\x01\x02", central + 4)
    return bytes(raw)


def test_a_member_larger_than_it_declares_is_refused(tmp_path: Path) -> None:
    bomb = zipped({"tool/SKILL.md": MANIFEST, "tool/zeros": bytes(4 << 20)})
    small = lie_about_size(bomb, "tool/zeros", 10)
    with open_zip(small, LIMITS) as archive:
        bundle = read_zip(archive, LIMITS)  # declared sizes fit the limits...
        assert bundle.bytes < LIMITS.max_bytes
        with pytest.raises(InvalidSkill, match="damaged: Bad CRC-32"):
            write_zip(bundle, tmp_path / "out.zip")  # ...the bytes do not


def test_declared_sizes_over_the_limits_are_refused_unread() -> None:
    with (
        open_zip(zipped({"tool/SKILL.md": MANIFEST, "tool/zeros": bytes(2 << 20)}), LIMITS) as a,
        pytest.raises(SkillTooLarge, match="LOCALBOX_SKILL_MAX_BYTES"),
    ):
        read_zip(a, LIMITS)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tool\\evil.txt", "backslash"),
        ("C:/evil.txt", "absolute"),
        ("tool/./x", r"'\.' component"),
        ("tool//x", "empty"),
        ("tool/x\x01", "control characters"),
    ],
)
def test_odd_paths_are_refused(path: str, message: str) -> None:
    with (
        open_zip(zipped({"tool/SKILL.md": MANIFEST, path: b"x"}), LIMITS) as archive,
        pytest.raises(InvalidSkill, match=message),
    ):
        read_zip(archive, LIMITS)


def test_a_path_that_is_both_file_and_folder_is_refused() -> None:
    entries = {"tool/SKILL.md": MANIFEST, "tool/lib": b"x", "tool/lib/a.py": b"y"}
    with (
        open_zip(zipped(entries), LIMITS) as archive,
        pytest.raises(InvalidSkill, match="both a file and a folder"),
    ):
        read_zip(archive, LIMITS)


def test_the_manifest_must_sit_in_the_top_folder() -> None:
    with (
        open_zip(zipped({"tool/docs/SKILL.md": MANIFEST}), LIMITS) as archive,
        pytest.raises(InvalidSkill, match="directly in the top-level folder"),
    ):
        read_zip(archive, LIMITS)


def test_normalised_zip_and_install_tar(tmp_path: Path) -> None:
    source = zipped(
        {"tool/SKILL.md": MANIFEST, "tool/bin/run.sh": b"echo run\n", "tool/a/b/c.txt": b"c"},
        executable=("tool/bin/run.sh",),
    )
    with open_zip(source, LIMITS) as archive:
        write_zip(read_zip(archive, LIMITS), tmp_path / "n.zip")
    with zipfile.ZipFile(tmp_path / "n.zip") as normalised:
        modes = {i.filename: i.external_attr >> 16 for i in normalised.infolist()}
        assert modes == {
            "tool/SKILL.md": 0o100644,
            "tool/a/b/c.txt": 0o100644,
            "tool/bin/run.sh": 0o100755,
        }
        bundle = read_zip(normalised, LIMITS)
        assert (bundle.folder, bundle.name, bundle.description) == ("tool", "tool", "A tool.")
        tar_bytes = b"".join(install_archive([Installed("renamed", "Desc.", bundle)]))
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == [
            "index.json",
            "renamed",
            "renamed/SKILL.md",
            "renamed/a",
            "renamed/a/b",
            "renamed/a/b/c.txt",
            "renamed/bin",
            "renamed/bin/run.sh",
        ]
        assert all(m.uid == 0 and m.gid == 0 for m in members.values())
        assert all(m.mode & 0o022 == 0 for m in members.values())
        assert members["renamed/bin"].isdir()
        assert members["renamed/bin/run.sh"].mode == 0o755
        assert members["renamed/a/b/c.txt"].mode == 0o644
        index = tar.extractfile("index.json")
        assert index is not None
        assert index.read() == (
            b'[\n  {\n    "name": "renamed",\n    "description": "Desc.",\n'
            b'    "path": "/mnt/skills/renamed"\n  }\n]'
        )


@pytest.fixture
def services(tmp_path: Path) -> tuple[ContainerService, SkillService, MemoryRuntime]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.create_tables()
    clock = Clock()
    runtime = MemoryRuntime()
    files = FileService(FileRepository(db), BlobStore(tmp_path / "files"), clock, max_bytes=1 << 20)
    skills = SkillService(
        SkillRepository(db), SkillBundleStore(tmp_path / "skills"), clock, limits=LIMITS
    )
    containers = ContainerRepository(db)
    container_files = ContainerFileService(
        containers, ContainerFileRepository(db), files, runtime, clock, disk_limit=0
    )
    service = ContainerService(
        containers, container_files, runtime, Activity(), clock, skills=skills
    )
    return service, skills, runtime


def test_container_service_installs_skills(
    services: tuple[ContainerService, SkillService, MemoryRuntime],
) -> None:
    containers, skills, runtime = services
    skill = skills.create(SkillUpload(zip=io.BytesIO(zipped({"tool/SKILL.md": MANIFEST}))))
    inline = base64.b64encode(zipped({"x/SKILL.md": MANIFEST})).decode()
    c = containers.create(
        CreateContainer(
            name="c",
            skills=[SkillReference(skill.id), InlineSkill("other", "Other.", inline)],
        )
    )
    with tarfile.open(fileobj=io.BytesIO(runtime.skills[c.id])) as tar:
        assert {"tool/SKILL.md", "other/SKILL.md", "index.json"} <= set(tar.getnames())


def test_bad_skills_make_no_sandbox(
    services: tuple[ContainerService, SkillService, MemoryRuntime],
) -> None:
    containers, _, runtime = services
    with pytest.raises(SkillNotFound):
        containers.create(CreateContainer(name="c", skills=[SkillReference("skill_nope")]))
    bad = base64.b64encode(zipped({"x/README.md": b"x"})).decode()
    with pytest.raises(InvalidSkill, match=r"No SKILL\.md"):
        containers.create(CreateContainer(name="c", skills=[InlineSkill("bad", "Bad.", bad)]))
    assert runtime.sandboxes == {}
    assert containers.list(order="asc", limit=10, after=None, before=None, name=None).items == []


def test_a_zip_larger_than_any_bundle_could_be_is_refused_unopened() -> None:
    padded = zipped({"tool/SKILL.md": MANIFEST}) + bytes(LIMITS.max_bytes + (200 << 10))
    with pytest.raises(SkillTooLarge, match="is never larger than"):
        open_zip(padded, LIMITS)


@pytest.fixture
def skill_store(tmp_path: Path) -> tuple[SkillService, Database]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.create_tables()
    service = SkillService(
        SkillRepository(db), SkillBundleStore(tmp_path / "skills"), Clock(), limits=LIMITS
    )
    return service, db


def test_a_bundle_an_older_server_named_by_number_is_still_served(
    skill_store: tuple[SkillService, Database], tmp_path: Path
) -> None:
    skills, _ = skill_store
    skill = skills.create(SkillUpload(zip=io.BytesIO(zipped({"tool/SKILL.md": MANIFEST}))))
    second = skills.create_version(
        skill.id, SkillUpload(zip=io.BytesIO(zipped({"tool/SKILL.md": MANIFEST}))), False
    )
    folder = tmp_path / "skills" / skill.id
    (folder / f"{second.id}.zip").rename(folder / "2.zip")  # as servers before named it
    found, path = skills.content(skill.id, "2")
    assert (found.id, path) == (second.id, folder / "2.zip")
    skills.delete_version(skill.id, "2")
    first = skills.retrieve_version(skill.id, "1")
    assert [p.name for p in folder.iterdir()] == [f"{first.id}.zip"]


def test_a_number_some_version_already_has_is_not_given_again(
    skill_store: tuple[SkillService, Database],
) -> None:
    """A skill row whose next number lags behind its versions (edited by hand, say): the
    next version is numbered past the highest instead of failing on the unique index."""
    skills, db = skill_store
    skill = skills.create(SkillUpload(zip=io.BytesIO(zipped({"tool/SKILL.md": MANIFEST}))))
    for _ in range(2):
        skills.create_version(
            skill.id, SkillUpload(zip=io.BytesIO(zipped({"tool/SKILL.md": MANIFEST}))), False
        )
    db.execute("UPDATE skills SET next_version = 2 WHERE id = :id", id=skill.id)
    again = skills.create_version(
        skill.id, SkillUpload(zip=io.BytesIO(zipped({"tool/SKILL.md": MANIFEST}))), True
    )
    assert again.version == 4
    assert skills.retrieve(skill.id).default_version == 4
