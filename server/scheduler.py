"""APScheduler jobs that call the services on a schedule; no logic of their own."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler

from server import metrics
from server.runtime import SandboxRuntimeError
from server.services.containers import ContainerService
from server.services.files import FileService

log = logging.getLogger("localbox.scheduler")


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
    ) -> None:
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
        try:
            containers = self._containers.expire_due()
        except Exception:
            log.exception("container expiry sweep failed")
        try:
            files = self._files.expire_due()
        except Exception:
            log.exception("file expiry sweep failed")
        try:
            self._files.keep_reserve()  # room freed meanwhile holds the reserve again
        except Exception:
            log.exception("could not make the disk reserve")
        metrics.observe_sweep(len(containers), len(files))

    def _reconcile(self) -> None:
        # Each half runs even when the other fails: a Docker outage must not keep leftovers.
        try:
            self._containers.reconcile()
        except SandboxRuntimeError as exc:
            log.warning("reconcile skipped: %s", exc)
        except Exception:
            log.exception("reconcile failed")
        try:
            self._files.reconcile()
        except Exception:
            log.exception("file reconcile failed")
