"""The feedback rollup answers exactly what the base tables answer, on both engines, and stays
exact through incremental ingests (feedback before its interaction, people updates)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pytest

from corridor.analytics import gap_table, metric_table
from corridor.analytics.core.dimensions import Query
from corridor.analytics.feedback import rollup as ru
from corridor.analytics.feedback.gaps import gap_sums
from corridor.analytics.feedback.metrics import metric_sums
from corridor.ingest.pipeline import Ingestor
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


def assert_same(store: Store, case: dict[str, object]) -> None:
    q = Query.build(**case)  # type: ignore[arg-type]
    assert ru.eligible(store, q), case
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
    assert dirty_days(store) > 0
    assert_same(store, case)
    assert dirty_days(store) == 0 and store.count("feedback_rollup") > 0


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
    ingestor.ingest("interactions", it.slice(80))
    assert dirty_days(store) > 0
    assert_same(store, case)
    # a profile sync that changes no segment or region leaves the rollup as it is
    ingestor.ingest("people", pe)
    assert dirty_days(store) == 0
    # a profile update moves a person to another region
    person = next(p for p in fb.column("person_id").to_pylist() if p is not None)
    ingestor.ingest(
        "people",
        pa.table({"person_id": [person], "kind": ["customer"], "region": ["far_away"]}),
    )
    assert dirty_days(store) > 0
    assert_same(store, case)
    got = gap_table(store, by=["region"], filters={"region": "far_away"})
    assert got.n > 0
    assert_same(store, dict(by=["region"], period="week"))


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
    assert ru.sums(store, q, "gap") is None
    pd.testing.assert_frame_equal(gap_sums(store, q), gap_sums(base(store), q))
    assert dirty_days(store) > 0  # nothing was read from the rollup, so nothing refreshed


def test_mapping_sources_never_use_the_rollup(ingestor, store):
    load(ingestor, dataset())
    assert not ru.eligible(base(store), Query.build(by=["touchpoint"]))


def test_refresh_and_rebuild(ingestor, store):
    load(ingestor, dataset())
    days = dirty_days(store)
    assert ru.refresh(store) == days and ru.refresh(store) == 0
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
        assert_same(new, dict(by=["touchpoint", "region"], period="month"))
    finally:
        new.close()
