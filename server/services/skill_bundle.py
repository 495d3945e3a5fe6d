"""Skill bundles: read and check an upload (zip or directory parts), write the normalised zip
kept per version, and stream the tar that installs skills into a sandbox.

Everything here treats its input as hostile: paths are checked before anything is written
(no absolute paths, no '..', no symlinks or special files), and the number of files and the
unpacked bytes are capped both as declared and as actually read (zip bombs).
"""

from __future__ import annotations

import io
import json
import re
import stat
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

import yaml

from server.errors import InvalidSkill, SkillTooLarge

SKILL_FILE = "SKILL.md"
SKILLS_ROOT = "/mnt/skills"
NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_NAME = 64
MAX_DESCRIPTION = 1024
MAX_PATH = 1024
MAX_FRONT_MATTER = 64 << 10
CHUNK = 1 << 20
ZIP_OVERHEAD = 4 << 10
"""Bytes of zip headers allowed per file (local and central headers, name, extra fields)."""
PARAM = "files"

Opener = Callable[[], AbstractContextManager[IO[bytes]]]
Entry = tuple[str, int, bool, Opener]
"""A file of an upload: path, declared size, executable, how to read it."""


@dataclass(frozen=True)
class BundleLimits:
    max_files: int
    max_bytes: int
    """Unpacked bytes of all files together."""


@dataclass(frozen=True)
class BundleFile:
    path: str
    """Relative to the bundle's top-level folder."""
    size: int
    executable: bool
    open: Opener


@dataclass(frozen=True)
class Bundle:
    """A checked skill: one top-level folder holding SKILL.md, and the files in it."""

    folder: str
    name: str
    description: str
    files: list[BundleFile]

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class Part:
    """One uploaded file of a directory upload: its relative path and its bytes."""

    path: str
    file: BinaryIO
    size: int


@dataclass(frozen=True)
class Installed:
    """A skill to install into a sandbox, under /mnt/skills/<name>/."""

    name: str
    description: str
    bundle: Bundle


def check_name(name: object, where: str, param: str = PARAM) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidSkill(f"{where} has no 'name'.", param)
    if len(name) > MAX_NAME or NAME.match(name) is None:
        raise InvalidSkill(
            f"{where}: 'name' {name[:100]!r} is not a valid skill name: use 1 to {MAX_NAME} "
            "lowercase letters, digits and single hyphens (not at either end), as the Agent "
            "Skills format asks; it becomes the skill's folder name.",
            param,
        )
    return name


def check_description(description: object, where: str, param: str = PARAM) -> str:
    if not isinstance(description, str) or not description.strip():
        raise InvalidSkill(f"{where} has no 'description'.", param)
    if len(description) > MAX_DESCRIPTION:
        raise InvalidSkill(
            f"{where}: 'description' is {len(description)} characters long; the most is "
            f"{MAX_DESCRIPTION}.",
            param,
        )
    return description.strip()


def _parts_of(raw: str) -> list[str]:
    """The components of an archive path, or InvalidSkill when it could leave the folder."""
    shown = raw[:200]
    if any(ord(ch) < 32 for ch in raw) or len(raw) > MAX_PATH:
        raise InvalidSkill(f"The path {shown!r} is too long or holds control characters.", PARAM)
    if "\\" in raw:
        raise InvalidSkill(f"The path {shown!r} holds a backslash; use '/' between folders.", PARAM)
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise InvalidSkill(
            f"The path {shown!r} is absolute; paths must be relative to the skill folder.",
            PARAM,
        )
    parts = raw.removesuffix("/").split("/")
    if ".." in parts:
        raise InvalidSkill(
            f"The path {shown!r} contains '..'; paths must stay inside the skill folder.", PARAM
        )
    if any(p in ("", ".") for p in parts):
        raise InvalidSkill(f"The path {shown!r} has an empty or '.' component.", PARAM)
    return parts


def _assemble(entries: Sequence[Entry], limits: BundleLimits) -> Bundle:
    """Check (path, size, executable, opener) entries as one skill folder; read SKILL.md."""
    if not entries:
        raise InvalidSkill("The upload holds no files; a skill needs at least SKILL.md.", PARAM)
    if len(entries) > limits.max_files:
        raise SkillTooLarge(
            f"The skill holds {len(entries)} files; the most is {limits.max_files} "
            "(LOCALBOX_SKILL_MAX_FILES).",
            PARAM,
        )
    total = sum(size for _, size, _, _ in entries)
    if total > limits.max_bytes:
        raise SkillTooLarge(
            f"The skill's files add up to {total} bytes unpacked; the most is "
            f"{limits.max_bytes} (LOCALBOX_SKILL_MAX_BYTES).",
            PARAM,
        )
    split = [(_parts_of(path), size, ex, op) for path, size, ex, op in entries]
    loose = [p for p, *_ in split if len(p) == 1]
    if loose:
        raise InvalidSkill(
            f"The file {loose[0][0]!r} is not inside a folder: a skill is exactly one "
            "top-level folder holding SKILL.md and the skill's other files.",
            PARAM,
        )
    tops = sorted({p[0] for p, *_ in split})
    if len(tops) > 1:
        shown = ", ".join(repr(t) for t in tops[:5])
        raise InvalidSkill(
            f"The upload has {len(tops)} top-level folders ({shown}); a skill is exactly one "
            "top-level folder holding SKILL.md.",
            PARAM,
        )
    folder = tops[0]
    files: dict[str, BundleFile] = {}
    for parts, size, executable, opener in split:
        rel = "/".join(parts[1:])
        if rel in files:
            raise InvalidSkill(f"The path '{folder}/{rel}' appears twice.", PARAM)
        files[rel] = BundleFile(rel, size, executable, opener)
    for rel in files:  # a path that is a file and a folder at once could not be unpacked
        for i in range(rel.count("/")):
            prefix = rel.rsplit("/", i + 1)[0]
            if prefix in files:
                raise InvalidSkill(f"'{folder}/{prefix}' is both a file and a folder.", PARAM)
    manifests = sorted(rel for rel in files if rel.rsplit("/", 1)[-1].lower() == "skill.md")
    if not manifests:
        raise InvalidSkill(
            f"No {SKILL_FILE} found: a skill's top-level folder must hold a {SKILL_FILE} whose "
            "YAML front matter gives its name and description.",
            PARAM,
        )
    if len(manifests) > 1:
        shown = ", ".join(f"'{folder}/{m}'" for m in manifests[:5])
        raise InvalidSkill(
            f"Found {len(manifests)} {SKILL_FILE} files ({shown}); a skill has exactly one, "
            f"at '{folder}/{SKILL_FILE}'.",
            PARAM,
        )
    if manifests[0] != SKILL_FILE:
        raise InvalidSkill(
            f"'{folder}/{manifests[0]}' must be named {SKILL_FILE} and sit directly in the "
            "top-level folder.",
            PARAM,
        )
    name, description = _front_matter(files[SKILL_FILE], f"{folder}/{SKILL_FILE}")
    return Bundle(folder, name, description, sorted(files.values(), key=lambda f: f.path))


@contextmanager
def _damaged_zip() -> Iterator[None]:
    """A member that cannot be decompressed (bad data, CRC, unknown method) is the client's
    problem: a 400, not a 500."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError) as exc:
        raise InvalidSkill(f"The zip archive is damaged: {exc}.", PARAM) from None


def _front_matter(manifest: BundleFile, shown: str) -> tuple[str, str]:
    with _damaged_zip(), manifest.open() as source:
        head = source.read(MAX_FRONT_MATTER)
    text = head.decode("utf-8", "replace").removeprefix("\ufeff")
    lines = text.splitlines()
    end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), None)
    if not lines or lines[0].strip() != "---" or end is None:
        raise InvalidSkill(
            f"{shown} has no YAML front matter: it must start with a line '---', then "
            "'name: ...' and 'description: ...', then a line '---'.",
            PARAM,
        )
    try:
        meta = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as exc:
        problem = str(getattr(exc, "problem", None) or "it does not parse")
        raise InvalidSkill(f"{shown}'s front matter is not valid YAML: {problem}.", PARAM) from None
    if not isinstance(meta, dict):
        raise InvalidSkill(
            f"{shown}'s front matter must be a YAML mapping with 'name' and 'description'.",
            PARAM,
        )
    where = f"{shown}'s front matter"
    return check_name(meta.get("name"), where), check_description(meta.get("description"), where)


def read_zip(archive: zipfile.ZipFile, limits: BundleLimits) -> Bundle:
    """Check a zip's members as one skill folder; the Bundle reads from the open archive."""
    entries: list[Entry] = []
    for info in archive.infolist():
        _parts_of(info.filename)
        mode = info.external_attr >> 16 if info.create_system == 3 else 0
        kind = stat.S_IFMT(mode)
        if stat.S_ISLNK(mode):
            raise InvalidSkill(
                f"The zip entry {info.filename[:200]!r} is a symbolic link; skills may hold "
                "regular files only.",
                PARAM,
            )
        if kind and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            raise InvalidSkill(
                f"The zip entry {info.filename[:200]!r} is not a regular file.", PARAM
            )
        if info.flag_bits & 0x1:
            raise InvalidSkill(f"The zip entry {info.filename[:200]!r} is encrypted.", PARAM)
        if info.is_dir():
            continue
        if len(entries) >= limits.max_files:
            raise SkillTooLarge(
                f"The zip holds more than {limits.max_files} files (LOCALBOX_SKILL_MAX_FILES).",
                PARAM,
            )
        entries.append(
            (info.filename, info.file_size, bool(mode & 0o111), _zip_opener(archive, info))
        )
    return _assemble(entries, limits)


def _zip_opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Opener:
    return lambda: archive.open(info)


def open_zip(source: BinaryIO | bytes, limits: BundleLimits) -> zipfile.ZipFile:
    """Open an uploaded zip, or InvalidSkill when it is none.

    A zip larger than any bundle within the limits could be (all bytes stored, generous
    headers) is refused unopened: its central directory is read whole into memory."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    most = limits.max_bytes + limits.max_files * ZIP_OVERHEAD + (64 << 10)
    if size > most:
        raise SkillTooLarge(
            f"The zip is {size} bytes; a skill within LOCALBOX_SKILL_MAX_BYTES "
            f"({limits.max_bytes}) and LOCALBOX_SKILL_MAX_FILES ({limits.max_files}) is never "
            f"larger than {most}.",
            PARAM,
        )
    try:
        return zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise InvalidSkill("The upload is not a valid zip archive.", PARAM) from None


def is_zip(filename: str | None, file: BinaryIO) -> bool:
    """A single upload is a zip when it says so by name or starts like one."""
    head = file.read(4)
    file.seek(0)
    return (filename or "").lower().endswith(".zip") or head == b"PK\x03\x04"


def read_parts(parts: Sequence[Part], limits: BundleLimits) -> Bundle:
    """Check a directory upload (one file per part, named by its relative path)."""
    entries = [(p.path, p.size, False, _part_opener(p.file)) for p in parts]
    return _assemble(entries, limits)


def _part_opener(file: BinaryIO) -> Opener:
    def opener() -> AbstractContextManager[IO[bytes]]:
        file.seek(0)
        return nullcontext(file)  # the upload's spooled file is closed by its owner

    return opener


def _copy_exact(source: IO[bytes], size: int, what: str) -> Iterator[bytes]:
    """Exactly size bytes of source; InvalidSkill if it holds fewer or more (a lying zip)."""
    left = size
    while left > 0:
        chunk = source.read(min(CHUNK, left))
        if not chunk:
            raise InvalidSkill(f"{what} is shorter than its declared size.", PARAM)
        left -= len(chunk)
        yield chunk
    if source.read(1):
        raise InvalidSkill(f"{what} is longer than its declared size.", PARAM)


def write_zip(bundle: Bundle, target: Path) -> None:
    """Write the bundle as a normalised zip: '<folder>/<path>' members, regular files only."""
    stamp = time.localtime()[:6]
    with _damaged_zip(), zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for f in bundle.files:
            info = zipfile.ZipInfo(f"{bundle.folder}/{f.path}", date_time=stamp)
            info.create_system = 3
            info.external_attr = (0o100755 if f.executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = f.size
            with f.open() as source, out.open(info, "w") as sink:
                for chunk in _copy_exact(source, f.size, f"'{bundle.folder}/{f.path}'"):
                    sink.write(chunk)


def index_json(skills: Sequence[Installed]) -> bytes:
    """/mnt/skills/index.json: what is installed, for code and agents to discover."""
    return json.dumps(
        [
            {"name": s.name, "description": s.description, "path": f"{SKILLS_ROOT}/{s.name}"}
            for s in skills
        ],
        indent=2,
    ).encode()


def install_archive(skills: Sequence[Installed]) -> Iterator[bytes]:
    """A tar stream of the skills, each under '<name>/', and index.json: root-owned, not
    writable by anyone else. Streams file by file from the bundles."""
    now = int(time.time())

    def header(name: str, kind: bytes, size: int, mode: int) -> bytes:
        info = tarfile.TarInfo(name)
        info.type, info.size, info.mode, info.mtime = kind, size, mode, now
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")

    def file(name: str, size: int, mode: int, chunks: Iterator[bytes]) -> Iterator[bytes]:
        yield header(name, tarfile.REGTYPE, size, mode)
        yield from chunks
        yield b"\0" * ((tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE) % tarfile.BLOCKSIZE)

    for skill in skills:
        folders = {skill.name}
        for f in skill.bundle.files:
            parts = f.path.split("/")
            folders.update(f"{skill.name}/{'/'.join(parts[:i])}" for i in range(1, len(parts)))
        for folder in sorted(folders):
            yield header(folder, tarfile.DIRTYPE, 0, 0o755)
        for f in skill.bundle.files:
            with f.open() as source:
                name = f"{skill.name}/{f.path}"
                mode = 0o755 if f.executable else 0o644
                yield from file(name, f.size, mode, _copy_exact(source, f.size, f"'{name}'"))
    index = index_json(skills)
    yield from file("index.json", len(index), 0o644, iter([index]))
    yield b"\0" * (2 * tarfile.BLOCKSIZE)
