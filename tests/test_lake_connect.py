"""Issue 18: the lake store over Spark Connect (``sc://HOST:PORT?lake=...&ops=...``).

A real Spark Connect server (pyspark's own ``spark-connect`` JAR, started with its
``spark-submit`` on ``local[2]``) runs for the module; the lake store reaches it over gRPC as a
client would reach a cluster's, and a few registered analyses (the ones that read the lake's
fact tables, snapshots of operational tables, JSON attributes, and bring steps back to Python)
give DuckDB's answers on the same company, to 1e-9. Without pyspark's Connect client
(``pip install -e '.[lake]'``) or Java the module is skipped, saying so."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from corridor.analytics.core import registry
from corridor.analytics.core.scoping import run_scoped
from corridor.errors import StoreReadOnlyError
from corridor.ingest.pipeline import Ingestor
from corridor.store import open_store
from corridor.store.base import Store
from corridor.store.lake_store import LakeStore
from corridor.store.lake_sync import sync
from test_lake_sync import company_and_lake, own_lake
from test_parity import CASES, _plain, _same

INSTALL = "pip install -e '.[lake]'"
pyspark = pytest.importorskip("pyspark", reason=f"the lake store needs pyspark: {INSTALL}")
pytest.importorskip("grpc", reason=f"Spark Connect's client needs grpcio: {INSTALL}")
pytest.importorskip("grpc_status", reason=f"Spark Connect's client needs grpcio-status: {INSTALL}")
if shutil.which("java") is None:
    pytest.skip("a Spark Connect server needs Java 17 (java not found)", allow_module_level=True)

pytestmark = [pytest.mark.spark, pytest.mark.slow]

#: analyses that read the lake's fact tables and the operational store's snapshots (the map,
#: themes), JSON attributes, and bring journey steps back to Python; response_rates reads
#: survey invitations, of which this company has none: an empty snapshot
CONNECT_ANALYSES = ["gaps", "nps", "text_themes", "journeys", "ripple", "response_rates"]
EMPTY = {"response_rates"}
SERVER = "org.apache.spark.sql.connect.service.SparkConnectServer"
#: how long the server may take to listen (it is a JVM starting Spark: ~15 s idle, more when
#: the machine is loaded); not a measure of anything, only when to give up
START_DEADLINE = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark Connect server on 127.0.0.1 (local[2]) for the module: its ``sc://`` address."""
    home = Path(pyspark.__file__).parent
    work = tmp_path_factory.mktemp("spark-connect")
    port = _free_port()
    log = work / "server.log"
    env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable}
    command = [
        str(home / "bin" / "spark-submit"),
        "--class", SERVER,
        "--master", "local[2]",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", "spark.ui.enabled=false",
        "--conf", f"spark.sql.warehouse.dir={work / 'warehouse'}",
        "spark-internal",
    ]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_DEADLINE
        while not _listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                why = f"exit {server.poll()}" if server.poll() is not None else "not listening"
                pytest.fail(f"the Spark Connect server did not start ({why}):\n{tail}")
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The small company (texts analysed on import, themes discovered) and its lake."""
    return company_and_lake(tmp_path_factory, "connect-company")


@pytest.fixture(scope="module")
def stores(connect_server: str, company: tuple[Path, Path]) -> Iterator[tuple[Store, Store]]:
    path, lake = company
    duck = open_store(str(path))
    on_connect = open_store(f"{connect_server}?lake={lake}&ops=duckdb:///{path}")
    yield duck, on_connect
    on_connect.close()
    duck.close()


def test_the_url_opens_a_lake_store_over_spark_connect(stores):
    _, on_connect = stores
    assert isinstance(on_connect, LakeStore)
    assert type(on_connect._spark).__module__.startswith("pyspark.sql.connect")


@pytest.mark.parametrize("name", CONNECT_ANALYSES)
def test_analyses_give_duckdbs_answer_over_spark_connect(stores, name):
    duck, on_connect = stores
    a = registry.analyses()[name]
    kwargs = CASES.get(name, {})
    expected = run_scoped(a, duck, None, a.bind(dict(kwargs)))
    got = run_scoped(a, on_connect, None, a.bind(dict(kwargs)))
    assert (expected.n > 0) == (name not in EMPTY), name
    assert got.n == expected.n
    assert list(got.frame.columns) == list(expected.frame.columns)
    _same(_plain(got.to_records()), _plain(expected.to_records()), f"{name} over Spark Connect")


def test_plain_reads_over_spark_connect(stores):
    duck, on_connect = stores
    sql = "SELECT max(occurred_at), count(*) FROM feedback WHERE source = ?"
    last, n = on_connect.query(sql, ("survey",))[0]
    assert (last, n) == tuple(duck.query(sql, ("survey",))[0])
    assert last.tzinfo is not None and n > 0
    joined = (
        "SELECT count(*) FROM feedback f JOIN touchpoints t ON t.key = f.touchpoint "
        "WHERE t.stage = ?"
    )
    stage = duck.query("SELECT stage FROM touchpoints ORDER BY position LIMIT 1")[0][0]
    assert on_connect.query(joined, (stage,)) == duck.query(joined, (stage,))


def test_two_lakes_on_one_server_and_a_sync_seen_by_the_open_store(
    connect_server, stores, company, tmp_path
):
    """Each lake store has a Connect session of its own (its own temporary views): a second
    lake on the same server (a Delta lake, read as its current files) changes nothing the
    first reads; records go through the operational store and a sync, which the open store
    then reads."""
    duck, on_connect = stores
    ops_path, mine = own_lake(company[0], tmp_path, "delta")
    before = on_connect.count("interactions")
    with open_store(f"{connect_server}?lake={mine}&ops=duckdb:///{ops_path}") as second:
        assert second.count("interactions") == before
        ingestor = Ingestor(second)
        try:
            batch = pa.table({"interaction_id": ["x"], "person_id": ["p"]})
            with pytest.raises(StoreReadOnlyError, match="corridor lake sync"):
                ingestor.ingest("interactions", batch)
        finally:
            ingestor.close()
        with open_store(str(ops_path)) as ops:
            with ops.transaction() as tx:
                tx.execute(
                    "INSERT INTO interactions (interaction_id, person_id, occurred_at, "
                    "touchpoint, channel) SELECT 'connect-new', person_id, ?, touchpoint, "
                    "channel FROM interactions ORDER BY interaction_id LIMIT 1",
                    (datetime(2032, 1, 2, tzinfo=UTC),),
                )
            assert sync(ops, mine).written == 1
        assert second.count("interactions") == before + 1
        t = second.table("interactions")
        got = t.filter(t.interaction_id == "connect-new").occurred_at.to_pyarrow()
        assert got.type == pa.timestamp("us", "UTC")
        assert got.to_pylist() == [datetime(2032, 1, 2, tzinfo=UTC)]
        # the first store's views are its own
        assert on_connect.count("interactions") == before == duck.count("interactions")
    # closing the second store left the first one's session working
    assert on_connect.count("interactions") == before
