"""Two servers on one PostgreSQL database and one data dir, as replicas run: each with services
and an engine of its own, racing from threads. Skill versions are numbered by the database and
keep their bundles; container admissions together never pass the limits."""

from __future__ import annotations

import io
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from server.domain import SkillVersion
from server.errors import (
    ApiError,
    DefaultSkillVersion,
    MemoryBudgetExhausted,
    SkillNotFound,
    SkillVersionNotFound,
    TooManyContainers,
)
from server.services.activity import Activity
from server.services.capacity import ADMISSION_SECONDS, Capacity, Limits
from server.services.container_files import ContainerFileService
from server.services.containers import ContainerService, CreateContainer
from server.services.files import FileService
from server.services.skill_bundle import BundleLimits, open_zip, read_zip
from server.services.skills import SkillService, SkillUpload
from server.store import (
    BlobStore,
    ContainerFileRepository,
    ContainerRepository,
    Database,
    FileRepository,
    SkillBundleStore,
    SkillRepository,
)
from server.store.admissions import AdmissionRepository
from tests.services.clock import Clock
from tests.services.test_capacity import SlowRuntime

T = TypeVar("T")

LIMITS = BundleLimits(max_files=10, max_bytes=1 << 20)
REPLICAS = 2


def skill_zip(description: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("tool/SKILL.md", f"---\nname: tool\ndescription: {description}\n---\n")
    return buf.getvalue()


@pytest.fixture
def databases(postgres_database: str) -> Iterator[list[Database]]:
    """One database, an engine (a pool of connections) per replica."""
    dbs = [Database(postgres_database) for _ in range(REPLICAS)]
    for db in dbs:
        db.create_tables()
    yield dbs
    for db in dbs:
        db.close()


def race(work: list[Callable[[], T]]) -> list[T]:
    """Run every call at once (released together), each on a thread of its own."""
    start = threading.Barrier(len(work))

    def run(call: Callable[[], T]) -> T:
        start.wait()
        return call()

    with ThreadPoolExecutor(len(work)) as pool:
        return list(pool.map(run, work))


# -- skill versions -------------------------------------------------------------------------


@pytest.fixture
def skill_services(databases: list[Database], tmp_path: Path) -> list[SkillService]:
    """A SkillService per replica, their bundles in one data dir."""
    return [
        SkillService(
            SkillRepository(db), SkillBundleStore(tmp_path / "skills"), Clock(), limits=LIMITS
        )
        for db in databases
    ]


def bundle_description(service: SkillService, skill_id: str, version: SkillVersion) -> str:
    _, path = service.content(skill_id, str(version.version))
    with path.open("rb") as f, open_zip(f, LIMITS) as archive:
        return read_zip(archive, LIMITS).description


def test_versions_made_at_once_by_two_servers_are_all_kept(
    skill_services: list[SkillService],
) -> None:
    first, second = skill_services
    skill = first.create(SkillUpload(zip=io.BytesIO(skill_zip("v1"))))
    n = 24

    def make(i: int) -> Callable[[], SkillVersion]:
        service = skill_services[i % REPLICAS]
        upload = SkillUpload(zip=io.BytesIO(skill_zip(f"made by {i}")))
        return lambda: service.create_version(skill.id, upload, make_default=i == n - 1)

    made = race([make(i) for i in range(n)])
    assert sorted(v.version for v in made) == list(range(2, n + 2))
    # Every version's bundle is its own upload, whichever server reads it.
    for i, version in enumerate(made):
        for service in skill_services:
            assert bundle_description(service, skill.id, version) == f"made by {i}"
    listed = second.list_versions(skill.id, order="asc", limit=100, after=None).items
    assert [v.version for v in listed] == list(range(1, n + 2))
    assert {v.id for v in listed[1:]} == {v.id for v in made}
    after = second.retrieve(skill.id)
    assert after.latest_version == n + 1
    assert after.default_version == made[-1].version
    # The next number follows them all, on either server.
    again = first.create_version(
        skill.id, SkillUpload(zip=io.BytesIO(skill_zip("after"))), make_default=False
    )
    assert again.version == n + 2


def test_a_default_and_a_delete_of_one_version_on_two_servers_never_leave_no_default(
    skill_services: list[SkillService],
) -> None:
    """Either the version becomes the default and its delete is refused, or it is deleted
    and making it the default is a 404: the skill's default always exists."""
    first, second = skill_services
    skill = first.create(SkillUpload(zip=io.BytesIO(skill_zip("v1"))))
    for _ in range(20):
        version = first.create_version(
            skill.id, SkillUpload(zip=io.BytesIO(skill_zip("candidate"))), make_default=False
        )
        number = str(version.version)

        def make_default(number: str = number) -> str:
            try:
                first.set_default(skill.id, number)
            except SkillVersionNotFound:
                return "gone"
            return "default"

        def delete(number: str = number) -> str:
            try:
                second.delete_version(skill.id, number)
            except DefaultSkillVersion:
                return "kept"
            return "deleted"

        outcome = tuple(race([make_default, delete]))
        assert outcome in {("default", "kept"), ("gone", "deleted")}
        for service in skill_services:
            _, path = service.content(skill.id)  # the default version, and its bundle
            assert path.exists()
        first.set_default(skill.id, "1")


def test_a_skill_deleted_while_the_other_server_adds_versions_leaves_nothing(
    skill_services: list[SkillService], tmp_path: Path
) -> None:
    first, second = skill_services
    skill = first.create(SkillUpload(zip=io.BytesIO(skill_zip("v1"))))

    def add(i: int) -> Callable[[], str]:
        def run() -> str:
            try:
                second.create_version(
                    skill.id, SkillUpload(zip=io.BytesIO(skill_zip(f"v{i}"))), make_default=False
                )
            except SkillNotFound:
                return "refused"
            return "added"

        return run

    def delete() -> str:
        first.delete(skill.id)
        return "deleted"

    race([*(add(i) for i in range(8)), delete])
    with pytest.raises(SkillNotFound):
        second.retrieve(skill.id)
    assert first._repo.list_versions(skill.id, order="asc", limit=100, after=None).items == []
    folder = tmp_path / "skills" / skill.id
    assert not folder.exists() or list(folder.iterdir()) == []
    assert list((tmp_path / "skills" / ".incoming").iterdir()) == []


def test_a_server_starting_on_the_data_dir_leaves_the_others_scratch_files(
    tmp_path: Path,
) -> None:
    """remove_scratch at a start removes what a killed server left, not a bundle another
    server on the same data dir is writing."""
    writing, starting = SkillBundleStore(tmp_path), SkillBundleStore(tmp_path)
    left = tmp_path / ".incoming" / "left-by-a-killed-server.zip"
    left.write_bytes(b"partial")
    with writing.scratch() as scratch:
        scratch.write_bytes(b"being written")
        assert starting.remove_scratch() == 1
        assert scratch.read_bytes() == b"being written"
        assert not left.exists()
    assert not scratch.exists()


# -- container admissions -------------------------------------------------------------------


def container_services(
    databases: list[Database], tmp_path: Path, clock: Callable[[], float] = time.time, **limits: int
) -> list[ContainerService]:
    """A ContainerService per replica, each with its Capacity (and a runtime of its own)."""
    services = []
    for db in databases:
        containers, file_repo = ContainerRepository(db), FileRepository(db)
        capacity = Capacity(
            containers,
            file_repo,
            Limits(
                **{"max_containers": 100, "max_files_bytes": 1 << 30, "min_free_disk": 0, **limits}
            ),
            clock=clock,
        )
        assert capacity.shared
        runtime = SlowRuntime()
        files = FileService(file_repo, BlobStore(tmp_path / "blobs"), time.time, max_bytes=1 << 20)
        cfs = ContainerFileService(
            containers, ContainerFileRepository(db), files, runtime, time.time
        )
        services.append(
            ContainerService(containers, cfs, runtime, Activity(), time.time, capacity=capacity)
        )
    return services


def burst_on(services: list[ContainerService], n: int, memory_limit: str) -> list[ApiError | str]:
    """n creates at once, spread over the servers."""

    def create(i: int) -> Callable[[], ApiError | str]:
        def run() -> ApiError | str:
            request = CreateContainer(name=f"c{i}", memory_limit=memory_limit)
            try:
                return services[i % len(services)].create(request).id
            except ApiError as exc:
                return exc

        return run

    return race([create(i) for i in range(n)])


def test_creates_at_once_on_two_servers_stop_at_the_container_cap(
    databases: list[Database], tmp_path: Path
) -> None:
    services = container_services(databases, tmp_path, max_containers=5)
    results = burst_on(services, 24, "1g")
    assert sum(isinstance(r, str) for r in results) == 5
    assert all(isinstance(r, (str, TooManyContainers)) for r in results), results
    assert ContainerRepository(databases[0]).running_memory_limits() == {"1g": 5}
    assert AdmissionRepository(databases[1]).in_flight(int(time.time())) == 0


def test_creates_at_once_on_two_servers_stop_at_the_memory_budget(
    databases: list[Database], tmp_path: Path
) -> None:
    services = container_services(databases, tmp_path, memory_budget=9 << 30)
    results = burst_on(services, 12, "4g")
    assert sum(isinstance(r, str) for r in results) == 2
    assert all(isinstance(r, (str, MemoryBudgetExhausted)) for r in results), results


def test_the_cap_holds_over_rounds_of_creates_and_deletes_on_two_servers(
    databases: list[Database], tmp_path: Path
) -> None:
    """Containers recorded while others are admitted count once: never twice (a create
    refused below the cap), never not at all (one admitted past it)."""
    services = container_services(databases, tmp_path, max_containers=4)
    for _ in range(5):
        results = burst_on(services, 10, "1g")
        made = [r for r in results if isinstance(r, str)]
        assert len(made) == 4, results
        for i, cid in enumerate(made):
            services[i % 2].delete(cid)


def test_an_admission_of_a_server_that_died_stops_counting(
    databases: list[Database], tmp_path: Path
) -> None:
    now = [1_000_000.0]
    alive = container_services(databases[:1], tmp_path, lambda: now[0], max_containers=2)[0]
    # Admitted, and never recorded nor released: the server died in its create.
    dead = AdmissionRepository(databases[1])
    dead.admit("died", 1 << 30, int(now[0]), int(now[0]) + ADMISSION_SECONDS, lambda _: None)
    alive.create(CreateContainer(name="fits"))
    with pytest.raises(TooManyContainers):
        alive.create(CreateContainer(name="over"))
    now[0] += ADMISSION_SECONDS
    assert alive.create(CreateContainer(name="room again")).id
    assert AdmissionRepository(databases[0]).in_flight(int(now[0])) == 0
