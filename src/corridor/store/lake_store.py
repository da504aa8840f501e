"""The lake store: the analytics on Apache Spark over the lake's Parquet files.

URLs (``corridor --store URL``, ``open_store(URL)``)::

    spark://local[2]?lake=/data/lake&ops=postgresql://corridor@db:5432/corridor
    spark://MASTER_HOST:7077?lake=...&ops=...      a standalone cluster (spark://host:port)
    sc://HOST:15002?lake=...&ops=...               Spark Connect to a cluster

``lake``: the lake's folder (written by ``corridor lake sync``; a path every executor reads).
``ops``: the operational store (DuckDB file or PostgreSQL URL; percent-encode ``&`` in it).

The fact tables (:data:`corridor.store.lake.FACTS`) are read from the lake's Parquet files and
declared to Ibis with the operational store's own schema for them, so timestamps are UTC and
JSON attributes are JSON, exactly as the analytics see them on DuckDB or PostgreSQL. Any other
table an analysis reads (the corridor map, themes, surveys, ...) is a snapshot of the
operational store's table, copied into the Spark session when first read (and again after a
write through this store). Writes (cases, rules, users) go to the operational store; records
are never ingested here: they go through the operational store and ``corridor lake sync``.
There is no rollup: the analyses aggregate the base tables, on the engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import ibis
import ibis.expr.operations as ops
import pyarrow as pa
import sqlglot
from ibis.common.exceptions import TableNotFound

from corridor.errors import StoreError
from corridor.store.base import Store, T, Tx
from corridor.store.lake import (
    FACTS,
    STAMP,
    is_delta,
    json_as_text,
    require_lake,
    table_dir,
    table_files,
)

SCHEMES = ("spark", "sc")
FORM = "spark://local[2]?lake=PATH&ops=STORE_URL (or sc://host:15002?lake=PATH&ops=STORE_URL)"
INSTALL = "pip install 'corridor[lake]' (pyspark 4.0; it needs Java 17)"
#: tables the lake store does not keep (the rollup and the schema log are the operational
#: store's; the analyses then aggregate the base tables)
ABSENT = {
    "feedback_rollup": "rollup",
    "rollup_dirty": "rollup",
    "rollup_pending": "rollup",
    "schema_migrations": "schema log",
}
#: the session settings the lake store needs (UTC, Arrow transfer, small local shuffles)
SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


@dataclass(frozen=True)
class LakeURL:
    """A lake store URL, read."""

    url: str
    lake: Path
    ops: str
    master: str | None = None  # a Spark master (local[2], spark://host:7077, yarn)
    remote: str | None = None  # a Spark Connect URL (sc://host:15002)


def parse(url: str) -> LakeURL:
    """Read a ``spark://`` or ``sc://`` URL; a :class:`StoreError` says what is wrong."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme not in SCHEMES or not rest:
        raise StoreError(f"store URL {url!r} is not a lake store URL; use {FORM}")
    where, _, query = rest.partition("?")
    if not where:
        raise StoreError(f"store URL {url!r} names no Spark master or server; use {FORM}")
    args = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(args) - {"lake", "ops"})
    if unknown:
        raise StoreError(
            f"store URL {url!r}: unknown parameter(s) {', '.join(unknown)}; a lake store "
            f"takes lake= and ops= ({FORM})"
        )
    for name, what in (("lake", "the lake's folder"), ("ops", "the operational store's URL")):
        if not args.get(name, [""])[-1].strip():
            raise StoreError(f"store URL {url!r} gives no {name}= ({what}); use {FORM}")
    lake = Path(args["lake"][-1]).expanduser().absolute()
    ops_url = args["ops"][-1]
    if ops_url.split("://", 1)[0].lower() in SCHEMES:
        raise StoreError(
            f"store URL {url!r}: ops= must name a DuckDB or PostgreSQL store, not a lake store"
        )
    if scheme == "sc":
        return LakeURL(url, lake, ops_url, remote=f"sc://{where}")
    local = where.startswith("local") or where in ("yarn",) or where.startswith("k8s")
    return LakeURL(url, lake, ops_url, master=where if local else f"spark://{where}")


def spark_session(master: str | None = None, remote: str | None = None) -> Any:
    """The process' Spark session for ``master``, made with :data:`SPARK_CONF` (an existing
    one is reused with those settings applied); or, for ``remote``, a new Spark Connect
    session on that server (a session of the caller's own: stop it when done)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise StoreError(
            f"a lake store runs on Apache Spark, which is not installed; {INSTALL}"
        ) from None
    builder = SparkSession.builder
    if remote:
        # a Connect server's static settings (its UI) are its own: a client may not set them
        builder = builder.remote(remote)
        settings = _session_conf()
    else:
        builder = builder.master(master or "local[2]")
        settings = SPARK_CONF
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        builder = builder.appName("corridor")
        session = builder.create() if remote else builder.getOrCreate()
    except Exception as e:  # no Java, or a master/server that does not answer
        where = remote or master
        raise StoreError(
            f"cannot start a Spark session on {where}: {' '.join(str(e).split())[:300]}; "
            "check that Java 17 is installed (java -version) and the master or Spark Connect "
            "server is reachable"
        ) from None
    _configure(session)
    if remote is None:
        session.sparkContext.setLogLevel("ERROR")
    return session


def _session_conf() -> dict[str, str]:
    """The settings of :data:`SPARK_CONF` a session (not the application) holds."""
    return {k: v for k, v in SPARK_CONF.items() if not k.startswith("spark.ui")}


def _configure(session: Any) -> None:
    for key, value in _session_conf().items():
        session.conf.set(key, value)


def is_connect(session: Any) -> bool:
    """Whether ``session`` is a Spark Connect client's session (no SparkContext, no
    ``newSession``: a Connect server keeps one session per client session id)."""
    return type(session).__module__.startswith("pyspark.sql.connect")


def _own_session(session: Any, remote: str | None) -> Any:
    """A session of its own (its own temporary views) beside ``session``: a new session of
    the same Spark context, or over Spark Connect a new client session on the server
    ``remote`` (the store URL's ``sc://`` address)."""
    if not is_connect(session):
        return session.newSession()
    if remote is None:  # a Connect session given for a spark:// URL: share it
        return session
    return spark_session(remote=remote)


def open_lake_store(url: str, open_ops: Callable[..., Store], *, session: Any = None) -> LakeStore:
    """The lake store ``url`` names (see the module docstring), its operational store opened by
    ``open_ops`` (:func:`corridor.store.open_store`, passed in: this module is below it);
    ``session``: a Spark session to use instead of the one the URL names (tests share one)."""
    where = parse(url)
    require_lake(where.lake)
    ops_store = open_ops(where.ops, create=False)
    try:
        if session is None:
            made = spark_session(where.master, where.remote)
            return LakeStore(url, made, where.lake, ops_store, owned=True)
        return LakeStore(url, session, where.lake, ops_store)
    except BaseException:
        ops_store.close()
        raise


def _text_schema(schema: Any) -> Any:
    """``schema`` with JSON columns as text: what the lake's files hold."""
    return ibis.schema({n: "string" if t.is_json() else t for n, t in schema.items()})


class LakeStore(Store):
    """A Corridor store whose fact tables are the lake's, read by Spark."""

    dialect = "pyspark"  # type: ignore[assignment]
    max_readers = 4
    #: why records are not ingested here (read by the ingest pipeline)
    ingest_refusal = (
        "a lake store (spark:// or sc://) is read-only for records: import into the operational "
        "store (its ops= URL) and run `corridor lake sync --store OPS_URL --lake PATH` "
        "to bring them to the lake, or both at once: `corridor import FILE --kind KIND --store "
        "OPS_URL --into-lake PATH`"
    )

    def __init__(
        self, url: str, session: Any, lake: Path, ops_store: Store, *, owned: bool = False
    ) -> None:
        """``owned``: ``session`` was made for this store (a Spark Connect session is then
        used as it is, and stopped when the store closes)."""
        super().__init__()
        self.url = url
        self.lake = lake
        self.ops = ops_store
        self.writes_beside = ops_store.writes_beside  # (its write_beside is the store's)
        # a session of its own (its own temporary views) over the shared Spark context or
        # Connect server, so that two lake stores of one process never see each other's views
        if owned and is_connect(session):
            self._spark = session
        else:
            self._spark = _own_session(session, parse(url).remote)
        # a Connect session of its own is released on the server when the store closes
        self._release = is_connect(self._spark) and (owned or self._spark is not session)
        self._lock = threading.RLock()
        self._stamp: int | None = None
        self._schemas: dict[str, Any] = {}
        self._copied: set[str] = set()
        self._refresh()

    # -- tables ---------------------------------------------------------------------------
    def _schema(self, name: str) -> Any:
        if name not in self._schemas:
            self._schemas[name] = self.ops.table(name).schema()
        return self._schemas[name]

    def _refresh(self) -> None:
        """(Re)register the lake's tables when a sync has written since they were."""
        stamp = (require_lake(self.lake) / STAMP).stat().st_mtime_ns
        with self._lock:
            if stamp == self._stamp:
                return
            for name in FACTS:
                self._register(name)
            self._stamp = stamp

    def _register(self, name: str) -> None:
        from ibis.backends.pyspark.datatypes import PySparkSchema

        schema = self._schema(name)
        folder = table_dir(self.lake, name)
        files = table_files(self.lake, name)
        if files:
            # a Delta table is read as the Parquet files of its current version (Spark's own
            # Delta reader needs the delta-spark JARs); the month comes from their folders
            paths = [str(folder)] if not is_delta(folder) else [str(f) for f in files]
            df = self._spark.read.option("basePath", str(folder)).parquet(*paths)
            df = df.select(*schema.names)
        else:
            df = self._spark.createDataFrame([], PySparkSchema.from_ibis(_text_schema(schema)))
        df.createOrReplaceTempView(name)

    def _copy(self, name: str) -> None:
        """A snapshot of the operational table ``name`` as a view of the Spark session."""
        with self._lock:
            if name in self._copied:
                return
            t = self.ops.table(name)
            rows = json_as_text(t).to_pyarrow()
            self._schemas[name] = t.schema()
            if rows.num_rows:
                df = self._spark.createDataFrame(rows)
            else:  # Spark Connect infers no schema from no rows: give Arrow's
                from pyspark.sql.pandas.types import from_arrow_schema

                df = self._spark.createDataFrame([], from_arrow_schema(rows.schema))
            df.createOrReplaceTempView(name)
            self._copied.add(name)

    def table(self, name: str) -> Any:
        if name in ABSENT:
            raise TableNotFound(f"{name}: a lake store keeps no {ABSENT[name]}")
        if name in FACTS:
            self._refresh()
        else:
            self._copy(name)
        return ops.DatabaseTable(
            name, schema=self._schema(name), source=self.ibis, namespace=ops.Namespace()
        ).to_expr()

    def _make_ibis(self) -> Any:
        return ibis.pyspark.connect(self._spark)

    def _close_ibis(self, backend: Any) -> None:
        """Nothing: the Spark session outlives the store (its backend's disconnect stops it)."""

    # -- reads in SQL ---------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Plain SQL (DuckDB's dialect, ``?`` parameters): on the operational store when it
        names no fact table, else on Spark (operational tables it names copied in)."""
        names = _tables(sql)
        if not names & FACTS.keys():
            return self.ops.query(sql, params)
        self._refresh()
        for name in sorted(names - FACTS.keys()):
            self._copy(name)
        spark_sql = sqlglot.transpile(sql, read="duckdb", write="spark")[0]
        with self.reading():
            got = self._spark.sql(spark_sql, args=list(params) or None).toArrow()
        return [tuple(r.values()) for r in _utc(got).to_pylist()]

    # -- writes: the operational store's -------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        try:
            with self.ops.transaction() as tx:
                yield tx
        finally:
            self._forget_copies()

    def _transaction(self) -> AbstractContextManager[Tx]:  # pragma: no cover - see transaction
        return self.ops.transaction()

    def write_beside(self, work: Callable[[Tx], T]) -> T:
        try:
            return self.ops.write_beside(work)
        finally:
            self._forget_copies()

    def _forget_copies(self) -> None:
        with self._lock:
            self._copied.clear()

    def schema_version(self) -> int:
        return self.ops.schema_version()

    def migrate(self, target: int | None = None) -> list[int]:
        return self.ops.migrate() if target is None else self.ops.migrate(target)

    def close(self) -> None:
        try:
            self._close_readers()
            if self._release:  # the server drops the session's views and cached relations
                self._spark.stop()
        finally:
            self.ops.close()


def _tables(sql: str) -> set[str]:
    """The tables ``sql`` reads (common table expressions left out)."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as e:
        raise StoreError(f"cannot read the query for the lake store: {e}") from None
    ctes = {c.alias_or_name for c in tree.find_all(sqlglot.exp.CTE)}
    return {t.name for t in tree.find_all(sqlglot.exp.Table)} - ctes


def _utc(table: pa.Table) -> pa.Table:
    """Spark's timestamps (UTC, the session's zone) as zoned UTC times, as the other stores
    return them."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.tz is None:
            table = table.set_column(i, f.name, table.column(i).cast(pa.timestamp("us", "UTC")))
    return table
