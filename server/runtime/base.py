"""The SandboxRuntime protocol: everything the services need from a sandbox, and its errors."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal, Protocol

SandboxState = Literal["running", "stopped", "missing"]


class SandboxRuntimeError(Exception):
    """A sandbox operation failed."""


class RuntimeUnavailable(SandboxRuntimeError):
    """The engine behind the runtime (the Docker daemon) does not answer."""


class SandboxNotFound(SandboxRuntimeError):
    """The sandbox does not exist (any more)."""


class SandboxFileNotFound(SandboxRuntimeError):
    """The sandbox has no file at that path."""


@dataclass(frozen=True)
class EgressSecret:
    """A secret the egress proxy puts in place of placeholder, on requests to domain only."""

    domain: str
    name: str
    """The environment variable that holds the placeholder in the sandbox."""
    placeholder: str
    value: str = field(repr=False)


@dataclass(frozen=True)
class EgressPolicy:
    """A sandbox that may reach these domains (and their subdomains) through the egress proxy."""

    allowed_domains: tuple[str, ...]
    """Lower-case host names, each optionally with ":port" for a port besides 80 and 443."""
    secrets: tuple[EgressSecret, ...] = ()


@dataclass(frozen=True)
class SandboxSpec:
    container_id: str
    memory_bytes: int
    egress: EgressPolicy | None = None
    """None: no network at all."""


@dataclass(frozen=True)
class SandboxInfo:
    container_id: str
    state: SandboxState
    created_at: float


@dataclass(frozen=True)
class SpareInfo:
    """A spare sandbox: created and started ahead of need, owned by no container yet."""

    spare_id: str
    state: SandboxState
    created_at: float
    replica: str = ""
    """The server process (of several sharing one data dir) that made it and owns it."""


@dataclass(frozen=True)
class SandboxFile:
    """A regular file under the sandbox's data directory; path is relative to it."""

    path: str
    bytes: int
    mtime: float


@dataclass(frozen=True)
class StagedFile:
    """Bytes written for path under a temporary name in path's directory, not yet in place:
    commit_file puts them there, delete_file(temp) discards them. Temporaries have names
    reserved for them (see is_reserved_name) that list_files and the agent never report."""

    path: str
    temp: str
    size: int


RESERVED_PREFIX = ".localbox-upload-"
"""Names that start with this and go on with 32 lowercase hex digits belong to uploads in
progress (the sandbox's file helper, localbox_agent/fileops.py, makes and hides them)."""


def is_reserved_name(name: str) -> bool:
    """Whether a file name (one component) is reserved for an upload's temporary."""
    digits = name[len(RESERVED_PREFIX) :]
    return (
        name.startswith(RESERVED_PREFIX)
        and len(digits) == 32
        and all(c in "0123456789abcdef" for c in digits)
    )


@dataclass(frozen=True)
class ExecRequest:
    id: str
    code: str
    language: Literal["python", "bash"]
    timeout: float
    max_output: int
    """Bytes per stream (stdout, stderr); the rest is counted, not sent."""
    disk_limit: int
    max_image_bytes: int = 16 << 20
    """Base64 bytes of images per call."""
    max_error_bytes: int = 64 << 10
    """Bytes of an error's value, and of its traceback."""
    silent: bool = False
    """Run without a trace in the interpreter's history or execution count (warm-ups)."""


@dataclass(frozen=True)
class OutputChunk:
    stream: Literal["stdout", "stderr"]
    text: str


@dataclass(frozen=True)
class ImageOutput:
    media_type: str
    data: str
    """Base64."""


@dataclass(frozen=True)
class ExecError:
    name: str
    value: str
    traceback: str = ""


@dataclass(frozen=True)
class ExecDone:
    status: Literal["completed", "error", "timeout"]
    error: ExecError | None
    state_preserved: bool
    files: list[SandboxFile] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    truncated: dict[str, int] = field(default_factory=dict)
    exit_code: int | None = None
    duration_ms: int = 0
    files_incomplete: bool = False
    """More files changed than one report lists: list the sandbox's files to know them all."""


ExecEvent = OutputChunk | ImageOutput | ExecDone


class SandboxRuntime(Protocol):
    """A place to run one sandbox per API container. Methods block; call them off the loop."""

    sandbox_runtime: str
    """The engine runtime sandboxes run under (LOCALBOX_SANDBOX_RUNTIME)."""

    def ping(self) -> None:
        """Return when the engine answers; raise RuntimeUnavailable otherwise."""

    def preflight(self) -> None:
        """Check, before serving, that sandboxes can be made as configured; raise
        RuntimeMisconfigured (saying what to do) if not. An engine that does not answer
        yet is not an error here."""

    def create(self, spec: SandboxSpec) -> None:
        """Create and start the sandbox with its own /mnt/data storage."""

    def destroy(self, container_id: str) -> None:
        """Remove the sandbox and its storage; a missing sandbox is not an error."""

    def start(self, container_id: str) -> None:
        """Start a stopped sandbox again."""

    def list_sandboxes(self) -> list[SandboxInfo]:
        """Every sandbox this server instance manages for a container (spares excluded)."""

    def create_spare(self, spare_id: str, memory_bytes: int) -> None:
        """Create and start a sandbox that no container owns yet; the other methods take
        spare_id in place of a container id until it is claimed."""

    def list_spares(self) -> list[SpareInfo]:
        """Every spare sandbox of this server instance."""

    def resizes_memory(self) -> bool:
        """Whether claim_spare can change a running spare's memory limit (gVisor cannot: a
        create with another limit than the pool's then starts a sandbox of its own)."""

    def cpu_usage(self, container_id: str) -> float | None:
        """CPU seconds the sandbox used so far (a counter); None where it cannot be read."""

    def set_cpu_low(self, container_id: str, low: bool) -> bool:
        """Weigh the sandbox least for the CPU (it then gets what no other wants), or as made
        again; False where that cannot be done."""

    def claim_spare(self, spare_id: str, spec: SandboxSpec) -> None:
        """Make the spare the sandbox of spec.container_id, with spec's memory limit; from
        then on it is addressed by that container id only. SandboxRuntimeError if the spare
        is gone or does not answer (the caller then creates a sandbox instead)."""

    def prune_volumes(self, grace_seconds: float) -> int:
        """Remove this instance's storage that no sandbox uses any more (older than grace);
        return how many went."""

    def install_skills(self, container_id: str, archive: Iterator[bytes]) -> None:
        """Unpack a tar stream into the running sandbox's skills directory (/mnt/skills),
        which user code can read but not change, and which outlives sandbox restarts."""

    def reconcile_egress(self, container_ids: Collection[str], grace_seconds: float) -> None:
        """Make the egress side agree with these allowlisted sandboxes: the proxy runs when
        there is any and reaches each one's network; networks and policies of others go once
        they are grace_seconds old (a create may be in flight)."""

    def stage_file(self, container_id: str, path: str, source: BinaryIO, size: int) -> StagedFile:
        """Write size bytes from source to a new temporary file in the directory of path
        (relative to /mnt/data; missing directories are made); the file at path, if any, is
        not touched. Nothing is left behind when it fails."""

    def commit_file(
        self,
        container_id: str,
        staged: StagedFile,
        *,
        size: int | None = None,
        tail: bytes = b"",
    ) -> None:
        """Rename the staged file to its path, replacing whatever is there in one step, once
        it is checked to hold staged.size bytes; with size given, it is first made size bytes
        long, its last bytes tail, instead (a write streamed before its exact size was known).
        SandboxFileNotFound when the temporary is gone or no regular file (code in the sandbox
        may touch it) or a directory is in the way; the temporary is removed then."""

    def stop_stray_calls(self, container_id: str) -> None:
        """Stop whatever call still runs in the sandbox from before this process (its caller
        is gone: a server killed mid-call); the interpreter's state is kept. Done once per
        sandbox and process; later calls of this are no-ops."""

    def remove_stale_uploads(self, container_id: str, grace_seconds: float) -> int:
        """Remove the temporaries that uploads left in the sandbox's /mnt/data when they were
        cut off (a server killed mid-write), except those being written by this process and
        those written to within grace_seconds (0 only at start-up, before serving); return how
        many went. Cheap to call often: a sandbox once swept clean is looked at again only when
        this process may have left one."""

    def open_file(self, container_id: str, path: str) -> tuple[int, Iterator[bytes]]:
        """The size of the regular file at path and an iterator over its bytes, streamed.
        SandboxFileNotFound unless path is a regular file reached through no symlink."""

    def delete_file(self, container_id: str, path: str) -> None:
        """Remove the file at path; a missing file is not an error."""

    def list_files(self, container_id: str) -> list[SandboxFile]:
        """Every regular file under /mnt/data, sub-folders included, symlinks not followed."""

    def disk_usage(self, container_id: str) -> int:
        """Bytes allocated under /mnt/data (blocks, not apparent sizes)."""
        ...

    def execute(self, container_id: str, request: ExecRequest) -> Iterator[ExecEvent]:
        """Run code in the sandbox's agent; yield output as it comes, then one ExecDone."""
        ...

    def cancel(self, container_id: str, request_id: str) -> None:
        """Ask the agent to stop the running call request_id (its generator then ends with an
        ExecDone soon); a call that is not running is not an error."""
