"""The one scheduler on both engines: registered jobs run on their interval and record each run;
one process at a time runs a job (the lease in ``jobs``, and on PostgreSQL an advisory lock
that dies with its process); the next run survives a restart; an enqueue wakes the dispatcher
at once; ``corridor jobs list`` and the health endpoint show the jobs."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import corridor.loop  # the built-in jobs
from corridor.api.app import create_app
from corridor.cli import app as cli_app
from corridor.loop import outbox, scheduler
from corridor.loop.scheduler import JobContext, JobSpec, Scheduler, job_states
from corridor.settings import Settings
from corridor.store import Store, open_store
from test_loop_outbox import Receiver, hook

SETTINGS = Settings(text_analysis="off", model_refresh="on_request", auth="off")


def wait_until(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())


def state(store: Store, name: str) -> scheduler.JobState:
    return {j.name: j for j in job_states(store)}[name]


def test_builtin_jobs_are_registered() -> None:
    assert corridor.loop.dispatch_job is scheduler.REGISTRY["outbox.dispatch"].fn
    assert scheduler.REGISTRY["outbox.dispatch"].every_s == 1.0
    assert scheduler.REGISTRY["digests"].every_s == 3600.0
    with pytest.raises(ValueError):
        scheduler.register("never", 0, lambda ctx: None)


def test_a_job_runs_on_its_interval_and_records_each_run(store: Store) -> None:
    runs: list[datetime] = []

    def tick(ctx: JobContext) -> str:
        runs.append(datetime.now(UTC))
        return f"run {len(runs)}"

    def broken(ctx: JobContext) -> None:
        raise RuntimeError("nothing works")

    s = Scheduler(store, SETTINGS, [JobSpec("tick", 0.2, tick), JobSpec("broken", 0.2, broken)])
    s.start()
    try:
        assert wait_until(lambda: len(runs) >= 3)
        assert wait_until(lambda: state(store, "broken").runs >= 2)
    finally:
        s.stop()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(runs)]
    assert all(g >= 0.15 for g in gaps), gaps  # on its interval, not faster
    t = state(store, "tick")
    assert t.last_status == "ok" and t.last_message == f"run {t.runs}" and t.runs == len(runs)
    assert t.lease_owner is None and not t.running and t.every_s == 0.2
    assert t.next_run_at > t.last_started_at  # type: ignore[operator]
    b = state(store, "broken")
    assert b.last_status == "failed" and b.last_message == "RuntimeError: nothing works"


def test_one_process_at_a_time(store: Store, store_url: str) -> None:
    """Two schedulers (on PostgreSQL on two connections each, as two server processes have)
    run the same job: never both at once, and together on its interval."""
    inside, most, lock = [0], [0], threading.Lock()
    owners: list[str] = []

    def slow(ctx: JobContext) -> None:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            owners.append(ctx.owner)
        time.sleep(0.15)
        with lock:
            inside[0] -= 1

    other = open_store(store_url) if store.dialect == "postgres" else store
    spec = JobSpec("slow", 0.05, slow)
    a = Scheduler(store, SETTINGS, [spec], owner="a")
    b = Scheduler(other, SETTINGS, [spec], owner="b")
    try:
        a.start()
        b.start()
        for _ in range(10):  # wake both over and over: still one at a time
            a.wake("slow")
            b.wake("slow")
            time.sleep(0.05)
        assert wait_until(lambda: len(owners) >= 6)
        a.stop()  # one process stops: the other carries on with the job
        n = len(owners)
        assert wait_until(lambda: owners[n:].count("b") >= 2)
    finally:
        a.stop()
        b.stop()
        if other is not store:
            other.close()
    assert most[0] == 1, "the job ran in two schedulers at once"


@pytest.mark.parametrize("engine", ["postgres"])
def test_a_dead_process_lock_is_taken_over_at_once(store: Store) -> None:
    """A lease row left by a process that died (its advisory lock went with its connection)
    does not hold the job up until it expires."""
    ran = threading.Event()
    spec = JobSpec("escalate", 60, lambda ctx: ran.set())
    Scheduler(store, SETTINGS, [spec], owner="x").sync()
    with store.transaction() as tx:
        tx.execute(
            "UPDATE jobs SET lease_owner = 'dead:1:abc', lease_until = ? WHERE name = 'escalate'",
            [datetime.now(UTC) + timedelta(hours=1)],
        )
    # a live holder of the advisory lock keeps the job from us
    holder = psycopg.connect(store.url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(hashtextextended('corridor.job:escalate', 0))")
    s = Scheduler(store, SETTINGS, [spec], owner="me")
    try:
        assert not s.run_now("escalate")
        holder.close()  # the holder's process died: the server drops its lock
        assert wait_until(lambda: s.run_now("escalate"), timeout=5) and ran.is_set()
    finally:
        s.stop()
        holder.close()
    assert state(store, "escalate").lease_owner is None


@pytest.mark.parametrize("engine", ["duckdb"])
def test_duckdb_leases_left_by_a_killed_server_are_dropped_at_start(store: Store) -> None:
    spec = JobSpec("escalate", 60, lambda ctx: None)
    Scheduler(store, SETTINGS, [spec], owner="x").sync()
    with store.transaction() as tx:
        tx.execute(
            "UPDATE jobs SET lease_owner = 'dead:1:abc', lease_until = ? WHERE name = 'escalate'",
            [datetime.now(UTC) + timedelta(hours=1)],
        )
    s = Scheduler(store, SETTINGS, [spec], owner="me")
    assert not s.run_now("escalate")  # a live lease is respected...
    s.sync()  # ...but a starting scheduler is the only process on the file
    assert s.run_now("escalate")


def test_the_next_run_survives_a_restart(store_url: str) -> None:
    runs: list[str] = []
    spec = JobSpec("hourly", 3600, lambda ctx: runs.append(ctx.owner))
    with open_store(store_url) as store:
        s = Scheduler(store, SETTINGS, [spec], owner="first")
        s.start()
        assert wait_until(lambda: len(runs) == 1)
        s.stop()
        first = state(store, "hourly")
    assert first.next_run_at - first.last_started_at >= timedelta(hours=1)  # type: ignore[operator]

    with open_store(store_url) as store:  # restarted: not due yet, so it does not run
        s = Scheduler(store, SETTINGS, [spec], owner="second")
        s.start()
        time.sleep(0.5)
        s.stop()
        assert runs == ["first"] and state(store, "hourly").next_run_at == first.next_run_at
        with store.transaction() as tx:  # it was down past the next run: runs once, soon
            tx.execute(
                "UPDATE jobs SET next_run_at = ? WHERE name = 'hourly'",
                [datetime.now(UTC) - timedelta(hours=5)],
            )
        s = Scheduler(store, SETTINGS, [spec], owner="third")
        s.start()
        assert wait_until(lambda: len(runs) == 2)
        time.sleep(0.3)
        s.stop()
    assert runs == ["first", "third"]


def test_an_enqueue_wakes_the_dispatcher(store: Store) -> None:
    """The dispatcher polls only every minute here; the enqueue's wake-up sends at once."""
    receiver = Receiver().start()
    try:
        hook(store, receiver)
        spec = scheduler.REGISTRY["outbox.dispatch"]
        s = Scheduler(store, SETTINGS, [JobSpec(spec.name, 60.0, spec.fn, spec.wake_on)])
        s.start()
        time.sleep(0.3)  # the first run, at start, has found nothing
        try:
            started = time.monotonic()
            with store.transaction() as tx:
                outbox.enqueue(tx, "case.opened", {"case": 1}, key="wake")
            got = receiver.wait_for(1, timeout=5)
            took = time.monotonic() - started
        finally:
            s.stop()
        assert got and got[0].webhook_id == "wake" and got[0].verified
        assert took < 2, took
    finally:
        receiver.stop()


def test_a_wake_up_runs_the_job_at_once_and_brings_back_a_forgotten_one(store: Store) -> None:
    """A woken job runs at once, without waiting for its interval (a minute here), and records
    the run; woken after it was forgotten, it writes its row again and runs."""
    runs: list[datetime] = []
    s = Scheduler(
        store, SETTINGS, [JobSpec("tick", 60.0, lambda ctx: runs.append(datetime.now(UTC)))]
    )
    s.start()
    try:
        assert wait_until(lambda: len(runs) == 1)  # a new job is due at once
        for n in (2, 3):
            s.wake("tick")
            assert wait_until(lambda n=n: len(runs) == n and state(store, "tick").runs == n)
        assert state(store, "tick").next_run_at > datetime.now(UTC) + timedelta(seconds=50)
        scheduler.forget(store, "tick")
        assert "tick" not in {j.name for j in job_states(store)}
        s.wake("tick")
        assert wait_until(lambda: len(runs) == 4 and "tick" in {j.name for j in job_states(store)})
        time.sleep(0.3)
        assert len(runs) == 4  # once
    finally:
        s.stop()
    t = state(store, "tick")
    assert t.runs == 1 and t.last_status == "ok" and t.lease_owner is None


def test_jobs_list_and_health(store_url: str) -> None:
    with open_store(store_url) as store:
        app = create_app(SETTINGS, store=store)
        with TestClient(app) as c:
            assert wait_until(lambda: state(store, "digests").runs >= 1)
            health = c.get("/api/v1/health").json()
            jobs = {j["name"]: j for j in health["jobs"]}
            assert {"outbox.dispatch", "digests"} <= set(jobs)
            assert jobs["digests"]["last_status"] == "ok" and not jobs["digests"]["overdue"]
            listed = c.get("/api/v1/admin/jobs").json()
            assert {j["name"] for j in listed} >= {"outbox.dispatch", "digests"}
        # a server with the scheduler off starts no jobs
        before = state(store, "digests").runs
        off = create_app(Settings(**{**SETTINGS.model_dump(), "scheduler": "off"}), store=store)
        with TestClient(off):
            time.sleep(0.3)
        assert off.state.scheduler is None and state(store, "digests").runs == before
    r = CliRunner().invoke(cli_app, ["jobs", "list", "--store", store_url], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "outbox.dispatch" in r.output and "digests" in r.output and "ok" in r.output


def test_a_job_no_server_runs_can_be_forgotten(store_url: str) -> None:
    """A job once scheduled (a lake sync) that no server runs any more stays overdue in health
    for ever; ``corridor jobs forget`` / ``DELETE /admin/jobs/{name}`` removes it. A running job
    is refused (409), an unknown one is a 404 naming the jobs there are, and a server that still
    runs the job writes its row again, so forgetting never stops a job for good."""
    long_ago = datetime.now(UTC) - timedelta(days=3)
    with open_store(store_url) as store:
        with store.transaction() as tx:
            tx.execute(
                "INSERT INTO jobs (name, every_s, next_run_at, runs) VALUES (?, ?, ?, 0)",
                ["lake.sync", 900.0, long_ago],
            )
        app = create_app(SETTINGS, store=store)
        with TestClient(app) as c:
            jobs = {j["name"]: j for j in c.get("/api/v1/health").json()["jobs"]}
            assert jobs["lake.sync"]["overdue"]
            r = c.delete("/api/v1/admin/jobs/lake.sync")
            assert r.status_code == 200, r.text
            assert r.json()["name"] == "lake.sync" and r.json()["every_s"] == 900.0
            assert "lake.sync" not in {j["name"] for j in c.get("/api/v1/health").json()["jobs"]}
            r = c.delete("/api/v1/admin/jobs/lake.sync")
            assert r.status_code == 404 and "digests" in r.json()["error"]["message"], r.text

            # a job this server runs comes back: due at once, and run
            assert wait_until(lambda: state(store, "digests").runs >= 1)
            assert c.delete("/api/v1/admin/jobs/digests").status_code == 200
            assert wait_until(lambda: "digests" in {j.name for j in job_states(store)})
            assert wait_until(lambda: state(store, "digests").runs >= 1)

            # running: refused
            with store.transaction() as tx:
                tx.execute(
                    "UPDATE jobs SET lease_owner = 'elsewhere:1:x', lease_until = ? "
                    "WHERE name = 'digests'",
                    [datetime.now(UTC) + timedelta(minutes=5)],
                )
            r = c.delete("/api/v1/admin/jobs/digests")
            assert r.status_code == 409 and "running now" in r.json()["error"]["message"]
            with pytest.raises(scheduler.JobRunningError):
                scheduler.forget(store, "digests")
        with store.transaction() as tx:
            tx.execute(
                "INSERT INTO jobs (name, every_s, next_run_at, runs) VALUES (?, ?, ?, 0)",
                ["lake.sync", 900.0, long_ago],
            )
    r = CliRunner().invoke(cli_app, ["jobs", "forget", "lake.sync", "--store", store_url])
    assert r.exit_code == 0 and "forgotten" in r.output, r.output
    r = CliRunner().invoke(cli_app, ["jobs", "forget", "lake.sync", "--store", store_url])
    # (``corridor``'s main prints a CorridorError as one line; here it reaches the runner)
    assert isinstance(r.exception, scheduler.JobNotFoundError), r.output
    assert "no job named 'lake.sync'" in str(r.exception)
