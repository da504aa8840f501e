"""The store on both engines: schema, migrations that keep data, maps, Ibis reads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from corridor.domain.contract import KINDS
from corridor.domain.corridor_map import CorridorMap
from corridor.errors import CorridorMapError, SchemaVersionError, StoreError
from corridor.store import open_store
from corridor.store.maps import load_map, save_map
from corridor.store.migrations import LATEST


def test_fresh_store_is_at_latest_schema(store_url):
    """Made by open_store, migration by migration (the ``store`` fixture clones a template)."""
    with open_store(store_url) as store:
        assert store.schema_version() == LATEST
        for kind in KINDS:
            assert store.count(kind) == 0


def test_every_contract_field_has_a_column(store):
    """The frozen migrations and the contract agree: each stored field is a column."""
    for kind in KINDS.values():
        columns = set(store.table(kind.name).columns)
        wanted = {f.name for f in kind.stored_fields} | {"attributes"}
        assert wanted <= columns, (kind.name, wanted - columns)


def test_upgrade_from_v1_keeps_data(store_url):
    """A store made by schema v1, with data in it, is upgraded in place and loses nothing."""
    old = open_store(store_url, schema_version=1)
    assert old.schema_version() == 1
    now = datetime(2025, 3, 1, tzinfo=UTC)
    with old.transaction() as tx:
        tx.execute(
            "INSERT INTO people (person_id, kind, segment, first_seen_at) VALUES (?, ?, ?, ?)",
            ("p1", "customer", "premium", now),
        )
        tx.execute(
            "INSERT INTO interactions (interaction_id, person_id, occurred_at, touchpoint, "
            "channel, value) VALUES (?, ?, ?, ?, ?, ?)",
            ("i1", "p1", now, "checkout", "web", 12.5),
        )
    old.close()

    new = open_store(store_url)
    try:
        assert new.schema_version() == LATEST
        assert new.query("SELECT person_id, kind, segment, canonical_id FROM people") == [
            ("p1", "customer", "premium", "p1")
        ]
        assert new.query("SELECT interaction_id, person_id, value FROM interactions") == [
            ("i1", "p1", 12.5)
        ]
        assert new.count("person_merges") == 0
        versions = [r[0] for r in new.query("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == list(range(1, LATEST + 1))
    finally:
        new.close()


def test_table_expressions_are_ibis_own_and_follow_a_migration(store_url):
    """Store.table keeps each table's schema instead of asking the catalog on every call: the
    expression is the one Ibis' own table() makes, and a migration (a new column) is seen."""
    store = open_store(store_url, schema_version=1)
    try:
        first = store.table("people")
        assert "canonical_id" not in first.columns
        assert store.table("people").equals(first)
        assert store.table("people").equals(store.ibis.table("people"))
        store.migrate()
        assert "canonical_id" in store.table("people").columns
        assert store.table("people").equals(store.ibis.table("people"))
        assert store.table("people").count().execute() == 0
    finally:
        store.close()


def test_store_from_newer_corridor_is_refused(store_url):
    s = open_store(store_url)
    with s.transaction() as tx:
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (LATEST + 1, "from the future", datetime.now(UTC)),
        )
    s.close()
    with pytest.raises(SchemaVersionError, match="upgrade Corridor"):
        open_store(store_url)


def test_unknown_scheme_and_unreachable_server_say_what_to_do():
    with pytest.raises(StoreError, match="unsupported store URL scheme 'mysql'"):
        open_store("mysql://localhost/db")
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL"):
        open_store("postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=2")


def test_duckdb_file_locked_by_another_process_is_explained(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "locked.duckdb"
    open_store(f"duckdb:///{path}").close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,time; c=duckdb.connect({str(path)!r}); "
            "print('ready', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreError, match="another process"):
            open_store(f"duckdb:///{path}")
    finally:
        holder.kill()
        holder.wait()


def test_map_round_trip_and_history(store, small_map):
    assert load_map(store) is None
    assert save_map(store, small_map) == 1
    assert load_map(store) == small_map
    rows = store.query(
        "SELECT key, stage, stage_position, department FROM touchpoints ORDER BY position"
    )
    assert rows[1] == ("checkout", "purchase", 2, "ecommerce")
    assert store.query("SELECT key, touchpoint, operator, threshold FROM promises") == [
        ("checkout-3min", "checkout", "<=", 3.0)
    ]
    assert save_map(store, small_map) == 2
    assert store.count("corridor_maps") == 2
    assert store.count("touchpoints") == len(small_map.touchpoints)


def test_map_that_drops_used_touchpoints_is_refused(ingestor, store, small_map):
    import pyarrow as pa

    ingestor.ingest(
        "interactions",
        pa.table(
            {
                "interaction_id": ["i1"],
                "person_id": ["p1"],
                "occurred_at": ["2025-01-01"],
                "touchpoint": ["support_call"],
                "channel": ["voice"],
            }
        ),
    )
    data = small_map.model_dump()
    data["touchpoints"] = [t for t in data["touchpoints"] if t["key"] != "support_call"]
    smaller = CorridorMap.from_dict(data)
    with pytest.raises(CorridorMapError, match="support_call"):
        save_map(store, smaller)
    assert save_map(store, smaller, force=True) >= 2


def test_ibis_tables_read_the_same_on_both_engines(ingestor, store):
    import pyarrow as pa

    ingestor.ingest(
        "interactions",
        pa.table(
            {
                "interaction_id": ["a", "b", "c"],
                "person_id": ["p1", "p1", "p2"],
                "occurred_at": ["2025-01-01T10:00:00Z", "2025-01-02T10:00:00+02:00", "2025-02-01"],
                "touchpoint": ["checkout", "checkout", "home_delivery"],
                "channel": ["web", "app", "partner"],
                "value": ["10", "20.5", None],
            }
        ),
    )
    t = store.table("interactions")
    out = (
        t.group_by("touchpoint")
        .aggregate(n=t.count(), total=t.value.cast("float64").sum())
        .order_by("touchpoint")
        .to_pyarrow()
        .to_pylist()
    )
    assert out == [
        {"touchpoint": "checkout", "n": 2, "total": 30.5},
        {"touchpoint": "home_delivery", "n": 1, "total": None},
    ]
    ts = store.query("SELECT occurred_at FROM interactions WHERE interaction_id = 'b'")[0][0]
    assert ts == datetime(2025, 1, 2, 8, 0, tzinfo=UTC)


def test_small_reads_and_writes_beside_a_batch_being_written(store):
    """``Store.query`` and ``Store.write_beside`` do not queue behind a write transaction held
    open in another thread on DuckDB (they did: every small read took the write lock); a write
    beside that conflicts with the open transaction's row runs again, after it, and nothing is
    lost. On PostgreSQL a small read runs on a connection of its own too (it waited for the
    write lock: an API key's look-up queued behind background work); a write beside is an
    ordinary transaction there: the same results, after the writer."""
    import threading

    with store.transaction() as tx:
        tx.execute("CREATE TABLE beside (id INTEGER PRIMARY KEY, v INTEGER)")
        tx.execute("INSERT INTO beside VALUES (1, 0), (2, 0)")
    holding, release = threading.Event(), threading.Event()

    def long_batch() -> None:
        with store.transaction() as tx:
            tx.execute("UPDATE beside SET v = 10 WHERE id = 1")
            holding.set()
            release.wait(30)

    writer = threading.Thread(target=long_batch)
    writer.start()
    assert holding.wait(30)
    done: list[object] = []

    def small_work() -> None:
        done.append(store.query("SELECT v FROM beside ORDER BY id"))  # the committed state
        done.append(
            store.write_beside(lambda tx: tx.execute("UPDATE beside SET v = 2 WHERE id = 2"))
        )

    worker = threading.Thread(target=small_work)
    worker.start()
    worker.join(5)
    if store.dialect == "duckdb":
        assert not worker.is_alive() and done == [[(0,), (0,)], 1]
    else:  # the read came back while the batch was still being written; the write waits
        assert done[:1] == [[(0,), (0,)]]
    conflicting: list[object] = []
    other = threading.Thread(
        target=lambda: conflicting.append(
            store.write_beside(lambda tx: tx.execute("UPDATE beside SET v = v + 5 WHERE id = 1"))
        )
    )
    other.start()
    release.set()
    writer.join(30)
    worker.join(30)
    other.join(30)
    assert done == [[(0,), (0,)], 1] or store.dialect == "postgres"
    assert conflicting == [1]
    # the conflicting write ran after the batch: 10 + 5, not 0 + 5 over it
    assert store.query("SELECT id, v FROM beside ORDER BY id") == [(1, 15), (2, 2)]


def test_row_counts_are_exact_unless_a_big_table_is_estimated(store):
    """Health's counts: exact on both engines for tables under the size limit; on PostgreSQL a
    table over it is counted from the planner's statistics (``pg_class.reltuples``, which
    ANALYZE sets to the exact count on a table this small) and named as estimated."""
    now = datetime(2025, 3, 1, tzinfo=UTC)
    with store.transaction() as tx:
        for i in range(7):
            tx.execute(
                "INSERT INTO people (person_id, kind, first_seen_at) VALUES (?, ?, ?)",
                (f"p{i}", "customer", now),
            )
    counts, estimated = store.row_counts(["people", "interactions"])
    assert counts == {"people": 7, "interactions": 0} and estimated == []
    if store.dialect != "postgres":
        return
    store.query("SELECT 1")  # the reader connections exist before ANALYZE is run beside them
    with store.transaction() as tx:
        tx.execute("ANALYZE people")
        tx.execute("ANALYZE interactions")
    store.estimate_above_bytes = 0  # every table with pages counts as big
    counts, estimated = store.row_counts(["people", "interactions"])
    assert "people" in estimated and counts["people"] == 7
    assert counts["interactions"] == 0


def test_a_big_table_never_analysed_is_estimated_from_live_rows(store):
    """A table that grew before any ANALYZE (a first import, before autovacuum comes by) is not
    counted with ``count(*)`` either: the statistics system's live-row count stands in."""
    if store.dialect != "postgres":
        pytest.skip("PostgreSQL's statistics")
    if int(store.query("SHOW server_version_num")[0][0]) < 150000:
        pytest.skip("pg_stat_force_next_flush needs PostgreSQL 15")
    now = datetime(2025, 3, 1, tzinfo=UTC)
    with store.transaction() as tx:
        for i in range(5):
            tx.execute(
                "INSERT INTO people (person_id, kind, first_seen_at) VALUES (?, ?, ?)",
                (f"p{i}", "customer", now),
            )
    with store.transaction() as tx:  # the writer's counts reach the statistics as it commits
        tx.fetchall("SELECT pg_stat_force_next_flush()")
    store.estimate_above_bytes = 0
    counts, estimated = store.row_counts(["people"])
    assert counts == {"people": 5} and estimated == ["people"]


@pytest.mark.parametrize("rows", [3, 400])
def test_staged_tables_read_back_as_given(store, rows):
    """A staged table reads back with its values, types and NULLs, few rows (on PostgreSQL one
    statement with VALUES) or many (COPY), staged twice under one name in a transaction."""
    from datetime import UTC, date, datetime, timedelta

    import pyarrow as pa

    at = datetime(2025, 3, 30, 1, 30, tzinfo=UTC)
    table = pa.table(
        {
            "k": pa.array([f"k'{i}%s" if i % 3 else None for i in range(rows)], pa.string()),
            "n": pa.array([i if i % 4 else None for i in range(rows)], pa.int64()),
            "x": pa.array([i / 3 if i % 5 else None for i in range(rows)], pa.float64()),
            "ok": pa.array([i % 2 == 0 for i in range(rows)], pa.bool_()),
            "ts": pa.array(
                [at + timedelta(minutes=i) for i in range(rows)], pa.timestamp("us", tz="UTC")
            ),
            "day": pa.array(
                [date(2025, 1, 1) + timedelta(days=i) for i in range(rows)], pa.date32()
            ),
        }
    )
    with store.transaction() as tx:
        tx.stage("_staged_back", table.slice(0, 1))
        tx.stage("_staged_back", table)  # again, in the same transaction
        got = tx.fetchall("SELECT k, n, x, ok, ts, day FROM _staged_back ORDER BY ts")
    want = [tuple(r.values()) for r in table.to_pylist()]
    assert len(got) == rows
    for g, w in zip(got, want, strict=True):
        assert g[:2] == w[:2] and g[3:] == w[3:]
        assert (g[2] is None and w[2] is None) or abs(g[2] - w[2]) < 1e-12
    with store.transaction() as tx:  # dropped at the commit: staged again in the next one
        tx.stage("_staged_back", table.slice(0, 2))
        assert tx.fetchall("SELECT count(*) FROM _staged_back") == [(2,)]


def test_small_staged_tables_serve_every_kind_of_statement(store):
    """A few staged rows (on PostgreSQL not written: each statement that reads them carries
    them as a WITH of VALUES) serve a SELECT with an alias, a statement with WITH items of its
    own, an INSERT ... SELECT, an UPDATE ... FROM and a DELETE, with parameters before and
    after; a name staged again (larger, then small again) reads as the last rows staged, and
    a name that only begins like a staged one is not taken for it."""
    import pyarrow as pa

    def keys(*names: str) -> pa.Table:
        return pa.table({"k": list(names), "n": list(range(len(names)))})

    with store.transaction() as tx:
        tx.execute("CREATE TABLE scratch_staged (k VARCHAR PRIMARY KEY, n BIGINT)")
        tx.stage("_few", keys("a", "b", "c"))
        tx.stage("_few_more", keys("z"))
        assert tx.fetchall(
            "SELECT f.k, f.n + ? FROM _few f WHERE f.n >= ? ORDER BY f.k", (10, 1)
        ) == [("b", 11), ("c", 12)]
        assert tx.fetchall(
            "WITH doubled AS (SELECT k, n * 2 AS n FROM _few) "
            "SELECT d.k, d.n FROM doubled d JOIN _few_more m ON m.k <> d.k WHERE d.n > ? "
            "ORDER BY 1",
            (0,),
        ) == [("b", 2), ("c", 4)]
        assert tx.execute("INSERT INTO scratch_staged (k, n) SELECT k, n FROM _few") == 3
        tx.stage("_few", keys("b", "c"))
        assert (
            tx.execute(
                "UPDATE scratch_staged SET n = scratch_staged.n + f.n + ? FROM _few f "
                "WHERE scratch_staged.k = f.k",
                (100,),
            )
            == 2
        )
        tx.stage("_few", pa.table({"k": [f"x{i}" for i in range(300)], "n": list(range(300))}))
        assert tx.fetchall("SELECT count(*) FROM _few") == [(300,)]
        tx.stage("_few", keys("a"))
        assert tx.execute("DELETE FROM scratch_staged WHERE k IN (SELECT k FROM _few)") == 1
        assert tx.fetchall("SELECT k, n FROM scratch_staged ORDER BY k") == [("b", 101), ("c", 103)]
        tx.execute("DROP TABLE scratch_staged")
