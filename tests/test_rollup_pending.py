"""The rollup's upkeep after the commit (corridor.analytics.feedback.rollup_pending), on both
engines: a batch of new feedback only queues its records; every answer counts the queued
records from the base tables in the same query, so it is exact before, during and after the
fold; the fold adds exactly the rows the inline path would have; a refresh, an erasure, a
feedback-before-its-interaction and concurrent folds never count a record twice; record rules
still see each record's touch point and department; a server folds right after the commit and,
on start, what a stopped one left queued."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from corridor.analytics.feedback import rollup as ru
from corridor.analytics.feedback import rollup_pending
from corridor.api.app import create_app
from corridor.ingest import after_commit
from corridor.ingest.pipeline import Ingestor
from corridor.loop.rules import Rule, add_rule
from corridor.settings import Settings
from corridor.store import Store, open_store
from test_analytics_data import dataset
from test_rollup import CASES, assert_same, base

TS = pa.timestamp("us", tz="UTC")
SOME = [CASES[i] for i in (0, 3, 5, 7, 9)]


@pytest.fixture
def queued(store: Store, small_map) -> Ingestor:
    ing = Ingestor(store, rollup_upkeep="background")
    ing.load_map(small_map)
    yield ing
    ing.close()


def keyed_sums(store: Store) -> pd.DataFrame:
    """The rollup's sums per key (the rows may be split differently: summed they must agree)."""
    keys = ["day", *ru.ROLLUP_DIMENSIONS]
    frame = store.table("feedback_rollup").to_pandas()
    sums = frame.groupby(keys, dropna=False).sum(numeric_only=True).sort_index()
    return sums.reset_index().sort_values(keys, na_position="first").reset_index(drop=True)


def answers_exact(store: Store) -> None:
    """The analytics on the store equal those on the base tables, whatever is queued."""
    current = ru.is_current(store)
    for case in SOME:
        assert_same(store, case, rollup=current)


def test_queued_feedback_is_counted_exactly_and_folded_as_inline(queued, store):
    data = dataset()
    fb = data["feedback"]
    queued.ingest("people", data["people"])
    queued.ingest("interactions", data["interactions"])
    for start in range(0, fb.num_rows, 60):
        queued.ingest("feedback", fb.slice(start, 60))
        # queued, not added: the rollup is as before, the answers exact all the same
        assert rollup_pending.waiting(store) == min(start + 60, fb.num_rows)
        assert store.count("rollup_dirty") == 0
    assert store.count("feedback_rollup") == 0
    answers_exact(store)
    # the fold takes a part, then the rest: exact at every step
    version = store.data_version()  # (DuckDB keeps one; PostgreSQL, written by others, none)
    assert after_commit.fold(store, most=100) == 100
    # a fold changes no answer, so kept answers are not made stale by it
    assert store.data_version() == version and (version is not None) == (store.dialect == "duckdb")
    assert rollup_pending.waiting(store) == fb.num_rows - 100
    answers_exact(store)
    assert after_commit.fold_all(store) == fb.num_rows - 100
    assert rollup_pending.waiting(store) == 0 and ru.is_current(store)
    answers_exact(store)
    # the same sums, key by key, as a rebuild from the base tables
    folded = keyed_sums(store)
    assert ru.rebuild(store) > 0
    pd.testing.assert_frame_equal(folded, keyed_sums(store), check_exact=False, rtol=1e-12)


def test_a_refresh_takes_queued_records_of_its_days(queued, store):
    """Feedback queued before its interaction arrives: the interaction marks the feedback's day
    dirty, the refresh rebuilds that day from the base tables and marks its queued records
    rolled (reads no longer add them; the fold adds no row for them, only their rules wait); a
    read while both a queue and dirty days exist is exact."""
    when = datetime(2025, 3, 4, 12, tzinfo=UTC)
    other = datetime(2025, 3, 6, 12, tzinfo=UTC)
    fb = pa.table({
        "feedback_id": ["f1", "f2", "f3"],
        "occurred_at": pa.array([when, when, other], TS),
        "interaction_id": ["i1", "i1", "i2"],
        "source": ["survey"] * 3,
        "expectation": [7.0, 8.0, 6.0],
        "experience": [5.0, 9.0, 6.5],
        "nps": [9, 3, 10],
    })  # fmt: skip
    queued.ingest("feedback", fb)
    assert rollup_pending.waiting(store) == 3
    it = pa.table({
        "interaction_id": ["i1"], "person_id": ["p1"], "occurred_at": pa.array([when], TS),
        "touchpoint": ["checkout"], "channel": ["app"],
    })  # fmt: skip
    with queued.bulk():  # (the refresh waits for the block's end: the marks can be seen)
        queued.ingest("interactions", it)
        assert store.count("rollup_dirty") == 1 and rollup_pending.waiting(store) == 3
        answers_exact(store)
        assert_same(store, dict(by=["touchpoint", "channel"], period="day"), rollup=False)
    # the refresh rebuilt 2025-03-04 (f1, f2) and left f3 (2025-03-06) to the fold
    assert store.count("rollup_dirty") == 0
    queued = store.query("SELECT feedback_id, rolled FROM rollup_pending ORDER BY 1")
    assert queued == [("f1", True), ("f2", True), ("f3", False)]
    answers_exact(store)
    assert after_commit.fold_all(store) == 3
    answers_exact(store)
    folded = keyed_sums(store)
    ru.rebuild(store)
    pd.testing.assert_frame_equal(folded, keyed_sums(store), check_exact=False, rtol=1e-12)


def test_an_erased_queued_record_is_not_folded(queued, store):
    """A queued record deleted before the fold (an erasure deletes records, marks their days
    and refreshes them, which takes them out of the queue; a record gone without a mark is
    skipped by the fold)."""
    data = dataset()
    queued.ingest("people", data["people"])
    queued.ingest("interactions", data["interactions"])
    queued.ingest("feedback", data["feedback"].slice(0, 50))
    gone = [r[0] for r in store.query("SELECT feedback_id FROM rollup_pending LIMIT 5")]
    with store.transaction() as tx:
        marks = ", ".join("?" for _ in gone)
        tx.execute(f"DELETE FROM feedback WHERE feedback_id IN ({marks})", gone)
    answers_exact(store)  # the queue's rows come from the base tables: the deleted are not there
    assert after_commit.fold_all(store) == 50
    answers_exact(store)
    assert sum(keyed_sums(store)["gap_n"] + keyed_sums(store)["metric_n"]) > 0
    folded = keyed_sums(store)
    ru.rebuild(store)
    pd.testing.assert_frame_equal(folded, keyed_sums(store), check_exact=False, rtol=1e-12)


def test_concurrent_folds_and_refreshes_count_each_record_once(store_url, store, small_map):
    """Several stores (on PostgreSQL, several connections, as several server processes have)
    fold the same queue at once while a refresh rebuilds days: every record lands once."""
    data = dataset()
    ing = Ingestor(store, rollup_upkeep="background")
    ing.load_map(small_map)
    ing.ingest("people", data["people"])
    ing.ingest("interactions", data["interactions"])
    fb = data["feedback"]
    for start in range(0, fb.num_rows, 25):
        ing.ingest("feedback", fb.slice(start, 25))
    ing.close()
    others = [store] if store.dialect == "duckdb" else [open_store(store_url) for _ in range(3)]
    start = threading.Barrier(len(others) + 1)
    errors: list[BaseException] = []

    def fold(s: Store) -> None:
        try:
            start.wait()
            while after_commit.fold(s, most=37):
                pass
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=fold, args=(s,)) for s in others]
    for t in threads:
        t.start()
    start.wait()
    with store.transaction() as tx:  # a day rebuilt meanwhile
        tx.execute(
            "INSERT INTO rollup_dirty (day) SELECT DISTINCT CAST(occurred_at AS DATE) "
            "FROM feedback WHERE feedback_id IN (SELECT min(feedback_id) FROM feedback)"
        )
    ru.refresh(store)
    for t in threads:
        t.join()
    for s in others:
        if s is not store:
            s.close()
    assert not errors
    assert rollup_pending.waiting(store) == 0
    answers_exact(store)


@pytest.mark.parametrize("texts_later", [False, True])
def test_record_rules_see_queued_records_dimensions(store, small_map, texts_later):
    """A detractor rule scoped to a department fires on a queued record whose touch point only
    its interaction names, once, when the record is taken from the queue, on the rules' SQL path
    (texts analysed with their batch) and their Arrow path alike."""
    ing = Ingestor(store, rollup_upkeep="background", analyze_text=not texts_later)
    ing.load_map(small_map)
    add_rule(store, Rule("late", "detractor", scope={"department": "logistics"}), actor="ana")
    now = datetime.now(UTC)
    ing.ingest("interactions", pa.table({
        "interaction_id": ["i1", "i2"], "person_id": ["p1", "p2"],
        "occurred_at": pa.array([now] * 2, TS), "touchpoint": ["home_delivery", "checkout"],
        "channel": ["partner", "web"],
    }))  # fmt: skip
    ing.ingest("feedback", pa.table({
        "feedback_id": ["f1", "f2"], "occurred_at": pa.array([now] * 2, TS),
        "interaction_id": ["i1", "i2"], "person_id": ["p1", "p2"], "source": ["survey"] * 2,
        "nps": [2, 1],
    }))  # fmt: skip
    ing.close()
    assert rollup_pending.waiting(store) == 2
    # the rules fire in the transaction that takes the records from the queue, once
    assert store.query("SELECT count(*) FROM alerts") == [(0,)]
    assert after_commit.fold_all(store, texts_analysed=not texts_later) == 2
    fired = store.query("SELECT rule_id, record_id FROM alerts")
    assert fired == [("late", "f1")]  # f2 is at checkout: another department
    assert after_commit.fold_all(store) == 0
    assert store.query("SELECT count(*) FROM alerts") == [(1,)]


def test_a_server_folds_after_the_commit_and_what_a_stopped_one_left(store, small_map):
    data = dataset()
    # a server stopped before its fold: the queue holds the records
    ing = Ingestor(store, rollup_upkeep="background")
    ing.load_map(small_map)
    ing.ingest("people", data["people"])
    ing.ingest("interactions", data["interactions"])
    ing.ingest("feedback", data["feedback"].slice(0, 100))
    ing.close()
    assert rollup_pending.waiting(store) == 100
    app = create_app(Settings(auth="off", scheduler="off"), store=store)
    with TestClient(app) as client:
        app.state.ingestor.on_pending_rollup.__self__.wait_idle(30)  # its first round
        assert client.get("/api/v1/health").json()["rollup_pending"] == 0
        rows = data["feedback"].slice(100, 20).to_pylist()
        for r in rows:
            r["occurred_at"] = r["occurred_at"].isoformat()
        r = client.post("/api/v1/feedback", json=rows)
        assert r.status_code in (200, 201), r.text
        got = client.get("/api/v1/gaps", params={"by": "touchpoint"}).json()["rows"]
        app.state.ingestor.on_pending_rollup.__self__.wait_idle(30)
        assert client.get("/api/v1/health").json()["rollup_pending"] == 0
        after = client.get("/api/v1/gaps", params={"by": "touchpoint"}).json()["rows"]
    assert got == after
    assert ru.is_current(store)
    from corridor.analytics import gap_table

    want = gap_table(base(store), by=["touchpoint"]).frame
    assert [r["n"] for r in after] == want["n"].tolist()


def test_the_worker_folds_handed_batches_without_reading_them_again(queued, store, monkeypatch):
    """The server's worker is handed each committed batch (its records, and its persons as the
    ingest read them): their rows are computed from those, with no read of the feedback; a
    record whose day a refresh rebuilt meanwhile (its person moved region after the batch)
    is not added again (it is marked rolled); records no batch handed over (a stopped
    server's) are read."""
    data = dataset()
    fb = data["feedback"]
    queued.ingest("people", data["people"])
    queued.ingest("interactions", data["interactions"])
    queued.ingest("feedback", fb.slice(0, 30))  # before the worker: nothing handed
    worker = after_commit.AfterCommitWorker(store)
    queued.on_pending_rollup = worker.poke
    for start in range(30, fb.num_rows, 50):
        queued.ingest("feedback", fb.slice(start, 50))
    assert len(worker._handed) == len(range(30, fb.num_rows, 50))
    # a profile update moves a person with queued feedback to another region
    person = fb.column("person_id")[40].as_py()
    queued.ingest(
        "people", pa.table({"person_id": [person], "kind": ["customer"], "region": ["far_away"]})
    )
    left = rollup_pending.waiting(store)
    rolled = store.query("SELECT count(*) FROM rollup_pending WHERE rolled")[0][0]
    assert left == fb.num_rows and 0 < rolled < left  # the refresh rebuilt that person's days
    read: list[int] = []
    feedback_of = after_commit.rollup_rows.feedback_of

    def counted(tx, ids):
        read.append(len(ids))
        return feedback_of(tx, ids)

    monkeypatch.setattr(after_commit.rollup_rows, "feedback_of", counted)
    worker.job()
    assert rollup_pending.waiting(store) == 0 and worker.folded == left
    assert sum(read) <= 30  # only what no batch handed over was read
    answers_exact(store)
    assert_same(store, dict(by=["region"], filters={"region": "far_away"}))
    folded = keyed_sums(store)
    ru.rebuild(store)
    pd.testing.assert_frame_equal(folded, keyed_sums(store), check_exact=False, rtol=1e-12)


def test_the_workers_count_of_records_behind_sees_other_processes_folds(queued, store, monkeypatch):
    """``AfterCommitWorker.behind`` (what writers compare with QUEUE_BEHIND_MAX): what this
    process queued and the fold has not taken; records another process's fold took (any process
    may, on PostgreSQL) stop counting once a round of this one finds the queue empty, so a
    server beside another is not held at the limit for good."""
    data = dataset()
    fb = data["feedback"]
    queued.ingest("people", data["people"])
    queued.ingest("interactions", data["interactions"])
    worker = after_commit.AfterCommitWorker(store)  # not started: its rounds run here
    queued.on_pending_rollup = worker.poke
    queued.rollup_behind = worker.behind
    assert worker.behind() == 0
    queued.ingest("feedback", fb.slice(0, 20))
    queued.ingest("feedback", fb.slice(20, 20))
    assert worker.behind() == 40
    worker.job()
    assert worker.behind() == 0 and rollup_pending.waiting(store) == 0
    queued.ingest("feedback", fb.slice(40, 20))
    assert after_commit.fold_all(store) == 20  # another process's fold took them
    assert worker.behind() == 20  # this process does not know yet
    worker.job()  # its next round finds the queue empty
    assert worker.behind() == 0 and worker.folded == 40
    # a round whose fold came away empty with records still queued (it lost a race for them to
    # another process) does not count them as taken
    queued.ingest("feedback", fb.slice(60, 20))
    monkeypatch.setattr(after_commit, "fold", lambda *a, **k: 0)
    worker.job()
    assert worker.behind() == 20 and rollup_pending.waiting(store) == 20


def test_a_writer_does_the_work_itself_while_the_queue_is_behind(store, small_map):
    """Past QUEUE_BEHIND_MAX records not yet folded, a batch adds its own rollup rows and fires
    its rules in its own transaction (the writers slow down until the queue has caught up)."""
    from corridor.ingest.pipeline import QUEUE_BEHIND_MAX

    ing = Ingestor(store, rollup_upkeep="background")
    ing.load_map(small_map)
    add_rule(store, Rule("low", "detractor"), actor="ana")
    now = datetime.now(UTC)

    def batch(i: int) -> pa.Table:
        return pa.table({
            "feedback_id": [f"f{i}"], "occurred_at": pa.array([now], TS),
            "touchpoint": ["checkout"], "source": ["survey"], "nps": [2],
        })  # fmt: skip

    behind = [QUEUE_BEHIND_MAX - 1]
    ing.rollup_behind = lambda: behind[0]
    ing.ingest("feedback", batch(1))
    assert rollup_pending.waiting(store) == 1 and store.count("alerts") == 0  # queued
    behind[0] = QUEUE_BEHIND_MAX
    ing.ingest("feedback", batch(2))
    assert rollup_pending.waiting(store) == 1  # not queued: done in its transaction
    assert store.query("SELECT record_id FROM alerts") == [("f2",)]
    assert_same(store, dict(by=["touchpoint"]), rollup=False)  # f1 still queued: exact
    assert after_commit.fold_all(store) == 1
    assert sorted(store.query("SELECT record_id FROM alerts")) == [("f1",), ("f2",)]
    assert_same(store, dict(by=["touchpoint"]))
    ing.close()
