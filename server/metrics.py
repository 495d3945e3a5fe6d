"""Prometheus metrics: counters and histograms the code bumps, and gauges read at scrape time.

The metric objects are module-level (one process, one set of counters); each app builds a
registry of its own around them plus a collector that reads the store and the runtime when
/metrics is scraped. Call the small functions below rather than the objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# No *_created series: they double the output and nobody reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

EXEC_OUTCOMES = ("completed", "error", "timeout")
RECONCILE_ACTIONS = ("removed_orphan", "marked_expired", "restarted")

CREATES = Counter(
    "localbox_container_creates",
    "Container creations, by outcome (ok, or the HTTP status class of the refusal).",
    ["outcome"],
    registry=None,
)
CREATE_SECONDS = Histogram(
    "localbox_container_create_seconds",
    "Time to create a container and start its sandbox.",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10, 30),
    registry=None,
)
EXECS = Counter("localbox_execs", "Code executions, by outcome.", ["outcome"], registry=None)
EXEC_SECONDS = Histogram(
    "localbox_exec_seconds",
    "Time from accepting an exec call to its last event.",
    ["outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=None,
)
UPLOAD_BYTES = Counter(
    "localbox_upload_bytes",
    "Request body bytes received by the upload routes.",
    ["route"],
    registry=None,
)
DOWNLOAD_BYTES = Counter(
    "localbox_download_bytes",
    "Response body bytes sent by the content routes.",
    ["route"],
    registry=None,
)
SWEEPS = Counter("localbox_expiry_sweeps", "Expiry sweeps run.", registry=None)
SWEPT = Counter("localbox_containers_expired", "Containers expired by the sweeps.", registry=None)
FILES_SWEPT = Counter(
    "localbox_files_expired", "Files-API files removed by the sweeps.", registry=None
)
RECONCILE = Counter(
    "localbox_reconcile_actions",
    "What reconciliation did: orphan sandboxes removed, records of vanished sandboxes "
    "marked expired, stopped sandboxes restarted.",
    ["action"],
    registry=None,
)
POOL_CLAIMS = Counter(
    "localbox_warm_pool_claims",
    "Container creates by how they got a sandbox: a spare from the warm pool (warm), a spare "
    "that could not be claimed (failed), or none ready (cold).",
    ["outcome"],
    registry=None,
)
HTTP_RESPONSES = Counter(
    "localbox_http_responses",
    "HTTP responses, by method, route template and status code.",
    ["method", "route", "status"],
    registry=None,
)
HTTP_SECONDS = Histogram(
    "localbox_http_request_duration_seconds",
    "Time to answer a request (until the response ends), by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=None,
)
CONNECTIONS = Gauge(
    "localbox_connections", "Open client connections (counted against the cap).", registry=None
)
CONNECTIONS_CLOSED = Counter(
    "localbox_connections_closed",
    "Client connections the server closed on its own: pushed out at the connection cap, "
    "header or body deadline passed, refused because every connection was busy.",
    ["reason"],
    registry=None,
)
CONNECTION_REASONS = ("pushed_out", "header_timeout", "body_timeout", "refused")
MCP_TOOL_CALLS = Counter(
    "localbox_mcp_tool_calls",
    "MCP tool calls, by tool and outcome: ok, error (an error result: refused, not found, "
    "the code failed or timed out) or failed (an unexpected server error).",
    ["tool", "outcome"],
    registry=None,
)
MCP_TOOL_OUTCOMES = ("ok", "error", "failed")
_OWN = (
    CONNECTIONS,
    CONNECTIONS_CLOSED,
    CREATES,
    CREATE_SECONDS,
    EXECS,
    EXEC_SECONDS,
    UPLOAD_BYTES,
    DOWNLOAD_BYTES,
    SWEEPS,
    SWEPT,
    FILES_SWEPT,
    RECONCILE,
    POOL_CLAIMS,
    HTTP_RESPONSES,
    HTTP_SECONDS,
    MCP_TOOL_CALLS,
)
for _outcome in EXEC_OUTCOMES:
    EXECS.labels(_outcome)
for _action in RECONCILE_ACTIONS:
    RECONCILE.labels(_action)
CREATES.labels("ok")
for _outcome in ("warm", "failed", "cold"):
    POOL_CLAIMS.labels(_outcome)
for _reason in CONNECTION_REASONS:
    CONNECTIONS_CLOSED.labels(_reason)


def observe_exec(outcome: str, seconds: float) -> None:
    """One exec call ended: outcome is its status (completed, error, timeout)."""
    EXECS.labels(outcome).inc()
    EXEC_SECONDS.labels(outcome).observe(seconds)


def observe_create(outcome: str, seconds: float) -> None:
    CREATES.labels(outcome).inc()
    if outcome == "ok":
        CREATE_SECONDS.observe(seconds)


def count_upload(route: str, nbytes: int) -> None:
    UPLOAD_BYTES.labels(route).inc(nbytes)


def count_download(route: str, nbytes: int) -> None:
    DOWNLOAD_BYTES.labels(route).inc(nbytes)


def observe_sweep(expired: int, files_expired: int = 0) -> None:
    SWEEPS.inc()
    SWEPT.inc(expired)
    FILES_SWEPT.inc(files_expired)


def count_pool_claim(outcome: str) -> None:
    POOL_CLAIMS.labels(outcome).inc()


def count_reconcile(action: str) -> None:
    RECONCILE.labels(action).inc()


def connection_opened() -> None:
    CONNECTIONS.inc()


def connection_gone() -> None:
    CONNECTIONS.dec()


def connection_closed(reason: str) -> None:
    """The server closed a connection on its own (reason: one of CONNECTION_REASONS)."""
    CONNECTIONS_CLOSED.labels(reason).inc()


def declare_mcp_tools(tools: Iterable[str]) -> None:
    """Show every MCP tool's series from the start, at zero."""
    for tool in tools:
        for outcome in MCP_TOOL_OUTCOMES:
            MCP_TOOL_CALLS.labels(tool, outcome)


def count_mcp_tool(tool: str, outcome: str) -> None:
    """One MCP tool call ended (outcome: one of MCP_TOOL_OUTCOMES)."""
    MCP_TOOL_CALLS.labels(tool, outcome).inc()


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_RESPONSES.labels(method, route, str(status)).inc()
    HTTP_SECONDS.labels(method, route).observe(seconds)


@dataclass(frozen=True)
class Snapshot:
    """What the store and the runtime hold right now."""

    containers: dict[str, int] = field(default_factory=dict)
    sandboxes: int | None = None
    """None when the engine does not answer."""
    memory_limit_bytes: int = 0
    memory_budget_bytes: int = 0
    memory_available_bytes: int = 0
    min_free_memory_bytes: int = 0
    files_bytes: int = 0
    max_files_bytes: int = 0
    disk_free_bytes: int = 0
    min_free_disk_bytes: int = 0
    max_containers: int = 0
    warm_pool_ready: int = 0
    warm_pool_size: int = 0


class StateCollector(Collector):
    """Gauges read at scrape time, so they are never stale or double-counted."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        snap = self._snapshot()
        containers = GaugeMetricFamily(
            "localbox_containers", "Containers in the store, by status.", labels=["status"]
        )
        for status in sorted({"running", "expired", *snap.containers}):
            containers.add_metric([status], snap.containers.get(status, 0))
        yield containers
        yield GaugeMetricFamily(
            "localbox_docker_up",
            "1 when the sandbox engine answers.",
            value=0 if snap.sandboxes is None else 1,
        )
        if snap.sandboxes is not None:
            yield GaugeMetricFamily(
                "localbox_sandboxes", "Sandboxes this server has on the engine.", snap.sandboxes
            )
        yield GaugeMetricFamily(
            "localbox_memory_limit_bytes",
            "Sum of the running containers' memory limits.",
            snap.memory_limit_bytes,
        )
        yield GaugeMetricFamily(
            "localbox_memory_budget_bytes",
            "LOCALBOX_MEMORY_BUDGET: what that sum may reach (0: no such budget).",
            snap.memory_budget_bytes,
        )
        yield GaugeMetricFamily(
            "localbox_memory_available_bytes",
            "Memory the host has free for new sandboxes (MemAvailable within cgroup limits).",
            snap.memory_available_bytes,
        )
        yield GaugeMetricFamily(
            "localbox_min_free_memory_bytes",
            "LOCALBOX_MIN_FREE_MEMORY: creates are refused while less than this is available.",
            snap.min_free_memory_bytes,
        )
        yield GaugeMetricFamily(
            "localbox_files_bytes", "Bytes held by the Files API.", snap.files_bytes
        )
        yield GaugeMetricFamily(
            "localbox_max_files_bytes",
            "LOCALBOX_MAX_FILES_BYTES: what the Files API may hold.",
            snap.max_files_bytes,
        )
        yield GaugeMetricFamily(
            "localbox_disk_free_bytes",
            "Free space on the fullest disk that holds localbox's data or its upload spool.",
            snap.disk_free_bytes,
        )
        yield GaugeMetricFamily(
            "localbox_min_free_disk_bytes",
            "LOCALBOX_MIN_FREE_DISK: uploads and creates are refused below this free space.",
            snap.min_free_disk_bytes,
        )
        yield GaugeMetricFamily(
            "localbox_max_containers",
            "LOCALBOX_MAX_CONTAINERS: running containers allowed at once.",
            snap.max_containers,
        )
        yield GaugeMetricFamily(
            "localbox_warm_pool_ready",
            "Spare sandboxes started, warmed and ready for a create to claim.",
            snap.warm_pool_ready,
        )
        yield GaugeMetricFamily(
            "localbox_warm_pool_size", "LOCALBOX_WARM_POOL: the spares wanted.", snap.warm_pool_size
        )

    def describe(self) -> Iterator[Metric]:
        return iter(())


def build_registry(snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry with localbox's metrics, the state gauges and the process's own figures."""
    registry = CollectorRegistry()
    for metric in _OWN:
        registry.register(metric)
    registry.register(StateCollector(snapshot))
    ProcessCollector(registry=registry)
    return registry


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text format every Prometheus reads; localbox's names need none of 1.0.0's escaping."""


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition format and its content type."""
    return generate_latest(registry), CONTENT_TYPE
