"""Issue 18: every registered analysis on the lake store (Apache Spark, ``local[2]``, over the
lake ``corridor lake sync`` wrote) gives DuckDB's answer on the same small company, to 1e-9.

One Spark session for the run (its start is most of the cost), one company and lake for the
module. Select these with ``-m spark``; without pyspark installed (``pip install -e
".[lake]"``) the module is skipped, saying so."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from corridor.analytics.core import registry
from corridor.analytics.core.scoping import run_scoped
from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.errors import StoreReadOnlyError
from corridor.ingest.pipeline import Ingestor
from corridor.loop import Scheduler, lake
from corridor.loop.scheduler import job_states
from corridor.settings import Settings
from corridor.store import open_store
from corridor.store.base import Store
from corridor.store.lake_store import LakeStore, open_lake_store, spark_session
from corridor.store.lake_sync import sync
from test_lake_sync import company_and_lake, own_lake
from test_parity import CASES, _plain, _same

pytest.importorskip("pyspark", reason="the lake store needs pyspark: pip install -e '.[lake]'")

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ANALYSES = [a for a in registry.analyses().values() if not a.person]


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The small company (texts analysed on import, themes discovered) and its lake."""
    return company_and_lake(tmp_path_factory, "lake-company")


@pytest.fixture(scope="module")
def stores(spark: Any, company: tuple[Path, Path]) -> Iterator[tuple[Store, LakeStore]]:
    path, lake = company
    duck = open_store(str(path))
    on_spark = open_lake_store(
        f"spark://local[2]?lake={lake}&ops=duckdb:///{path}", open_store, session=spark
    )
    yield duck, on_spark
    on_spark.close()
    duck.close()


@pytest.mark.parametrize("a", ANALYSES, ids=lambda a: a.name)
def test_every_analysis_gives_duckdbs_answer_on_spark(stores, a):
    duck, on_spark = stores
    kwargs = CASES.get(a.name, {})
    expected = run_scoped(a, duck, None, a.bind(dict(kwargs)))
    got = run_scoped(a, on_spark, None, a.bind(dict(kwargs)))
    assert got.n == expected.n
    assert list(got.frame.columns) == list(expected.frame.columns)
    _same(_plain(got.to_records()), _plain(expected.to_records()), f"{a.name} spark")


def test_plain_reads_run_on_spark_or_on_the_operational_store(stores):
    duck, on_spark = stores
    sql = "SELECT max(occurred_at), count(*) FROM feedback WHERE source = ?"
    last, n = on_spark.query(sql, ("survey",))[0]
    assert (last, n) == tuple(duck.query(sql, ("survey",))[0])
    assert last.tzinfo is not None and n > 0
    joined = (
        "SELECT count(*) FROM feedback f JOIN touchpoints t ON t.key = f.touchpoint "
        "WHERE t.stage = ?"
    )
    stage = duck.query("SELECT stage FROM touchpoints ORDER BY position LIMIT 1")[0][0]
    assert on_spark.query(joined, (stage,)) == duck.query(joined, (stage,))
    # operational only: the operational store answers (users, keys, cases are never copied)
    assert on_spark.query("SELECT count(*) FROM users") == duck.query("SELECT count(*) FROM users")
    for table in ("feedback_rollup", "schema_migrations"):
        with pytest.raises(Exception, match="keeps no"):
            on_spark.table(table)


def test_records_are_refused_and_reach_the_lake_through_the_operational_store(
    spark, company, tmp_path
):
    ops_path, mine = own_lake(company[0], tmp_path)
    url = f"spark://local[2]?lake={mine}&ops=duckdb:///{ops_path}"
    with open_lake_store(url, open_store, session=spark) as on_spark:
        before = on_spark.count("interactions")
        ingestor = Ingestor(on_spark)  # a server makes one: the map, reads, are fine
        try:
            assert ingestor.corridor_map is not None
            batch = pa.table({"interaction_id": ["x"], "person_id": ["p"]})
            with pytest.raises(StoreReadOnlyError, match="corridor lake sync --store OPS_URL"):
                ingestor.ingest("interactions", batch)
        finally:
            ingestor.close()
        with open_store(str(ops_path)) as ops:
            with ops.transaction() as tx:
                tx.execute(
                    "INSERT INTO interactions (interaction_id, person_id, occurred_at, "
                    "touchpoint, channel) SELECT 'spark-new', person_id, ?, touchpoint, channel "
                    "FROM interactions ORDER BY interaction_id LIMIT 1",
                    (datetime(2032, 1, 2, tzinfo=UTC),),
                )
            assert on_spark.count("interactions") == before  # not in the lake yet
            assert sync(ops, mine).written == 1
        # the open store reads the lake as the sync left it
        assert on_spark.count("interactions") == before + 1
        t = on_spark.table("interactions")
        got = t.filter(t.interaction_id == "spark-new").occurred_at.to_pyarrow()
        assert got.type == pa.timestamp("us", "UTC")
        assert got.to_pylist() == [datetime(2032, 1, 2, tzinfo=UTC)]


def test_a_server_on_the_lake_store_answers_and_refuses_records_clearly(stores):
    duck, on_spark = stores
    accounts.add_user(duck, "lake-analyst", "lake-password-1", "analyst")
    _, key = accounts.create_key(duck, "lake-analyst", "lake test")
    app = create_app(Settings(store_url=on_spark.url, model_refresh="on_request"), store=on_spark)
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as client:
        got = client.get("/api/v1/gaps", params={"by": "touchpoint"}, headers=auth)
        assert got.status_code == 200, got.text
        a = registry.analyses()["gaps"]
        expected = run_scoped(a, duck, None, a.bind({"by": ["touchpoint"]}))
        _same(_plain(got.json()["rows"]), _plain(expected.to_records()), "gaps over HTTP")
        sent = client.post(
            "/api/v1/interactions", headers=auth, json=[{"interaction_id": "over-http"}]
        )
    # 409 Conflict: the store is set up to take no records (not 503: nothing is unavailable)
    assert sent.status_code == 409, sent.text
    assert sent.json()["error"]["code"] == "store_read_only"
    assert "corridor lake sync" in sent.json()["error"]["message"]


def test_the_lake_sync_job_of_a_server_on_the_lake_store_syncs_its_operational_store(
    spark, company, tmp_path
):
    """``corridor serve --store 'spark://…?lake=L&ops=O' --lake-sync L``: the job syncs O (the
    records' store) into L, and the open lake store then reads what it wrote."""
    ops_path, mine = own_lake(company[0], tmp_path)
    url = f"spark://local[2]?lake={mine}&ops=duckdb:///{ops_path}"
    with open_lake_store(url, open_store, session=spark) as on_spark:
        before = on_spark.count("interactions")
        with on_spark.transaction() as tx:  # the operational store's transaction
            tx.execute(
                "INSERT INTO interactions (interaction_id, person_id, occurred_at, touchpoint, "
                "channel) SELECT 'job-new', person_id, ?, touchpoint, channel FROM interactions "
                "ORDER BY interaction_id LIMIT 1",
                (datetime(2032, 2, 3, tzinfo=UTC),),
            )
        settings = Settings(store_url=url, lake_sync=str(mine))
        jobs = Scheduler(on_spark, settings, lake.jobs(settings))
        jobs.sync()
        assert jobs.run_now("lake.sync")
        (state,) = [j for j in job_states(on_spark) if j.name == "lake.sync"]
        assert state.last_status == "ok", state.last_message
        assert state.last_message is not None and "1 record written" in state.last_message
        assert on_spark.count("interactions") == before + 1


def test_a_delta_lake_reads_as_the_parquet_lake_does(spark, company, tmp_path):
    """A lake synced with --table-format delta: the lake store reads each Delta table's current
    version (its Parquet files; a replaced month's old files, still on disk, are not read)."""
    ops_path, delta = own_lake(company[0], tmp_path, "delta")
    url = f"spark://local[2]?lake={delta}&ops=duckdb:///{ops_path}"
    with open_store(str(ops_path)) as duck, open_lake_store(url, open_store, session=spark) as lake:
        for name in ("gaps", "nps", "journeys"):
            a = registry.analyses()[name]
            kwargs = CASES.get(name, {})
            expected = run_scoped(a, duck, None, a.bind(dict(kwargs)))
            got = run_scoped(a, lake, None, a.bind(dict(kwargs)))
            assert got.n == expected.n > 0
            _same(_plain(got.to_records()), _plain(expected.to_records()), f"{name} on Delta")
        with duck.transaction() as tx:  # every person of one month changed: a month replaced
            tx.execute(
                "UPDATE people SET segment = 'delta-changed' WHERE strftime(first_seen_at, "
                "'%Y-%m') = (SELECT min(strftime(first_seen_at, '%Y-%m')) FROM people)"
            )
        report = {t.table: t for t in sync(duck, delta).tables}
        assert report["people"].changed > 0 and report["people"].files_removed > 0
        assert lake.count("people") == duck.count("people")
        t = lake.table("people")
        changed = t.filter(t.segment == "delta-changed").count().to_pyarrow().as_py()
        assert changed == report["people"].changed
