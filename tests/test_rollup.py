"""The feedback rollup answers exactly what the base tables answer, on both engines, and stays
exact through incremental ingests (feedback before its interaction, people updates). The ingest
path keeps it current; reads never write: while a day is dirty the rollup still answers, that
day's rows summed from the base tables in the same query."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime

import orjson
import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from corridor.analytics import gap_table, metric_table
from corridor.analytics.core.dimensions import Query
from corridor.analytics.feedback import rollup as ru
from corridor.analytics.feedback import rollup_rows
from corridor.analytics.feedback.gaps import gap_sums
from corridor.analytics.feedback.metrics import metric_sums
from corridor.api.app import create_app
from corridor.ingest.pipeline import Ingestor
from corridor.settings import Settings
from corridor.store import Store, open_store
from test_analytics_data import dataset, load

BASE_TABLES = ("feedback", "interactions", "people", "touchpoints")

CASES = [
    dict(),
    dict(by=["touchpoint"]),
    dict(by=["touchpoint"], period="month"),
    dict(by=["stage", "segment"], period="week"),
    dict(by=["department", "region"], period="quarter"),
    dict(by=["channel", "partner", "source"]),
    dict(period="day"),
    dict(by=["region"], period="month", filters={"channel": ["web", None]}),
    dict(by=["touchpoint"], filters={"stage": "delivery", "segment": [None, "business"]}),
    dict(by=["partner"], period="week", since="2025-02-01", until="2025-05-15"),
    dict(by=["source"], filters={"department": ["logistics", "service"]}, since="2025-03-03"),
    dict(by=["touchpoint"], filters={"region": "nowhere"}),  # nothing matches
]


def base(store: Store) -> dict[str, object]:
    """The store's tables as a mapping: the analytics read them directly, never the rollup."""
    return {name: store.table(name) for name in BASE_TABLES}


def assert_same(store: Store, case: dict[str, object], *, rollup: bool = True) -> None:
    """The analytics on the store equal those on the base tables, and the rollup answered;
    ``rollup``: it is current, else days are marked dirty (then their rows come from the base
    tables, in the same query, and the answer is still exact)."""
    q = Query.build(**case)  # type: ignore[arg-type]
    assert ru.eligible(store, q), case
    assert ru.is_current(store) is rollup
    for kind in ("gap", "metric"):
        answered = ru.sums(store, q, kind)  # type: ignore[arg-type]
        assert answered is not None, (kind, case)
    for sums in (gap_sums, metric_sums):
        got, want = sums(store, q), sums(base(store), q)
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=f"{sums.__name__} {case}")
    for table in (gap_table, metric_table):
        got_t, want_t = table(store, **case), table(base(store), **case)  # type: ignore[arg-type]
        pd.testing.assert_frame_equal(got_t.frame, want_t.frame, check_exact=True)
        assert got_t.n == want_t.n


def dirty_days(store: Store) -> int:
    return store.count("rollup_dirty")


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_rollup_equals_base_tables(ingestor, store, case):
    load(ingestor, dataset())
    # the ingest path refreshed it after each batch
    assert dirty_days(store) == 0 and store.count("feedback_rollup") > 0
    assert_same(store, case)


def test_rollup_is_kept_up_to_date_by_incremental_ingests(ingestor, store):
    data = dataset()
    fb, it, pe = data["feedback"], data["interactions"], data["people"]
    case = dict(by=["touchpoint", "channel", "region"], period="month")
    # people and half of the interactions first; feedback about all of them arrives next
    ingestor.ingest("people", pe)
    ingestor.ingest("interactions", it.slice(0, 80))
    ingestor.ingest("feedback", fb.slice(0, 200))
    assert_same(store, case)
    ingestor.ingest("feedback", fb.slice(200))
    assert_same(store, case)
    assert dirty_days(store) == 0
    # the rest of the interactions: feedback stored before them now gets touch point and channel
    # (in a bulk block, which leaves the refresh to its end: the marks can be seen)
    with ingestor.bulk():
        ingestor.ingest("interactions", it.slice(80))
        assert dirty_days(store) > 0
        assert_same(store, case, rollup=False)  # the base tables answer, the same numbers
    assert dirty_days(store) == 0
    assert_same(store, case)
    # a profile sync that changes no segment or region leaves the rollup as it is
    with ingestor.bulk():
        ingestor.ingest("people", pe)
        assert dirty_days(store) == 0
    # a profile update moves a person to another region
    person = next(p for p in fb.column("person_id").to_pylist() if p is not None)
    with ingestor.bulk():
        ingestor.ingest(
            "people",
            pa.table({"person_id": [person], "kind": ["customer"], "region": ["far_away"]}),
        )
        assert dirty_days(store) > 0
        assert_same(store, case, rollup=False)
    assert_same(store, case)
    got = gap_table(store, by=["region"], filters={"region": "far_away"})
    assert got.n > 0
    assert_same(store, dict(by=["region"], period="week"))


def _rows_and_keys(store: Store) -> tuple[int, int, int]:
    """The rollup's rows, its distinct (day, dimensions) keys, and the most rows of one day."""
    dims = ", ".join(["day", *ru.ROLLUP_DIMENSIONS])
    keys = store.query(f"SELECT count(*) FROM (SELECT DISTINCT {dims} FROM feedback_rollup) k")
    most = store.query(
        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM feedback_rollup GROUP BY day) d"
    )
    return store.count("feedback_rollup"), int(keys[0][0]), int(most[0][0])


@pytest.mark.parametrize("per_key", [0, 10**9], ids=["index", "one-pass"])
def test_key_look_ups_answer_the_same_either_way(ingestor, store, monkeypatch, per_key):
    """``rollup_rows.by_keys`` reads the rows of the keys asked for, none else, whichever way
    DuckDB is asked (lists of keys from the primary key's index, or one pass with ``= ANY``, as
    ``SCAN_ROWS_PER_KEY`` against the table's size decides; the index's lists in chunks of
    ``LOOKUP_CHUNK``): keys not stored, repeated (in different chunks too) and none; a look-up
    inside a write transaction sees its own uncommitted rows."""
    data = dataset()
    load(ingestor, data)
    monkeypatch.setattr(rollup_rows, "SCAN_ROWS_PER_KEY", per_key)
    monkeypatch.setattr(rollup_rows, "SCAN_MIN_KEYS", 1)
    monkeypatch.setattr(rollup_rows, "LOOKUP_CHUNK", 7)
    ids = data["interactions"].column("interaction_id").to_pylist()
    wanted = [*ids[:7], "no-such-interaction", ids[3], *ids[-50:], ids[0]]
    cols = ("interaction_id", "touchpoint", "channel")
    with store.transaction() as tx:
        got = rollup_rows.by_keys(tx, "interactions", cols, wanted)
        assert got.num_rows == len(set(wanted)) - 1  # each key once
        assert sorted(got.column("interaction_id").to_pylist()) == sorted(set(wanted) - {
            "no-such-interaction"})  # fmt: skip
        want = {r[0]: r[1:] for r in tx.fetchall(f"SELECT {', '.join(cols)} FROM interactions")}
        assert {r["interaction_id"]: (r["touchpoint"], r["channel"]) for r in got.to_pylist()} \
            == {k: want[k] for k in got.column("interaction_id").to_pylist()}  # fmt: skip
        assert rollup_rows.by_keys(tx, "interactions", cols, []).num_rows == 0
        tx.execute(
            "INSERT INTO people (person_id, kind, canonical_id, first_seen_at) "
            "VALUES ('p-new', 'customer', 'p-new', ?)",
            [datetime.now(UTC)],
        )
        people = rollup_rows.lookup(tx, "people", rollup_rows.PEOPLE_COLUMNS, ["p-new", "none"])
        assert people.column("person_id").to_pylist() == ["p-new"]


def test_table_sizes_for_the_look_ups_are_kept_a_few_seconds(ingestor, store, monkeypatch):
    """DuckDB's estimated table sizes, which decide how ``by_keys`` reads, are asked once per
    table within ``Sizes.KEEP_S`` (a transaction and the store's reads share them) and asked
    again after; a table that does not exist reads as empty. PostgreSQL keeps none (its look-ups
    are one array answered by the index, whatever the size)."""
    if store.dialect != "duckdb":
        assert store.estimated_rows("people") is None
        with store.transaction() as tx:
            assert tx.estimated_rows("people") is None
        return
    from corridor.store.duckdb_store import Sizes

    ingestor.ingest("people", dataset()["people"].slice(0, 10))
    before = store.estimated_rows("people")
    assert before == 10
    ingestor.ingest("people", dataset()["people"].slice(10, 30))
    with store.transaction() as tx:
        assert tx.estimated_rows("people") == before  # kept
        assert tx.estimated_rows("no_such_table") == 0
    monkeypatch.setattr(Sizes, "KEEP_S", 0.0)
    assert store.estimated_rows("people") == 40


def test_new_feedback_adds_its_own_rollup_rows(ingestor, store):
    """A batch of new feedback records adds its own sums as rollup rows in its transaction (no
    day rebuilt: the rows outnumber the keys); the answers stay exact; a day whose rows grew past
    twice its keys + 100 is rebuilt, which folds them again; a batch re-sending a stored record
    has its days rebuilt instead."""
    data = dataset()
    fb = data["feedback"]
    ingestor.ingest("people", data["people"])
    ingestor.ingest("interactions", data["interactions"])
    case = dict(by=["touchpoint", "channel", "region", "source"], period="day")
    for start in range(0, fb.num_rows, 40):
        ingestor.ingest("feedback", fb.slice(start, 40))
        assert dirty_days(store) == 0
        rows, keys, most = _rows_and_keys(store)
        assert rows >= keys and most <= 2 * keys + 100
    assert_same(store, case)
    rows, keys, _ = _rows_and_keys(store)
    assert rows > keys  # the batches' own rows, not rebuilt days
    assert ru.rebuild(store) > 0
    assert _rows_and_keys(store)[:2] == (keys, keys)  # a rebuild folds them: one row per key
    assert_same(store, case)
    # the same day, batch after batch: past twice its keys + 100 rows, the day is rebuilt
    day = fb["occurred_at"].cast(pa.date32())[0].as_py()
    one_day = fb.filter(pa.compute.equal(fb["occurred_at"].cast(pa.date32()), day))
    dims = ", ".join(ru.ROLLUP_DIMENSIONS)
    seen = []
    for i in range(80):
        ids = pa.array([f"again-{i}-{j}" for j in range(one_day.num_rows)])
        ingestor.ingest("feedback", one_day.set_column(0, "feedback_id", ids))
        ((n,),) = store.query("SELECT count(*) FROM feedback_rollup WHERE day = ?", [day])
        ((k,),) = store.query(
            f"SELECT count(*) FROM (SELECT DISTINCT {dims} FROM feedback_rollup WHERE day = ?) d",
            [day],
        )
        assert n <= 2 * k + 100
        seen.append(n)
    assert max(seen) > 100 and any(b < a for a, b in itertools.pairwise(seen))  # folded again
    assert_same(store, case)
    # a stored record again (with a new one): the careful path, its days marked and rebuilt
    again = pa.concat_tables([fb.slice(0, 1), fb.slice(1, 1).set_column(
        0, "feedback_id", pa.array(["brand-new"]))])  # fmt: skip
    assert ingestor.ingest("feedback", again).inserted == 1
    assert dirty_days(store) == 0
    assert_same(store, case)


def test_feedback_before_its_interaction(ingestor, store):
    when = datetime(2025, 3, 4, 23, 59, tzinfo=UTC)
    fb = pa.table(
        {
            "feedback_id": ["f1", "f2"],
            "occurred_at": pa.array([when, when], pa.timestamp("us", tz="UTC")),
            "interaction_id": ["i1", "i1"],
            "source": ["survey", "survey"],
            "expectation": [7.0, 8.0],
            "experience": [5.0, 9.0],
            "nps": [9, 3],
        }
    )
    assert ingestor.ingest("feedback", fb).inserted == 2
    before = gap_table(store, by=["touchpoint", "channel"]).frame
    assert before["touchpoint"].isna().all() and before["n"].tolist() == [2]
    it = pa.table(
        {
            "interaction_id": ["i1"],
            "person_id": ["p1"],
            "occurred_at": pa.array([when], pa.timestamp("us", tz="UTC")),
            "touchpoint": ["checkout"],
            "channel": ["app"],
        }
    )
    assert ingestor.ingest("interactions", it).inserted == 1
    after = gap_table(store, by=["touchpoint", "channel"]).frame
    assert after[["touchpoint", "channel", "n"]].values.tolist() == [["checkout", "app", 2]]
    assert_same(store, dict(by=["stage", "channel"], period="day"))


@pytest.mark.parametrize(
    "case",
    [
        dict(by=["agent"]),
        dict(by=["touchpoint"], since="2025-02-01T12:00:00Z"),
        dict(filters={"agent": "a1"}),
    ],
)
def test_queries_the_rollup_cannot_answer_use_the_base_tables(ingestor, store, case):
    load(ingestor, dataset())
    q = Query.build(**case)
    assert not ru.eligible(store, q)
    assert ru.is_current(store)
    assert ru.sums(store, q, "gap") is None
    pd.testing.assert_frame_equal(gap_sums(store, q), gap_sums(base(store), q))


def test_mapping_sources_never_use_the_rollup(ingestor, store):
    load(ingestor, dataset())
    assert not ru.eligible(base(store), Query.build(by=["touchpoint"]))


def test_refresh_and_rebuild(ingestor, store):
    with ingestor.bulk():
        load(ingestor, dataset())
        days = dirty_days(store)
        assert days > 0
        assert ru.refresh(store) == days and ru.refresh(store) == 0
    assert ingestor.refresh_rollup() == 0  # nothing left for the end of the bulk block
    rows = store.count("feedback_rollup")
    assert ru.rebuild(store) == days and store.count("feedback_rollup") == rows
    assert_same(store, dict(by=["touchpoint"], period="month"))


def test_upgrade_to_v3_backfills_the_rollup(store_url, small_map):
    old = open_store(store_url, schema_version=2)
    try:
        ing = Ingestor(old)
        ing.load_map(small_map)
        load(ing, dataset())
        ing.close()
    finally:
        old.close()
    new = open_store(store_url)
    try:
        assert new.schema_version() >= 3
        assert dirty_days(new) > 0 and new.count("feedback_rollup") == 0
        case = dict(by=["touchpoint", "region"], period="month")
        assert_same(new, case, rollup=False)  # a read does not build it
        assert dirty_days(new) > 0 and new.count("feedback_rollup") == 0
        ing = Ingestor(new)
        assert ing.refresh_rollup() > 0  # as after the next ingest
        ing.close()
        assert_same(new, case)
    finally:
        new.close()


def _counting_writes(store: Store) -> list[int]:
    """Count the store's write transactions from now on (in the returned list's length), but
    the server's background workers' (text analysis, survey answers: their own work, not a
    read's)."""
    calls: list[int] = []
    original = store.transaction
    workers = {"corridor-text", "corridor-survey-answers"}

    def transaction():  # type: ignore[no-untyped-def]
        if threading.current_thread().name not in workers:
            calls.append(1)
        return original()

    store.transaction = transaction  # type: ignore[method-assign]
    return calls


def test_a_read_never_writes_and_ingest_keeps_the_rollup_current(ingestor, store):
    """GET /api/v1/gaps and /metrics/nps read: while days are dirty (a bulk import still
    running) the dirty days' rows come from the base tables, and the marks and the rollup are
    left as they are; the import's end refreshes the rollup, and the same numbers follow."""
    paths = ("gaps", "metrics/nps")
    params = {"by": "touchpoint", "period": "month"}
    # no scheduler: its jobs' own write transactions (leases, deliveries) are not reads' writes
    app = create_app(Settings(auth="off", scheduler="off"), store=store)
    with TestClient(app) as client:

        def read(path: str) -> list[dict[str, object]]:
            r = client.get(f"/api/v1/{path}", params=params)
            assert r.status_code == 200, r.text
            rows: list[dict[str, object]] = r.json()["rows"]
            assert rows
            return rows

        with ingestor.bulk():
            load(ingestor, dataset())
            dirty, rows = dirty_days(store), store.count("feedback_rollup")
            assert dirty > 0 and rows == 0
            writes = _counting_writes(store)
            during = {path: read(path) for path in paths}
            assert writes == []  # not one write transaction
            assert dirty_days(store) == dirty and store.count("feedback_rollup") == rows
        assert dirty_days(store) == 0 and store.count("feedback_rollup") > 0
        writes = _counting_writes(store)
        after = {path: read(path) for path in paths}
        assert writes == []
    assert after == during
    base_gaps = gap_table(base(store), **params).to_records()  # type: ignore[arg-type]
    assert orjson.loads(orjson.dumps(base_gaps)) == during["gaps"]


def test_serve_brings_a_stale_rollup_up_to_date_before_serving(ingestor, store):
    """Reads never write, so a rollup left stale (an upgraded store, a failed refresh) would
    answer from the base tables until the next ingest: `corridor serve` refreshes it first."""
    from corridor.cli.serve import _catch_up_rollup

    with ingestor.bulk():
        load(ingestor, dataset())
        assert dirty_days(store) > 0
        _catch_up_rollup(store)
        assert dirty_days(store) == 0 and store.count("feedback_rollup") > 0
    assert_same(store, dict(by=["touchpoint", "region"], period="month"))


def test_delta_rows_equal_the_rebuild_query():
    """A batch's own rollup rows, computed in Arrow (``rollup_rows.delta_rows``), are exactly the
    rebuild's Ibis query (``feedback_facts`` aggregated by ``_aggregate_rows``) over the same
    records: missing ratings and answers, fractional ratings, the thresholds' edges, a record's
    own touch point and partner over its interaction's, interactions and persons not stored,
    records without ratings or answers (no row)."""
    import ibis
    import numpy as np

    from corridor.analytics.core.dimensions import feedback_facts

    rng = np.random.default_rng(17)
    n = 400

    def pick(values: list[object], p_null: float = 0.0) -> list[object]:
        return [None if rng.random() < p_null else values[rng.integers(len(values))]
                for _ in range(n)]  # fmt: skip

    def scale(lo: int, hi: int, p_null: float, step: float = 1.0) -> list[object]:
        grid = list(np.arange(lo, hi + step / 2, step))
        return [None if rng.random() < p_null else float(grid[rng.integers(len(grid))])
                for _ in range(n)]  # fmt: skip

    ints = lambda lo, hi, p: [None if v is None else int(v) for v in scale(lo, hi, p)]  # noqa: E731
    when = datetime(2025, 3, 4, tzinfo=UTC).timestamp()
    rows = pa.table(
        {
            "feedback_id": [f"f{i}" for i in range(n)],
            "person_id": pick(["p1", "p2", "p3", "p4", "gone"], 0.2),
            "occurred_at": pa.array(
                [datetime.fromtimestamp(when + int(s), UTC) for s in rng.integers(0, 3 * 86400, n)],
                pa.timestamp("us", tz="UTC"),
            ),
            "touchpoint": pick(["checkout", "delivery"], 0.7),
            "interaction_id": pick(["i1", "i2", "i3", "i4", "missing"], 0.2),
            "partner_id": pick(["acme"], 0.8),
            "source": pick(["survey", "chat"], 0.1),
            "expectation": scale(0, 10, 0.2, 0.25),
            "experience": scale(0, 10, 0.2, 0.25),
            "nps": pa.array(ints(0, 10, 0.5), pa.int64()),
            "csat": pa.array(ints(1, 5, 0.6), pa.int64()),
            "ces": pa.array(ints(1, 7, 0.6), pa.int64()),
        }
    )
    interactions = pa.table(
        {
            "interaction_id": ["i1", "i2", "i3", "i4"],
            "touchpoint": ["checkout", "returns", None, "delivery"],
            "channel": ["web", None, "app", "app"],
            "partner_id": [None, "globex", "acme", None],
            "agent_id": ["a1", None, None, "a2"],
        }
    )
    people = pa.table(
        {
            "person_id": ["p1", "p2", "p3", "p4"],
            "segment": ["business", None, "consumer", "vip"],
            "region": [None, "north", "south", "north"],
        }
    )
    got = rollup_rows.delta_rows(rows, interactions.drop_columns(["agent_id"]), people)
    tables = {
        "feedback": ibis.memtable(rows),
        "interactions": ibis.memtable(interactions),
        "people": ibis.memtable(people),
    }
    t = feedback_facts(tables, ru.ROLLUP_DIMENSIONS)
    want = ibis.duckdb.connect().to_pyarrow(ru._aggregate_rows(t.mutate(day=t.occurred_at.date())))
    keys = ["day", *ru.ROLLUP_DIMENSIONS]
    assert got.column_names == list(ru.ROLLUP_COLUMNS)

    def frame(table: pa.Table) -> pd.DataFrame:
        df = table.select(list(ru.ROLLUP_COLUMNS)).to_pandas()
        df["day"] = pd.to_datetime(df["day"])
        return df.sort_values(keys, na_position="first").reset_index(drop=True)

    got_df, want_df = frame(got), frame(want)
    assert len(got_df) > 30 and len(got_df) == len(want_df)
    for col in ru.ROLLUP_COLUMNS:  # compare values, not the engines' integer widths
        g, w = got_df[col], want_df[col]
        if col not in keys:
            g, w = g.astype("float64"), w.astype("float64")
        pd.testing.assert_series_equal(g, w, check_exact=True, check_dtype=col not in keys)


def test_new_feedback_reads_its_persons_once(ingestor, store):
    """A small feedback batch reads its persons once: who is stored (the others are inserted,
    with no segment or region) and, for its own rollup rows, their segment and region."""
    when = datetime(2025, 3, 4, 12, tzinfo=UTC)
    ingestor.ingest(
        "people",
        pa.table(
            {"person_id": ["p1"], "kind": ["customer"], "segment": ["vip"], "region": ["north"]}
        ),
    )
    fb = pa.table(
        {
            "feedback_id": ["f1", "f2", "f3"],
            "person_id": ["p1", "p-new", None],
            "occurred_at": pa.array([when] * 3, pa.timestamp("us", tz="UTC")),
            "source": ["survey"] * 3,
            "expectation": [7.0, 8.0, 6.0],
            "experience": [5.0, 9.0, 6.5],
        }
    )
    assert ingestor.ingest("feedback", fb).inserted == 3
    assert dirty_days(store) == 0  # its own rollup rows, no day marked
    assert store.query("SELECT kind, segment, region FROM people WHERE person_id = 'p-new'") == [
        ("customer", None, None)
    ]
    got = gap_table(store, by=["segment", "region"]).frame
    assert sorted(got["n"].tolist()) == [1, 2]
    assert_same(store, dict(by=["segment", "region"], period="day"))
