"""Issue 18: ``corridor lake sync`` writes the operational store's fact tables to the lake as
Hive-partitioned Parquet, incrementally and idempotently, and a sync killed half-way leaves no
gap and, once run again, no duplicate. Read back with DuckDB (no Spark here); the lake store's
URLs are read without starting Spark."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import make_store_url
from corridor.api.app import create_app
from corridor.auth import accounts
from corridor.cli import app as cli_app
from corridor.errors import StoreError
from corridor.ingest.files import import_dataset
from corridor.ingest.pipeline import Ingestor
from corridor.settings import Settings
from corridor.store import locate, open_store
from corridor.store.base import Store
from corridor.store.lake import (
    FACTS,
    STAMP,
    data_files,
    is_delta,
    json_as_text,
    month_dir,
    table_files,
)
from corridor.store.lake_store import parse
from corridor.store.lake_sync import sync
from shared_builds import private_copy, simulated_company
from test_cli_server import PASSWORD, Server, corridor

#: a small company, shared with test_lake_spark.py and test_lake_connect.py
COMPANY = (150, 6, 3)


def company_and_lake(factory: pytest.TempPathFactory, name: str) -> tuple[Path, Path]:
    """A module's own copy of the small company (texts analysed on import, themes discovered)
    and its lake, synced."""
    from corridor.text.jobs import discover_themes

    shared, _ = simulated_company(factory, *COMPANY)
    path = private_copy(shared, factory.mktemp(name))
    lake = path.parent / "lake"
    with open_store(str(path)) as s:
        discover_themes(s, k=4, sample=100)
        sync(s, lake)
    return path, lake


def own_lake(path: Path, folder: Path, table_format: str = "parquet") -> tuple[Path, Path]:
    """A test's own operational store (a copy of ``path`` in ``folder``) and its lake, synced
    in ``table_format``: for tests that write records."""
    ops_path = private_copy(path, folder)
    lake = folder / table_format
    with open_store(str(ops_path)) as ops:
        sync(ops, lake, table_format=table_format)
    return ops_path, lake


class Killed(BaseException):
    """Stands for the process being killed at that point (nothing after it runs)."""


@pytest.fixture
def company(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    shared, _ = simulated_company(tmp_path_factory, *COMPANY)
    return private_copy(shared, tmp_path / "store")


def _store_rows(store: Store, table: str) -> pa.Table:
    return json_as_text(store.table(table)).to_pyarrow()


def _lake_rows(con: duckdb.DuckDBPyConnection, lake: Path, table: str) -> pa.Table | None:
    files = table_files(lake, table)
    if not files:
        return None
    return con.sql(
        "SELECT * EXCLUDE (month, _hash) FROM read_parquet(?, hive_partitioning = true)",
        params=[[str(f) for f in files]],
    ).to_arrow_table()


def assert_lake_is_store(store: Store, lake: Path) -> None:
    """Every fact table: the lake holds exactly the store's records (as multisets: no record
    missing, none twice), each in the folder of its own month; of a Delta lake, its tables'
    current versions."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        for name, fact in FACTS.items():
            mine = _store_rows(store, name)
            held = _lake_rows(con, lake, name)
            if held is None:
                assert mine.num_rows == 0, f"{name}: the lake holds none of {mine.num_rows}"
                continue
            con.register("s", mine)
            con.register("l", held)
            missing = con.sql("SELECT count(*) FROM (FROM s EXCEPT ALL FROM l)").fetchall()[0][0]
            extra = con.sql("SELECT count(*) FROM (FROM l EXCEPT ALL FROM s)").fetchall()[0][0]
            assert (missing, extra) == (0, 0), f"{name}: {missing} missing, {extra} extra"
            misplaced = con.sql(
                f"SELECT count(*) FROM read_parquet(?, hive_partitioning = true) "
                f"WHERE strftime({fact.time}, '%Y-%m') <> month",
                params=[[str(f) for f in table_files(lake, name)]],
            ).fetchall()[0][0]
            assert misplaced == 0, name
            con.unregister("s")
            con.unregister("l")


def _files(lake: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in data_files(lake)}


def test_a_sync_writes_every_record_once_and_a_second_writes_nothing(company, tmp_path):
    lake = tmp_path / "lake"
    with open_store(str(company)) as store:
        first = sync(store, lake)
        assert_lake_is_store(store, lake)
        counts = {t.table: t.rows for t in first.tables}
        assert counts["interactions"] > 1000 and counts["feedback"] > 100
        assert first.written == sum(counts.values())
        before = _files(lake)
        assert len({p.parent.name for p in before}) >= COMPANY[1]  # a folder per month
        again = sync(store, lake)
    assert again.written == 0
    assert sum(t.removed + t.files_written + t.files_removed for t in again.tables) == 0
    assert _files(lake) == before  # not a file touched
    stamp = orjson.loads((lake / STAMP).read_bytes())
    assert stamp["tables"] == counts


def _change_some(store: Store) -> dict[str, str]:
    """One new interaction (in a month of its own), one changed person, one feedback gone."""
    with store.transaction() as tx:
        pid, fid = tx.fetchall(
            "SELECT person_id, feedback_id FROM feedback WHERE person_id IS NOT NULL "
            "ORDER BY feedback_id LIMIT 1"
        )[0]
        tx.execute(
            "INSERT INTO interactions (interaction_id, person_id, occurred_at, touchpoint, "
            "channel) SELECT 'lake-new-1', person_id, ?, touchpoint, channel FROM interactions "
            "ORDER BY interaction_id LIMIT 1",
            (datetime(2031, 5, 17, 9, 30, tzinfo=UTC),),
        )
        tx.execute("UPDATE people SET segment = 'lake-changed' WHERE person_id = ?", (pid,))
        tx.execute("DELETE FROM text_analysis WHERE feedback_id = ?", (fid,))
        tx.execute("DELETE FROM feedback WHERE feedback_id = ?", (fid,))
    return {"person": pid, "feedback": fid}


def test_only_new_changed_and_removed_records_are_written(company, tmp_path):
    lake = tmp_path / "lake"
    with open_store(str(company)) as store:
        sync(store, lake)
        before = _files(lake)
        _change_some(store)
        report = {t.table: t for t in sync(store, lake).tables}
        assert_lake_is_store(store, lake)
        assert sync(store, lake).written == 0
    assert (report["interactions"].new, report["interactions"].changed) == (1, 0)
    assert (report["people"].new, report["people"].changed) == (0, 1)
    assert report["feedback"].removed == 1 and report["feedback"].new == 0
    after = _files(lake)
    written = set(after) - set(before)
    # the new interaction's month is a new folder of one file; the person's month and the
    # feedback's month were written again; every other file is as it was
    assert any("month=2031-05" in str(p) for p in written)
    untouched = {p for p in before if p in after and after[p] == before[p]}
    assert len(untouched) >= len(before) - 4


@pytest.mark.parametrize(("first", "second"), [(1, 1), (11, 3)])
def test_a_sync_killed_half_way_leaves_no_gap_and_no_duplicate(company, tmp_path, first, second):
    """Killed after the first-th file written (appends: the first sync), then after the
    second-th file written or removed of the next sync (months rewritten: killed between
    writing a month's new file and removing its old ones, a month held twice): the next sync
    completes the lake, every record once."""
    lake = tmp_path / "lake"
    steps: list[tuple[str, Path]] = []

    def kill_at(at: int) -> Callable[[str, Path], None]:
        steps.clear()

        def step(what: str, path: Path) -> None:
            steps.append((what, path))
            if len(steps) == at:
                raise Killed

        return step

    with open_store(str(company)) as store:
        with pytest.raises(Killed):
            sync(store, lake, on_step=kill_at(first))
        sync(store, lake)
        assert_lake_is_store(store, lake)
        _change_some(store)
        with pytest.raises(Killed):
            sync(store, lake, on_step=kill_at(second))
        assert steps[-1][0] == "written"  # the month's old files still there
        # a half-written file of a killed process, left behind under its hidden name
        (lake / "people").mkdir(exist_ok=True)
        stray = next((lake / "people").iterdir()) / ".part-x.parquet.1.tmp"
        stray.write_bytes(b"PAR1 half")
        sync(store, lake)
        assert_lake_is_store(store, lake)
        assert not stray.exists()
        assert sync(store, lake).written == 0


def test_the_cli_syncs_and_says_when_the_lake_was_up_to_date(company, tmp_path):
    lake = tmp_path / "lake"
    args = ["lake", "sync", "--store", str(company), "--lake", str(lake)]
    first = CliRunner().invoke(cli_app, [*args, "--format", "json"])
    assert first.exit_code == 0, first.output
    body = orjson.loads(first.stdout)
    assert sum(t["new"] for t in body["tables"]) > 1000
    again = CliRunner().invoke(cli_app, args)
    assert again.exit_code == 0, again.output
    assert "0 records written" in again.stdout and "up to date" in again.stdout
    delta = ["lake", "sync", "--store", str(company), "--lake", str(tmp_path / "delta")]
    made = CliRunner().invoke(cli_app, [*delta, "--table-format", "delta", "--format", "json"])
    assert made.exit_code == 0, made.output
    assert orjson.loads(made.stdout)["format"] == "delta"
    assert is_delta(tmp_path / "delta" / "interactions")
    wrong = CliRunner().invoke(cli_app, [*args, "--table-format", "delta"])
    assert isinstance(wrong.exception, StoreError)  # `corridor` prints it as one line
    assert "holds parquet tables" in str(wrong.exception)


def test_a_lake_store_is_not_synced_into_itself(company, tmp_path):
    lake = tmp_path / "lake"
    with open_store(str(company)) as store:
        sync(store, lake)
    url = f"spark://local[2]?lake={lake}&ops=duckdb:///{company}"

    class Lakeish:
        pass

    fake = Lakeish()
    fake.lake = lake  # type: ignore[attr-defined]
    with pytest.raises(StoreError, match="ops= store instead"):
        sync(fake, lake)  # type: ignore[arg-type]
    assert locate(url).engine == "spark"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("spark://local[2]?ops=duckdb:///x.duckdb", "gives no lake="),
        ("spark://local[2]?lake=/tmp/l", "gives no ops="),
        ("spark://?lake=/tmp/l&ops=x", "names no Spark master"),
        ("spark://local[2]?lake=/tmp/l&ops=x&fast=1", "unknown parameter(s) fast"),
        ("spark://local[2]?lake=/tmp/l&ops=sc://h:1", "not a lake store"),
    ],
)
def test_a_lake_url_that_does_not_read_says_what_is_wrong(url, says):
    with pytest.raises(StoreError, match=r".*") as e:
        parse(url)
    assert says in str(e.value)


def test_lake_urls_name_the_master_or_the_server(tmp_path):
    local = parse(f"spark://local[2]?lake={tmp_path}&ops=duckdb:///x.duckdb")
    assert (local.master, local.remote, local.lake, local.ops) == (
        "local[2]",
        None,
        tmp_path,
        "duckdb:///x.duckdb",
    )
    assert parse("spark://head:7077?lake=l&ops=o").master == "spark://head:7077"
    connect = parse("sc://head:15002?lake=l&ops=postgresql://u@db:5432/c%3Fx%26y")
    assert connect.remote == "sc://head:15002" and connect.ops == "postgresql://u@db:5432/c?x&y"


def test_opening_a_lake_store_before_any_sync_says_how_to_make_the_lake(company, tmp_path):
    with pytest.raises(StoreError, match="corridor lake sync --store OPS_URL --lake"):
        open_store(f"spark://local[2]?lake={tmp_path / 'none'}&ops=duckdb:///{company}")


def test_a_postgresql_store_syncs_alike(tmp_path_factory, tmp_path, request):
    """The same company imported into PostgreSQL: the lake holds its records, each once, a
    second sync writes nothing, and a change is written alone."""
    shared, _ = simulated_company(tmp_path_factory, *COMPANY)
    url = make_store_url("postgres", tmp_path, request)
    lake = tmp_path / "lake"
    with open_store(url) as store:
        ingestor = Ingestor(store)
        try:
            import_dataset(ingestor, shared.parent / "data")
        finally:
            ingestor.close()
        first = sync(store, lake)
        assert first.written > 1000
        assert_lake_is_store(store, lake)
        assert sync(store, lake).written == 0
        _change_some(store)
        again = {t.table: t for t in sync(store, lake).tables}
        assert_lake_is_store(store, lake)
    assert (again["interactions"].new, again["people"].changed, again["feedback"].removed) == (
        1,
        1,
        1,
    )


def test_import_into_lake_stores_the_file_and_brings_the_lake_up_to_date(
    company, tmp_path, tmp_path_factory
):
    lake = tmp_path / "lake"
    with open_store(str(company)) as store:
        sync(store, lake)
    shared, _ = simulated_company(tmp_path_factory, *COMPANY)
    rows = pq.read_table(shared.parent / "data" / "interactions.parquet").slice(0, 5)
    ids = [f"into-lake-{i}" for i in range(5)]
    rows = rows.set_column(rows.schema.get_field_index("interaction_id"), "interaction_id", [ids])
    file = tmp_path / "more.parquet"
    pq.write_table(rows, file)
    args = ["import", str(file), "--kind", "interactions", "--store", str(company)]
    done = CliRunner().invoke(cli_app, [*args, "--into-lake", str(lake)])
    assert done.exit_code == 0, done.output
    assert "5 records written" in done.output
    with open_store(str(company)) as store:
        assert_lake_is_store(store, lake)
    with duckdb.connect() as con:
        held = _lake_rows(con, lake, "interactions")
        assert held is not None and set(ids) <= set(held.column("interaction_id").to_pylist())


def test_the_lake_sync_job_is_the_servers_only_when_a_lake_is_set(company, tmp_path):
    lake = str(tmp_path / "lake")
    with open_store(str(company)) as store:
        for settings, every in ((Settings(), None), (Settings(lake_sync=lake), 900.0)):
            app = create_app(settings.model_copy(update={"store_url": store.url}), store=store)
            try:
                spec = app.state.scheduler.jobs.get("lake.sync")
                assert (spec and spec.every_s) == every
            finally:
                app.state.ingestor.close()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CORRIDOR_LAKE_SYNC", lake)
        env.setenv("CORRIDOR_LAKE_SYNC_EVERY_S", "30")
        from_env = Settings.from_env()
        assert (from_env.lake_sync, from_env.lake_sync_every_s) == (lake, 30)


def _lake_ids(lake: Path, month: str) -> set[str]:
    files = data_files(month_dir(lake, "interactions", month))
    if not files:
        return set()
    got = duckdb.sql("SELECT interaction_id FROM read_parquet(?)", params=[[str(f) for f in files]])
    return {r[0] for r in got.fetchall()}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_server_with_lake_sync_set_syncs_new_records_into_the_lake(company, tmp_path):
    """``corridor serve --lake-sync LAKE``: the scheduler's lake.sync job syncs at the start,
    and records sent to the server afterwards reach the lake without anyone running a sync."""
    lake = tmp_path / "lake"
    with open_store(str(company)) as store:
        accounts.add_user(store, "root", PASSWORD, "admin")
        _, secret = accounts.create_key(store, "root", "lake sync test")
        ((touchpoint, channel, person),) = store.query(
            "SELECT touchpoint, channel, person_id FROM interactions ORDER BY interaction_id "
            "LIMIT 1"
        )
    options = ("--lake-sync", str(lake), "--lake-sync-every", "2")
    server = Server(company, tmp_path / "server.log", *options)
    auth = {"Authorization": f"Bearer {secret}"}

    def wait_for(what: str, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 300  # when to give up, not a measure
        while not done():
            if server.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what}: not seen (server: {server.proc.poll()})\n{server.output()}")
            time.sleep(0.2)

    try:
        wait_for("the first scheduled sync", lambda: (lake / STAMP).exists())
        record = {
            "interaction_id": "served-then-synced",
            "person_id": person,
            "occurred_at": "2031-05-06T07:08:09Z",
            "touchpoint": touchpoint,
            "channel": channel,
        }
        sent = httpx.post(f"{server.base}/api/v1/interactions", headers=auth, json=[record])
        assert sent.status_code == 200, sent.text
        wait_for(
            "the new record in the lake",
            lambda: "served-then-synced" in _lake_ids(lake, "2031-05"),
        )
        health = httpx.get(f"{server.base}/api/v1/health", headers=auth).json()
        assert "lake.sync" in [j["name"] for j in health["jobs"]]
        listed = corridor("jobs", "list", "--store", f"duckdb:///{company}")
        assert listed.returncode == 0, listed.stderr
        row = next(line for line in listed.stdout.splitlines() if "lake.sync" in line)
        assert " 2 s " in row and " ok " in row, listed.stdout
    finally:
        server.stop()
    assert "lake.sync" in server.output() or "synced every 2 s" in server.output()
    with open_store(str(company)) as store:
        assert_lake_is_store(store, lake)
        ((status, runs),) = store.query(
            "SELECT last_status, runs FROM jobs WHERE name = 'lake.sync'"
        )
        assert status == "ok" and runs >= 2


def test_a_delta_lake_is_synced_alike_each_change_one_commit(company, tmp_path):
    """--table-format delta: the same records as Delta tables (deltalake, no JVM), a second
    sync commits nothing, a change rewrites only its months, and a sync killed between two
    commits is completed by the next, every record once."""
    from deltalake import DeltaTable

    lake = tmp_path / "lake"
    steps: list[str] = []

    def killed_after(at: int) -> Callable[[str, Path], None]:
        def step(what: str, path: Path) -> None:
            steps.append(what)
            if len(steps) == at:
                raise Killed

        return step

    with open_store(str(company)) as store:
        with pytest.raises(Killed):  # after the 3rd commit of the first sync
            sync(store, lake, table_format="delta", on_step=killed_after(3))
        first = sync(store, lake)  # the lake's own format from now on
        assert first.table_format == "delta"
        assert all(is_delta(lake / name) for name in FACTS)
        assert_lake_is_store(store, lake)
        versions = {n: DeltaTable(str(lake / n)).version() for n in FACTS}
        again = sync(store, lake, table_format="delta")
        assert again.written == 0
        assert {n: DeltaTable(str(lake / n)).version() for n in FACTS} == versions
        changed = _change_some(store)
        report = {t.table: t for t in sync(store, lake).tables}
        assert_lake_is_store(store, lake)
        assert (report["interactions"].new, report["people"].changed) == (1, 1)
        assert report["feedback"].removed == 1
        people = DeltaTable(str(lake / "people"))
        assert people.version() == versions["people"] + 1  # one month replaced: one commit
        assert changed["person"] in {
            r["person_id"]
            for r in people.to_pyarrow_table(filters=[("segment", "=", "lake-changed")]).to_pylist()
        }
        assert sync(store, lake).written == 0
        with pytest.raises(StoreError, match="holds delta tables, not parquet"):
            sync(store, lake, table_format="parquet")
        with pytest.raises(StoreError, match="unknown lake table format"):
            sync(store, tmp_path / "other", table_format="iceberg")
    plain = tmp_path / "plain"
    with open_store(str(company)) as store:
        sync(store, plain)
        with pytest.raises(StoreError, match="holds parquet tables, not delta"):
            sync(store, plain, table_format="delta")
