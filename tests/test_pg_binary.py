"""PostgreSQL's binary COPY (corridor.store.pg_binary): every Arrow type it encodes lands as the
value the CSV path stores, NULLs and edge values included; the types it cannot encode that way
go by CSV. Needs PostgreSQL (``CORRIDOR_TEST_POSTGRES``)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pytest

from corridor.store import pg_binary
from corridor.store.base import Store

COLUMNS = {
    "id": "VARCHAR PRIMARY KEY",
    "s": "VARCHAR",
    "t": "TEXT",
    "attributes": "JSONB",
    "ts": "TIMESTAMPTZ",
    "ts_naive": "TIMESTAMP",
    "f": "DOUBLE PRECISION",
    "i4": "INTEGER",
    "i8": "BIGINT",
    "b": "BOOLEAN",
    "d": "DATE",
    "nothing": "VARCHAR",
}


def sample() -> pa.Table:
    us = pa.timestamp("us", tz="UTC")
    return pa.table({
        "id": ["r1", "r2", "r3", "r4"],
        "s": ["plain", "", None, 'quote " comma , new\nline Zoë ✓'],
        "t": [None, "x" * 5000, "tab\there", "\\backslash"],
        "attributes": ['{"a": 1, "b": [true, null]}', None, "[]", '"text"'],
        "ts": pa.array([datetime(2000, 1, 1, tzinfo=UTC), datetime(1969, 12, 31, 23, 59, 59,
                        999999, tzinfo=UTC), None, datetime(2025, 3, 1, 10, 0, 0, 123456,
                        tzinfo=UTC)], us),
        "ts_naive": pa.array([datetime(1999, 12, 31, 23, 59, 59), None,
                              datetime(2030, 6, 1, 12), datetime(1970, 1, 1)],
                             pa.timestamp("ms")),
        "f": [0.1, None, -1e-300, 1 / 3],
        "i4": pa.array([2**31 - 1, -(2**31), None, 0], pa.int32()),
        "i8": pa.array([2**63 - 1, None, -1, 7], pa.int64()),
        "b": [True, False, None, True],
        "d": pa.array([date(2000, 1, 1), date(1970, 1, 1), None, date(1900, 2, 28)],
                      pa.date32()),
        "nothing": pa.nulls(4),
    })  # fmt: skip


@pytest.fixture
def pg(store: Store) -> Store:
    if store.dialect != "postgres":
        pytest.skip("PostgreSQL's COPY")
    cols = ", ".join(f"{n} {t}" for n, t in COLUMNS.items())
    with store.transaction() as tx:
        tx.execute(f"CREATE TABLE by_csv ({cols})")
        tx.execute(f"CREATE TABLE by_binary ({cols})")
    return store


def rows(store: Store, table: str) -> list[tuple[Any, ...]]:
    return store.query(f"SELECT {', '.join(COLUMNS)} FROM {table} ORDER BY id")


def test_binary_copy_stores_what_the_csv_path_stores(pg: Store, monkeypatch) -> None:
    table = sample()
    encoded: list[int] = []
    real = pg_binary.encode

    def spy(batch: Any, columns: Any) -> memoryview:
        encoded.append(batch.num_rows)
        return real(batch, columns)

    monkeypatch.setattr(pg_binary, "encode", spy)
    with pg.transaction() as tx:
        tx.stage("_rows", table)  # CSV, as every staged table
        tx.execute(f"INSERT INTO by_csv SELECT {', '.join(COLUMNS)} FROM _rows")
        assert tx.append("by_binary", table) == 4
    assert encoded == [4]
    got, want = rows(pg, "by_binary"), rows(pg, "by_csv")
    assert got == want
    assert got[0][1:4] == ("plain", None, {"a": 1, "b": [True, None]})
    assert got[3][6] == 1 / 3 and got[2][6] == -1e-300 and not math.isnan(got[0][6])


def test_types_without_a_faithful_binary_form_go_by_csv(pg: Store, monkeypatch) -> None:
    assert not pg_binary.encodable(pa.float32(), "float8")
    assert not pg_binary.encodable(pa.timestamp("ns"), "timestamptz")
    assert not pg_binary.encodable(pa.int64(), "int4")
    assert not pg_binary.encodable(pa.uint32(), "int4")
    assert not pg_binary.encodable(pa.string(), "int4")
    monkeypatch.setattr(pg_binary, "encode", None)  # would fail if called
    table = pa.table({
        "id": ["a", "b"], "f": pa.array([0.1, None], pa.float32()),
        "ts": pa.array([1_700_000_000_123_456_789, None], pa.timestamp("ns", tz="UTC")),
    })  # fmt: skip
    with pg.transaction() as tx:
        assert tx.append("by_binary", table) == 2
    got = pg.query("SELECT id, f, ts FROM by_binary ORDER BY id")
    assert got[0][1] == 0.1  # the float32's CSV text, 0.1, not 0.10000000149011612
    assert got[0][2] == datetime(2023, 11, 14, 22, 13, 20, 123457, tzinfo=UTC)
    assert got[1][1:] == (None, None)
