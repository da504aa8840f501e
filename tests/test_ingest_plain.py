"""The plain-insert path (``Ingestor.ingest(..., assume_new=True)``, what a file import uses while
its chunks are new): PostgreSQL COPYs the records straight into their table, DuckDB inserts them
without ON CONFLICT. Whatever the batch holds, what lands and what is reported is what the
careful path (staged, ON CONFLICT DO NOTHING) gives: the same values, stored ids skipped and
never overwritten, repeats within the batch stored once, bad records refused around good ones.
Runs on DuckDB and PostgreSQL through the fixtures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from corridor.ingest.pipeline import Ingestor, IngestReport
from corridor.loop.rules import Rule, add_rule
from corridor.store.duckdb_store import DuckDBTx
from corridor.store.postgres_store import PostgresTx

TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
COLUMNS = (
    "interaction_id, person_id, occurred_at, touchpoint, channel, partner_id, agent_id, "
    "outcome, value, duration_minutes, attributes"
)


def interactions(ids: list[str], **overrides: list[Any]) -> pa.Table:
    """Interactions with awkward values: quotes, commas, new lines and non-ASCII text, empty
    strings beside nulls, fractions of seconds, an extra column (kept in ``attributes``)."""
    n = len(ids)
    cols: dict[str, Any] = {
        "interaction_id": ids,
        "person_id": [f"p{i % 3}" for i in range(n)],
        "occurred_at": pa.array([T0 + timedelta(minutes=i, microseconds=i) for i in range(n)], TS),
        "touchpoint": ["checkout"] * n,
        "channel": ["web", "app"] * (n // 2) + ["web"] * (n % 2),
        "partner_id": [None, ""] * (n // 2) + [None] * (n % 2),
        "agent_id": ['a "quoted", agent', "line\nbreak"] * (n // 2) + ["Zoë ✓"] * (n % 2),
        "outcome": [None] * n,
        "value": [0.1 * i if i % 2 else None for i in range(n)],
        "duration_minutes": [1e-7 * i for i in range(n)],
        "note": [f'{{"x": {i}}}' if i % 3 else None for i in range(n)],
    }
    cols.update(overrides)
    return pa.table(cols)


@pytest.fixture
def appended(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each plain append tried (so the tests know they took that path)."""
    calls: list[int] = []
    for cls in (DuckDBTx, PostgresTx):
        real = cls.append

        def spy(tx: Any, target: str, table: pa.Table, real: Any = real) -> int:
            calls.append(table.num_rows)
            return int(real(tx, target, table))

        monkeypatch.setattr(cls, "append", spy)
    return calls


def stored(ingestor: Ingestor, ids: list[str] | None = None) -> list[tuple[Any, ...]]:
    rows = ingestor.store.query(f"SELECT {COLUMNS} FROM interactions ORDER BY interaction_id")
    return [r for r in rows if ids is None or r[0] in ids]


def counts(r: IngestReport) -> tuple[int, int, int, int, int]:
    return r.received, r.accepted, r.inserted, r.duplicates, r.rejected


def batch_lines(ingestor: Ingestor) -> list[tuple[Any, ...]]:
    return ingestor.store.query(
        "SELECT accepted, duplicates, rejected FROM ingest_batches WHERE kind = 'interactions' "
        "ORDER BY received_at"
    )


def test_new_records_land_with_the_values_the_careful_path_stores(
    ingestor: Ingestor, appended: list[int]
) -> None:
    """The same records, once each way (under different ids): every stored value is equal."""
    a = [f"a{i:02}" for i in range(12)]
    b = [f"b{i:02}" for i in range(12)]
    plain = ingestor.ingest("interactions", interactions(a), assume_new=True)
    careful = ingestor.ingest("interactions", interactions(b))
    assert counts(plain) == counts(careful) == (12, 12, 12, 0, 0)
    assert appended == [12]
    by_plain, by_careful = stored(ingestor, a), stored(ingestor, b)
    assert [r[1:] for r in by_plain] == [r[1:] for r in by_careful]
    assert len(by_plain) == 12
    assert ingestor.store.count("people") == 3


def test_a_batch_mixing_new_and_stored_ids_lands_as_on_the_careful_path(
    ingestor: Ingestor, appended: list[int]
) -> None:
    """Stored ids are skipped (their rows left as they were, not overwritten), the new ones
    stored once; the report and the batch's one line in ingest_batches are the careful path's."""
    first = ingestor.ingest("interactions", interactions(["i1", "i3"], channel=["app", "app"]))
    assert counts(first) == (2, 2, 2, 0, 0)
    before = stored(ingestor)
    mixed = interactions(["i1", "i2", "i3", "i4"], channel=["web"] * 4)
    r = ingestor.ingest("interactions", mixed, assume_new=True)
    assert counts(r) == (4, 4, 2, 2, 0)
    assert appended == [4]  # tried, failed on i1, rolled back, written the careful way
    after = stored(ingestor)
    assert [x[0] for x in after] == ["i1", "i2", "i3", "i4"]
    assert [x for x in after if x[0] in ("i1", "i3")] == before  # channel still "app"
    assert {x[4] for x in after if x[0] in ("i2", "i4")} == {"web"}
    assert batch_lines(ingestor) == [(2, 0, 0), (4, 2, 0)]  # no line from the rolled-back try


def test_a_record_repeated_within_the_batch_is_stored_once(
    ingestor: Ingestor, appended: list[int]
) -> None:
    batch = interactions(["d1", "d2", "d1", "d3", "d2"])
    r = ingestor.ingest("interactions", batch, assume_new=True)
    assert counts(r) == (5, 5, 3, 2, 0)
    assert appended == []  # seen before writing: the careful way at once, no failed COPY
    assert [x[0] for x in stored(ingestor)] == ["d1", "d2", "d3"]
    # the first of the repeats is the one kept, as on the careful path
    careful = ingestor.ingest("interactions", interactions(["e1", "e2", "e1", "e3", "e2"]))
    assert counts(careful) == counts(r)
    assert [x[1:] for x in stored(ingestor, ["d1", "d2", "d3"])] == [
        x[1:] for x in stored(ingestor, ["e1", "e2", "e3"])
    ]


def test_good_records_around_a_bad_one_land_and_the_bad_one_is_reported(
    ingestor: Ingestor, appended: list[int]
) -> None:
    batch = interactions(["g1", "g2", "g3"], touchpoint=["checkout", "nowhere", "checkout"])
    r = ingestor.ingest("interactions", batch, assume_new=True)
    assert counts(r) == (3, 2, 2, 0, 1)
    assert appended == [2]
    assert [(e.row, e.field) for e in r.errors] == [(2, "touchpoint")]
    assert [x[0] for x in stored(ingestor)] == ["g1", "g3"]
    assert batch_lines(ingestor) == [(2, 0, 1)]


def test_rules_and_rollup_marks_read_the_records_of_a_plain_batch(
    ingestor: Ingestor, appended: list[int]
) -> None:
    """A broken-promise rule watches interactions, and stored feedback about them marks its
    days for the rollup: both read the batch by name, staged only then."""
    store = ingestor.store
    add_rule(store, Rule("promises", "broken_promise", {"per": "record"}), actor="ana")
    now = datetime.now(UTC)
    ingestor.ingest(
        "feedback",
        pa.table({
            "feedback_id": ["f1"], "person_id": ["p1"], "occurred_at": pa.array([now], TS),
            "touchpoint": ["checkout"], "interaction_id": ["late"], "source": ["survey"],
            "nps": [3],
        }),
    )  # fmt: skip
    assert store.query("SELECT count(*) FROM rollup_dirty") == [(0,)]  # refreshed after it
    batch = interactions(
        ["late", "quick"],
        occurred_at=pa.array([now, now], TS),
        duration_minutes=[7.0, 2.0],
    )
    with ingestor.bulk():  # the marks stay until the block ends and the rollup is refreshed
        r = ingestor.ingest("interactions", batch, assume_new=True)
        assert counts(r) == (2, 2, 2, 0, 0) and appended == [2]
        assert store.query("SELECT count(*) FROM rollup_dirty") == [(1,)]
    got = store.query("SELECT rule_id, subject FROM alerts")
    assert [tuple(x) for x in got] == [("promises", "interactions=late|promise=checkout-3min")]
