"""The one scheduler: named jobs that run every so often inside the server process.

Register a job once, at import time of the module that owns it::

    from corridor.loop import scheduler

    def escalate(ctx: scheduler.JobContext) -> str | None:
        ...  # ctx.store, ctx.settings; return a short line for `corridor jobs list`
        return "3 cases escalated"

    scheduler.register("sla.escalate", 60, escalate)

and make sure that module is imported by :mod:`corridor.loop` (its ``__init__``), which the
server imports before it starts the scheduler. Built in: ``outbox.dispatch`` (every second, and
at once when a notification is enqueued) and ``digests`` (hourly).

Each job runs in a thread of its own, so a slow one never holds up the others. Only one process
runs a given job at a time, however many servers share the store: a run first takes the job's
lease in the ``jobs`` table (owner and expiry, written in a transaction), and on PostgreSQL also
a session advisory lock (``pg_try_advisory_lock``), which the server releases by itself when the
process holding it dies, so another process takes over at once. The lease is taken and given
back beside the store's main writer (:meth:`~corridor.store.base.Store.write_beside`): the
dispatcher, woken by every commit that queues a notification, does not make the ingest wait
twice a run for its bookkeeping; the schedulers of one process take a job's lease one at a
time. When each job ran and when it runs next are kept in the ``jobs`` table: a restarted
server carries on where it stopped (a run missed while it was down runs once, soon after the
start). ``corridor jobs list`` and the health endpoint show that table.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from corridor.errors import CorridorError, NotFoundError
from corridor.settings import Settings
from corridor.store.base import Store, Tx
from corridor.store.writelock import background

__all__ = [
    "REGISTRY",
    "JobContext",
    "JobNotFoundError",
    "JobRunningError",
    "JobSpec",
    "JobState",
    "Scheduler",
    "forget",
    "job_states",
    "register",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobContext:
    """What a job is handed on each run."""

    store: Store
    settings: Settings
    #: the process running it (also the lease owner of any rows it claims)
    owner: str
    #: set when the server is stopping: a long job should return soon
    stopping: threading.Event


#: a job: gets its context, returns a short line for the jobs list (or None)
JobFn = Callable[[JobContext], object]


@dataclass(frozen=True)
class JobSpec:
    name: str
    every_s: float
    fn: JobFn
    #: subscribes a wake-up callback (returns the unsubscribe function): the job runs at once
    #: when woken, not only every ``every_s`` seconds
    wake_on: Callable[[Callable[[], None]], Callable[[], None]] | None = None


#: every registered job, by name
REGISTRY: dict[str, JobSpec] = {}


def register(
    name: str,
    every_s: float,
    fn: JobFn,
    *,
    wake_on: Callable[[Callable[[], None]], Callable[[], None]] | None = None,
) -> JobSpec:
    """Register (or replace) the job ``name``, run every ``every_s`` seconds by the server's
    scheduler. ``fn(ctx)`` runs in a thread of its own, in one process at a time; an exception
    is logged and recorded as the run's status, and the job runs again at its next time."""
    if every_s <= 0:
        raise ValueError(f"job {name}: every_s must be positive")
    spec = JobSpec(name, float(every_s), fn, wake_on)
    REGISTRY[name] = spec
    return spec


@dataclass(frozen=True)
class JobState:
    """One row of the ``jobs`` table."""

    name: str
    every_s: float
    last_started_at: datetime | None
    last_finished_at: datetime | None
    next_run_at: datetime
    lease_owner: str | None
    lease_until: datetime | None
    #: ok, failed, or None before the first run
    last_status: Literal["ok", "failed"] | None
    last_message: str | None
    runs: int

    @property
    def running(self) -> bool:
        return self.lease_owner is not None and (
            self.lease_until is None or self.lease_until > datetime.now(UTC)
        )


_STATE_COLUMNS = (
    "name, every_s, last_started_at, last_finished_at, next_run_at, lease_owner, lease_until, "
    "last_status, last_message, runs"
)


def job_states(store: Store) -> list[JobState]:
    """Every job the store has seen, by name."""
    return [_state(r) for r in store.query(f"SELECT {_STATE_COLUMNS} FROM jobs ORDER BY name")]


def _state(r: Sequence[Any]) -> JobState:
    return JobState(str(r[0]), float(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8], int(r[9]))


class JobNotFoundError(NotFoundError):
    """No job of that name in the store's ``jobs`` table."""


class JobRunningError(CorridorError):
    """The job is running now (its lease is held): it cannot be forgotten."""

    status_code = 409


def forget(store: Store, name: str) -> JobState:
    """Remove job ``name``'s row from the ``jobs`` table and return it as it was: for a job no
    server runs any more (a lake sync once scheduled, a module since removed), which health
    would otherwise show as overdue for ever. A job running now is refused; a server that still
    runs the job writes its row again within :attr:`Scheduler.POLL_S` seconds (a run due at
    once), so forgetting never stops a job for good."""
    # no scheduler of this process takes the lease between the check and the removal (it is
    # taken beside the writer, and DuckDB would not see that conflict)
    with _lease_lock(store, name), store.transaction() as tx:
        rows = tx.fetchall(f"SELECT {_STATE_COLUMNS} FROM jobs WHERE name = ?", [name])
        if not rows:
            known = [str(r[0]) for r in tx.fetchall("SELECT name FROM jobs ORDER BY name")]
            raise JobNotFoundError(
                f"no job named {name!r}; the jobs are: {', '.join(known) or 'none yet'}"
            )
        job = _state(rows[0])
        if job.running:
            raise JobRunningError(
                f"job {name!r} is running now (in {job.lease_owner}): forget it when it has "
                "finished, and stop the servers that run it first if it should stay gone"
            )
        tx.execute("DELETE FROM jobs WHERE name = ?", [name])
    return job


def new_owner() -> str:
    """A name for this process's scheduler: host, pid and a random tag (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


#: owners of the schedulers running in this process
_live: set[str] = set()
_live_lock = threading.Lock()
#: one lock per store and job: the schedulers of this process take and give back a job's lease
#: one at a time (written beside the main writer, two of them could both see it free)
_lease_locks: dict[tuple[str, str], threading.Lock] = {}


def _lease_lock(store: Store, name: str) -> threading.Lock:
    with _live_lock:
        return _lease_locks.setdefault((store.url, name), threading.Lock())


class _AdvisoryLocks:
    """PostgreSQL session advisory locks on a connection of their own (the store's writer
    connection is shared by every write transaction; a session lock there would outlive the
    run). Released by the server when this process dies."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._con: Any = None
        self._lock = threading.Lock()

    def _connection(self) -> Any:
        import psycopg

        if self._con is None or self._con.closed:
            self._con = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        return self._con

    def try_lock(self, name: str) -> bool:
        with self._lock:
            try:
                row = (
                    self._connection()
                    .execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [name])
                    .fetchone()
                )
            except Exception:
                self._drop()
                raise
        return bool(row and row[0])

    def unlock(self, name: str) -> None:
        with self._lock:
            try:
                self._connection().execute(
                    "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [name]
                )
            except Exception:  # a broken connection released its locks with it
                self._drop()

    def _drop(self) -> None:
        if self._con is not None:
            try:
                self._con.close()
            finally:
                self._con = None

    def close(self) -> None:
        with self._lock:
            self._drop()


def _write_row(tx: Tx, spec: JobSpec) -> None:
    """The job's row: a new one due at once, a known one keeping its next run."""
    tx.execute(
        "INSERT INTO jobs (name, every_s, next_run_at, runs) VALUES (?, ?, ?, 0) "
        "ON CONFLICT (name) DO UPDATE SET every_s = excluded.every_s",
        [spec.name, spec.every_s, datetime.now(UTC)],
    )


class Scheduler:
    """Runs ``jobs`` (default: every registered one) over ``store`` until :meth:`stop`."""

    #: a lease outlives a run by this much at least (a process that died loses it then)
    MIN_LEASE_S = 60.0
    #: how often a job thread looks at its row when it is not due (others may run it)
    POLL_S = 5.0

    def __init__(
        self,
        store: Store,
        settings: Settings,
        jobs: Iterable[JobSpec] | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.jobs = {j.name: j for j in (REGISTRY.values() if jobs is None else jobs)}
        self.owner = owner or new_owner()
        self._stop = threading.Event()
        self._wakes = {name: threading.Event() for name in self.jobs}
        self._threads: list[threading.Thread] = []
        self._unsubscribe: list[Callable[[], None]] = []
        self._advisory = _AdvisoryLocks(store.url) if store.dialect == "postgres" else None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Write each job's row (a new one is due at once; a known one keeps its next run),
        and start a thread per job."""
        if self._threads:
            return
        with _live_lock:
            _live.add(self.owner)
        self.sync()
        for spec in self.jobs.values():
            if spec.wake_on is not None:
                self._unsubscribe.append(spec.wake_on(self._waker(spec.name)))
            t = threading.Thread(
                target=self._loop, args=(spec,), name=f"corridor-job-{spec.name}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for event in self._wakes.values():
            event.set()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        with _live_lock:
            _live.discard(self.owner)
        if self._advisory is not None:
            self._advisory.close()

    def _waker(self, name: str) -> Callable[[], None]:
        return lambda: self.wake(name)

    def wake(self, name: str) -> None:
        """Run job ``name`` now (if no other process is running it)."""
        event = self._wakes.get(name)
        if event is not None:
            event.set()

    def sync(self) -> None:
        # this scheduler's jobs' leases are not taken meanwhile (see forget)
        with contextlib.ExitStack() as held:
            for name in sorted(self.jobs):
                held.enter_context(_lease_lock(self.store, name))
            self._sync()

    def _sync(self) -> None:
        with self.store.transaction() as tx:
            for spec in self.jobs.values():
                _write_row(tx, spec)
            if tx.dialect == "duckdb":
                # one process holds a DuckDB file: a lease in it that no scheduler of this
                # process holds is a dead process's (a killed server's)
                with _live_lock:
                    live = sorted(_live | {self.owner})
                marks = ", ".join("?" for _ in live)
                tx.execute(
                    "UPDATE jobs SET lease_owner = NULL, lease_until = NULL "
                    f"WHERE lease_owner IS NOT NULL AND lease_owner NOT IN ({marks})",
                    live,
                )

    # -- one run ------------------------------------------------------------------------------
    def run_now(self, name: str, *, force: bool = True) -> bool:
        """Run job ``name`` once in this thread, if its lease can be taken (and, unless
        ``force``, it is due). Returns whether it ran."""
        return self._run(self.jobs[name], force=force) is not None

    def _lease_s(self, spec: JobSpec) -> float:
        return max(self.MIN_LEASE_S, 3 * spec.every_s)

    def _acquire(self, spec: JobSpec, *, force: bool) -> datetime | None:
        """Take the job's lease; the run's start time, or None when another process has it
        (or, unless ``force``, it is not due)."""
        if self._advisory is not None and not self._advisory.try_lock(f"corridor.job:{spec.name}"):
            return None
        now = datetime.now(UTC)
        until = now + timedelta(seconds=self._lease_s(spec))
        # with the advisory lock held, a lease left in the row is a dead process's
        free = (
            "TRUE"
            if self._advisory is not None
            else ("(lease_owner IS NULL OR lease_until < ? OR lease_owner = ?)")
        )
        params: list[Any] = [self.owner, until, now, spec.name]
        if self._advisory is None:
            params += [now, self.owner]
        due = ""
        if not force:
            due = " AND next_run_at <= ?"
            params.append(now)
        sql = (
            "UPDATE jobs SET lease_owner = ?, lease_until = ?, last_started_at = ? "
            f"WHERE name = ? AND {free}{due}"
        )
        try:
            with _lease_lock(self.store, spec.name):
                taken = self.store.write_beside(lambda tx: tx.execute(sql, params))
        except BaseException:
            self._unlock(spec)
            raise
        if taken != 1:
            self._unlock(spec)
            return None
        return now

    def _unlock(self, spec: JobSpec) -> None:
        if self._advisory is not None:
            self._advisory.unlock(f"corridor.job:{spec.name}")

    def _run(self, spec: JobSpec, *, force: bool) -> datetime | None:
        """Run the job once if its lease can be taken; when it ran, the next run time written
        in its row."""
        started = self._acquire(spec, force=force)
        if started is None:
            return None
        status: Literal["ok", "failed"] = "ok"
        message: str | None = None
        try:
            ctx = JobContext(self.store, self.settings, self.owner, self._stop)
            result = spec.fn(ctx)
            message = None if result is None else str(result)[:500]
        except Exception as e:
            log.exception("job %s failed", spec.name)
            status, message = "failed", f"{type(e).__name__}: {e}"[:500]
        finally:
            try:
                finished = datetime.now(UTC)
                next_run = max(started + timedelta(seconds=spec.every_s), finished)
                params = [finished, next_run, status, message, spec.name, self.owner]
                with _lease_lock(self.store, spec.name):
                    self.store.write_beside(
                        lambda tx: tx.execute(
                            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, "
                            "last_finished_at = ?, next_run_at = ?, last_status = ?, "
                            "last_message = ?, runs = runs + 1 WHERE name = ? AND lease_owner = ?",
                            params,
                        )
                    )
            finally:
                self._unlock(spec)
        return next_run

    def _next_run(self, name: str) -> datetime | None:
        rows = self.store.query("SELECT next_run_at FROM jobs WHERE name = ?", [name])
        return rows[0][0] if rows else None

    def _loop(self, spec: JobSpec) -> None:
        with background():  # a request waiting for the store's writer goes first
            self._loop_job(spec)

    def _loop_job(self, spec: JobSpec) -> None:
        wake = self._wakes[spec.name]
        while not self._stop.is_set():
            woken = wake.is_set()
            wake.clear()
            wait = min(spec.every_s, self.POLL_S)
            try:
                # woken (a commit queued work for it): run at once, without reading when it is
                # due; else read that, and run if it is due. ``next_run``: known after a run
                # here, or read; None: another process has it (look again later)
                next_run = self._run(spec, force=True) if woken else None
                if next_run is None:
                    next_run = self._next_run(spec.name)
                    if next_run is None:  # forgotten (``corridor jobs forget``) while it runs
                        with self.store.transaction() as tx:
                            _write_row(tx, spec)
                    if next_run is None or (not woken and next_run <= datetime.now(UTC)):
                        next_run = self._run(spec, force=woken)
                    elif woken:  # another process is running it now
                        next_run = None
                if next_run is not None:
                    now = datetime.now(UTC)
                    wait = min(max((next_run - now).total_seconds(), 0.01), self.POLL_S)
            except Exception:  # the store away for a moment: try again shortly
                if self._stop.is_set():
                    break
                log.exception("scheduler: job %s could not be run; trying again", spec.name)
                wait = self.POLL_S
            wake.wait(wait)
