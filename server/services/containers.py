"""ContainerService: create, list, retrieve and delete containers and their sandboxes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial

from server import metrics
from server.domain import MEMORY_LIMITS, Container, Cursor, File, Order, Page, PageQuery
from server.errors import (
    ApiError,
    ContainerNotFound,
    InvalidRequest,
    NotSupported,
    ServiceUnavailable,
)
from server.ids import Clock, new_container_id
from server.runtime import (
    EgressPolicy,
    RuntimeUnavailable,
    SandboxRuntime,
    SandboxRuntimeError,
    SandboxSpec,
)
from server.services.activity import Activity
from server.services.capacity import Capacity
from server.services.container_files import ContainerFileService
from server.services.coordination import Coordination, Solo, exec_key
from server.services.errors import runtime_errors
from server.services.network import SecretRequest, egress_policy
from server.services.skill_bundle import Installed, install_archive
from server.services.skills import ContainerSkill, SkillService
from server.services.warm_pool import WarmPool
from server.store import DELETING, ContainerRepository, StorageFull

log = logging.getLogger("localbox.containers")


@dataclass(frozen=True)
class CreateContainer:
    """What a client asks for when it creates a container (already shape-validated)."""

    name: str
    minutes: int | None = None
    memory_limit: str | None = None
    network_policy_type: str = "disabled"
    allowed_domains: list[str] = field(default_factory=list)
    domain_secrets: list[SecretRequest] = field(default_factory=list)
    file_ids: list[str] = field(default_factory=list)
    skills: list[ContainerSkill] = field(default_factory=list)


class ContainerService:
    def __init__(
        self,
        repo: ContainerRepository,
        files: ContainerFileService,
        runtime: SandboxRuntime,
        activity: Activity,
        clock: Clock,
        *,
        default_minutes: int = 20,
        max_minutes: int = 10080,
        capacity: Capacity | None = None,
        pool: WarmPool | None = None,
        skills: SkillService | None = None,
        coordination: Coordination | None = None,
    ) -> None:
        self._repo = repo
        self._coordination: Coordination = coordination or Solo("")
        self._files = files
        self._runtime = runtime
        self._activity = activity
        self._clock = clock
        self._default_minutes = default_minutes
        self._max_minutes = max_minutes
        self._capacity = capacity
        self._pool = pool
        self._creating: set[str] = set()
        """Containers whose sandbox exists before their record: reconcile spares them."""
        self._deleting: set[str] = set()
        """Containers whose delete runs in a request: reconcile leaves them to it."""
        self._creating_lock = threading.Lock()
        self._skills = skills

    def _now(self) -> int:
        return int(self._clock())

    def create(self, req: CreateContainer) -> Container:
        """Validate the request, admit it within capacity, start a sandbox and record it."""
        with _timed_create():
            return self._create(req)

    def _create(self, req: CreateContainer) -> Container:
        minutes = self._default_minutes if req.minutes is None else req.minutes
        if not 1 <= minutes <= self._max_minutes:
            raise InvalidRequest(
                f"expires_after.minutes must be between 1 and {self._max_minutes}.",
                "expires_after.minutes",
            )
        memory_limit = req.memory_limit or "1g"
        if memory_limit not in MEMORY_LIMITS:
            allowed = ", ".join(f"'{m}'" for m in MEMORY_LIMITS)
            raise InvalidRequest(f"memory_limit must be one of {allowed}.", "memory_limit")
        egress = self._egress(req)
        sources = self._files.resolve_file_ids(req.file_ids)
        with self._prepared_skills(req.skills) as skills:
            return self._start(req, minutes, memory_limit, sources, skills, egress)

    def _prepared_skills(
        self, skills: list[ContainerSkill]
    ) -> AbstractContextManager[list[Installed]]:
        if not skills:
            return nullcontext([])
        if self._skills is None:
            raise NotSupported("skills", "skills")
        return self._skills.prepared(skills)

    def _start(
        self,
        req: CreateContainer,
        minutes: int,
        memory_limit: str,
        sources: list[File],
        skills: list[Installed],
        egress: EgressPolicy | None,
    ) -> Container:
        now = self._now()
        container = Container(
            id=new_container_id(),
            name=req.name,
            created_at=now,
            status="running",
            expires_after_minutes=minutes,
            last_active_at=now,
            memory_limit=memory_limit,
            network_policy_type="allowlist" if egress else "disabled",
            allowed_domains=list(egress.allowed_domains) if egress else [],
        )
        spec = SandboxSpec(
            container_id=container.id, memory_bytes=MEMORY_LIMITS[memory_limit], egress=egress
        )
        slot = self._capacity.container_slot(memory_limit) if self._capacity else nullcontext()
        with slot as admission, self._in_flight(container.id):
            # Spares have no network: an allowlisted sandbox is made for its policy.
            warm = egress is None and self._claim_spare(spec)
            if not warm:
                with runtime_errors("create the sandbox"):
                    self._runtime.create(spec)
            try:
                if admission is None:
                    self._repo.add(container)
                else:
                    admission.record(lambda: self._repo.add(container))
                if skills:
                    with runtime_errors("install the skills"):
                        self._runtime.install_skills(container.id, install_archive(skills))
                self._files.copy_in(container.id, sources)
            except Exception:
                self._repo.delete(container.id)
                self._files.forget(container.id)
                self._runtime.destroy(container.id)
                raise
        log.info(
            "created container %s (%s, %s)", container.id, memory_limit, "warm" if warm else "cold"
        )
        return container

    def _claim_spare(self, spec: SandboxSpec) -> bool:
        """Give the container a spare from the warm pool; False when there is none to give."""
        if self._pool is None or self._pool.size == 0:
            return False
        if spec.memory_bytes != self._pool.memory_bytes and not self._runtime.resizes_memory():
            metrics.count_pool_claim("cold")
            return False
        spare_id = self._pool.take()
        if spare_id is None:
            metrics.count_pool_claim("cold")
            return False
        claimed = False
        try:
            self._runtime.claim_spare(spare_id, spec)
            claimed = True
        except SandboxRuntimeError as exc:
            log.warning("could not claim spare %s, starting a sandbox instead: %s", spare_id, exc)
        finally:
            self._pool.done(spare_id, claimed)
        metrics.count_pool_claim("warm" if claimed else "failed")
        return claimed

    @contextmanager
    def _in_flight(self, container_id: str) -> Iterator[None]:
        with self._creating_lock:
            self._creating.add(container_id)
        try:
            yield
        finally:
            with self._creating_lock:
                self._creating.discard(container_id)

    @staticmethod
    def _egress(req: CreateContainer) -> EgressPolicy | None:
        """The sandbox's egress policy: None (no network at all) unless it is an allowlist.
        Secrets are not kept here: only the egress proxy holds their values."""
        if req.network_policy_type == "disabled":
            return None
        if req.network_policy_type != "allowlist":
            raise InvalidRequest(
                "network_policy.type must be 'disabled' or 'allowlist'.", "network_policy.type"
            )
        return egress_policy(req.allowed_domains, req.domain_secrets)

    def retrieve(self, container_id: str) -> Container:
        """Return the container and mark it active. A container past its deadline has expired
        (whether or not the sweep has removed its sandbox yet): it is answered as expired and
        its deadline stays where it was; one running code is in use, so it is still running."""
        now = self._now()
        busy = bool(self._busy([container_id]))
        container = self._repo.touch(container_id, now, past_deadline=busy)
        if container is None:
            raise ContainerNotFound(container_id)
        return container if busy else container.as_of(now)

    def list(
        self, *, order: Order, limit: int, after: str | None, before: str | None, name: str | None
    ) -> Page[Container]:
        """One page of containers, newest first by default; listing marks nothing active."""
        query = PageQuery(
            order=order,
            limit=limit,
            after=self._cursor(after, "after"),
            before=self._cursor(before, "before"),
        )
        page = self._repo.list_page(query, name=name)
        now = self._now()
        busy = self._busy([c.id for c in page.items])
        page.items = [c if c.id in busy else c.as_of(now) for c in page.items]
        return page

    def _busy(self, container_ids: Sequence[str]) -> set[str]:
        """Those of the containers that run code now, here or in another replica."""
        here = {c for c in container_ids if self._activity.is_busy(c)}
        rest = [c for c in container_ids if c not in here]
        return here | (self._coordination.busy_elsewhere(rest) if rest else set())

    def delete(self, container_id: str) -> None:
        """Remove the sandbox with its files, then the record.

        The record says "deleting" before anything is removed: from then on the container is
        gone for the API, and a delete cut short (a kill, a crash, the engine down) is
        finished by the next reconcile. While the engine is down the delete answers at once
        and the sandbox goes when the engine is back.
        """
        with self._creating_lock:
            self._deleting.add(container_id)
        try:
            if not self._repo.mark_deleting(container_id):
                raise ContainerNotFound(container_id)
            try:
                with runtime_errors("remove the sandbox"):
                    self._runtime.destroy(container_id)
            except ServiceUnavailable:
                log.warning(
                    "deleted container %s; the engine does not answer, so its sandbox is "
                    "removed at the next reconcile",
                    container_id,
                )
                return
            self._forget(container_id)
        finally:
            with self._creating_lock:
                self._deleting.discard(container_id)
        log.info("deleted container %s", container_id)

    def _forget(self, container_id: str) -> None:
        """Drop the records of a container whose sandbox is gone."""
        self._files.forget(container_id)
        self._repo.delete(container_id)

    def expire_due(self) -> Sequence[str]:
        """Expire every running container past last_active_at + minutes: its sandbox, volume
        and file records go; the container stays listed and retrievable as "expired"."""
        now = int(self._clock())
        expired: list[str] = []
        for cid in self._repo.due_ids(now):
            if self._activity.is_busy(cid):
                continue  # code is running in it: it is active
            # The call's turn, held while it expires: no call (of any replica) runs meanwhile.
            with self._coordination.try_hold(exec_key(cid)) as turn:
                if turn is None:
                    continue  # code is running in it, in another replica
                try:
                    if not self._repo.expire_if_due(cid, now):
                        continue  # touched since the query
                    self._files.forget(cid)
                except StorageFull as exc:
                    log.warning("could not expire %s yet: %s", cid, exc)
                    continue
            expired.append(cid)
            try:
                self._runtime.destroy(cid)
            except SandboxRuntimeError as exc:
                # The record says expired; reconcile removes the sandbox once the engine answers.
                log.warning("expired %s but could not remove its sandbox yet: %s", cid, exc)
            log.info("expired container %s", cid)
        return expired

    def reconcile(self, grace_seconds: float = 60.0) -> None:
        """Make sandboxes and records agree: deletes cut short are finished, orphans go, lost
        sandboxes expire, stopped ones restart. Each repair stands alone: one that fails is
        logged and the others go on. SandboxRuntimeError when the engine does not answer.
        Of replicas sharing the data dir, only the leading one does this; the others look
        after their own spares."""
        if not self._coordination.leading():
            if self._pool is not None:
                self._pool.reconcile()
            return
        with self._creating_lock:
            creating = set(self._creating)
            in_request = set(self._deleting)
        deleting = set(self._repo.ids_with_status(DELETING)) - in_request
        finished = 0
        for cid in sorted(deleting):
            if self._repair("finish deleting", self._finish_delete, cid):
                metrics.count_reconcile("finished_delete")
                finished += 1
        # The records first: a record is written only once its sandbox runs, so each of these
        # has a sandbox in the listing unless it was lost. Creates and deletes that begin
        # while the engine lists are taken in afterwards.
        running_ids = set(self._repo.ids_with_status("running"))
        sandboxes = {s.container_id: s for s in self._runtime.list_sandboxes()}
        with self._creating_lock:
            creating |= self._creating
            in_request |= self._deleting
        now = self._clock()
        for cid, sandbox in sandboxes.items():
            if cid not in running_ids:
                if cid in creating or cid in in_request or cid in deleting:
                    continue  # its record is not written yet, or its delete is under way
                record = self._repo.get(cid)
                if record is not None and record.status == "running":
                    continue  # created while the engine was listing
                if now - sandbox.created_at < grace_seconds and record is None:
                    continue  # a create may be in flight in another process
                log.info("removing sandbox %s: no running container owns it", cid)
                if self._repair("remove the sandbox of", self._runtime.destroy, cid):
                    metrics.count_reconcile("removed_orphan")
            elif sandbox.state == "stopped":
                log.info("starting stopped sandbox %s", cid)
                if self._repair("start the sandbox of", self._runtime.start, cid):
                    metrics.count_reconcile("restarted")
            else:
                # At start-up (no grace), calls a killed server left running stop before this
                # one serves; uploads it left half-written go (they were never listed).
                if grace_seconds == 0:
                    self._repair("stop stray calls in", self._runtime.stop_stray_calls, cid)
                self._repair(
                    "remove stale uploads in",
                    partial(self._runtime.remove_stale_uploads, grace_seconds=grace_seconds),
                    cid,
                )
        for cid in running_ids - sandboxes.keys():
            record = self._repo.get(cid)
            if cid in in_request or record is None or record.status != "running":
                continue  # deleted or expired while the engine was listing
            log.warning("sandbox of container %s vanished; marking it expired", cid)
            if self._repair("mark expired", self._lost, cid):
                metrics.count_reconcile("marked_expired")
        self._runtime.reconcile_egress(self._repo.running_allowlisted_ids(), grace_seconds)
        if self._pool is not None:
            self._pool.reconcile(alive=self._coordination.alive())
        # Unused volumes go once a minute old (a create may be in flight), or at once when a
        # delete cut short was finished at start-up: a claimed spare's volumes are named for
        # the spare, so only this sweep finds those the kill left.
        volume_grace = grace_seconds if finished else max(grace_seconds, 60.0)
        self._runtime.prune_volumes(grace_seconds=volume_grace)

    def _finish_delete(self, container_id: str) -> None:
        self._runtime.destroy(container_id)
        self._forget(container_id)
        log.info("finished deleting container %s", container_id)

    def _lost(self, container_id: str) -> None:
        self._repo.set_status(container_id, "expired")
        self._files.forget(container_id)

    @staticmethod
    def _repair(what: str, action: Callable[[str], object], container_id: str) -> bool:
        """Run one repair; a failure is logged, not raised, so that the others still run
        (and a start-up never fails on one bad record). An engine that stopped answering
        ends the pass (SandboxRuntimeError)."""
        try:
            action(container_id)
            return True
        except RuntimeUnavailable:
            raise
        except (SandboxRuntimeError, StorageFull) as exc:
            log.warning("reconcile: could not %s %s: %s", what, container_id, exc)
        except Exception:
            log.exception("reconcile: could not %s %s", what, container_id)
        return False

    def _cursor(self, container_id: str | None, param: str) -> Cursor | None:
        if container_id is None:
            return None
        anchor = self._repo.get(container_id)
        if anchor is None:
            raise InvalidRequest(
                f"No container found with id '{container_id}' for '{param}'.", param
            )
        return anchor.cursor


@contextmanager
def _timed_create() -> Iterator[None]:
    """Count a create by outcome: ok, or the status class of its refusal (4xx, 5xx)."""
    started = time.perf_counter()
    try:
        yield
    except ApiError as exc:
        metrics.observe_create(f"{exc.status // 100}xx", time.perf_counter() - started)
        raise
    except Exception:
        metrics.observe_create("5xx", time.perf_counter() - started)
        raise
    metrics.observe_create("ok", time.perf_counter() - started)
