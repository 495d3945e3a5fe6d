"""APScheduler jobs that call the services on a schedule; no logic of their own."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler

from server import metrics
from server.runtime import SandboxRuntimeError
from server.services.containers import ContainerService
from server.services.coordination import Coordination, Solo
from server.services.files import FileService

log = logging.getLogger("localbox.scheduler")

SHARED_FILES_GRACE = 600.0


class Scheduler:
    """Expiry sweeps (containers, then files) every few seconds; reconciliation with the
    runtime on a slow schedule."""

    def __init__(
        self,
        containers: ContainerService,
        files: FileService,
        *,
        sweep_seconds: float,
        reconcile_seconds: float,
        coordination: Coordination | None = None,
    ) -> None:
        self._coordination: Coordination = coordination or Solo("")
        self._containers = containers
        self._files = files
        self._scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        )
        self._scheduler.add_job(
            self._sweep,
            "interval",
            seconds=sweep_seconds,
            id="expiry",
            next_run_time=datetime.now(),
        )
        self._scheduler.add_job(
            self._reconcile, "interval", seconds=reconcile_seconds, id="reconcile"
        )

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        self._scheduler.shutdown(wait=True)

    def _sweep(self) -> None:
        # Each half runs even when the other fails: a Docker outage must not keep files.
        containers: Sequence[str] = ()
        files: Sequence[str] = ()
        if not self._coordination.leading():  # another replica sweeps
            self._keep_reserve()
            return
        try:
            containers = self._containers.expire_due()
        except Exception:
            log.exception("container expiry sweep failed")
        try:
            files = self._files.expire_due()
        except Exception:
            log.exception("file expiry sweep failed")
        self._keep_reserve()
        metrics.observe_sweep(len(containers), len(files))

    def _keep_reserve(self) -> None:
        try:
            self._files.keep_reserve()  # room freed meanwhile holds the reserve again
        except Exception:
            log.exception("could not make the disk reserve")

    def _reconcile(self) -> None:
        # Each half runs even when the other fails: a Docker outage must not keep leftovers.
        try:
            self._containers.reconcile()
        except SandboxRuntimeError as exc:
            log.warning("reconcile skipped: %s", exc)
        except Exception:
            log.exception("reconcile failed")
        if not self._coordination.leading():
            return
        # Other replicas may be writing uploads into the shared data dir: only what none
        # has touched for a while is theirs no longer.
        alone = self._coordination.alive() == {self._coordination.replica_id}
        try:
            self._files.reconcile(None if alone else SHARED_FILES_GRACE)
        except Exception:
            log.exception("file reconcile failed")
