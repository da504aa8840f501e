"""The team store: a PostgreSQL server. Bulk writes go through COPY."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from corridor.errors import StoreError
from corridor.store import pg_binary
from corridor.store.base import Store, Tx

#: rows per slice of a COPY's CSV (about 1 MB of it)
_COPY_ROWS = 10_000


def _pg_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "DOUBLE PRECISION"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_date(t):
        return "DATE"
    return "TEXT"


#: a staged table of at most this many values is written with one statement (VALUES)
_VALUES_MAX = 2000
#: a staged table of at most this many values is not written at all: each statement that
#: reads it carries its rows (see :meth:`PostgresTx.stage`)
_INLINE_MAX = 256


def _plain(t: pa.DataType) -> bool:
    """A type whose Python value psycopg sends as the staged column's type takes it."""
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or (pa.types.is_timestamp(t) and t.unit != "ns")  # ns: not a datetime in Python
        or pa.types.is_date(t)
    )


def _naive_utc(table: pa.Table) -> pa.Table:
    """Times without their zone (the values are UTC, as is the session): pyarrow writes zoned
    times to CSV some 20x slower, which made them most of the cost of staging."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.tz is not None:
            table = table.set_column(i, f.name, table.column(i).cast(pa.timestamp(f.type.unit)))
    return table


def _qmarks(sql: str) -> str:
    """Our SQL uses ``?`` placeholders; psycopg wants ``%s`` (and literal ``%`` doubled)."""
    return re.sub(r"\?", "%s", sql.replace("%", "%%"))


class PostgresTx(Tx):
    dialect = "postgres"

    def __init__(self, con: psycopg.Connection[Any]) -> None:
        self._con = con
        self.touched = set()
        self.rewrote = set()
        self._staged: set[str] = set()
        #: small staged tables kept here (name → its WITH item and parameters), not written
        self._inline: dict[str, tuple[str, list[Any]]] = {}

    def _run(self, cur: psycopg.Cursor[Any], sql: str, params: Sequence[Any]) -> None:
        """Run ``sql`` (``?`` placeholders) with the rows of the small staged tables it reads
        as a ``WITH`` of ``VALUES`` before it."""
        used = [n for n in self._inline if re.search(rf"\b{n}\b", sql)] if self._inline else []
        if not used:
            cur.execute(_qmarks(sql) if params else sql, list(params) or None)
            return
        items = ", ".join(self._inline[n][0] for n in used)
        values = [v for n in used for v in self._inline[n][1]]
        text = _qmarks(sql).lstrip()
        head = re.match(r"WITH(\s+RECURSIVE)?\s", text, re.IGNORECASE)
        # the statement's own WITH items, if any, follow these
        text = f"{head.group(0)}{items}, {text[head.end() :]}" if head else f"WITH {items} {text}"
        # (its text changes with the number of rows: not worth preparing)
        cur.execute(text, values + list(params), prepare=False)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._note(sql)
        with self._con.cursor() as cur:
            self._run(cur, sql, params)
            return cur.rowcount

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._con.cursor() as cur:
            self._run(cur, sql, params)
            return list(cur.fetchall())

    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        with self._con.cursor() as cur:
            self._run(cur, sql, params)
            names = [d.name for d in cur.description or []]
            rows = cur.fetchall()
        return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})

    def stage_keys(self, name: str, keys: Sequence[str] | Sequence[int]) -> str:
        if keys and isinstance(keys[0], int):
            # integers are written into the statement as an array literal: no temporary table
            # (a catalog entry and a COPY, ~10 ms) and nothing a value could inject
            numbers = ",".join(str(int(k)) for k in keys)
            return f"SELECT unnest('{{{numbers}}}'::bigint[]) AS k"
        return super().stage_keys(name, keys)

    def stage(self, name: str, table: pa.Table) -> None:
        # ``attributes`` holds JSON text; stage it as jsonb so it lands in jsonb columns as is.
        types = ["JSONB" if f.name == "attributes" else _pg_type(f.type) for f in table.schema]
        names = [f'"{f.name}"' for f in table.schema]
        values = table.num_rows * table.num_columns
        rows: str | None = None  # a few rows: VALUES and their parameters
        params: list[Any] = []
        if 0 < values <= _VALUES_MAX and all(_plain(f.type) for f in table.schema):
            row = "(" + ", ".join(f"%s::{t}" for t in types) + ")"
            rows = ", ".join([row] * table.num_rows)
            params = [v for r in table.to_pylist() for v in r.values()]
        self._inline.pop(name, None)
        with self._con.cursor() as cur:
            if name in self._staged:  # dropped at commit: it exists only if staged in this one
                cur.execute(f"DROP TABLE IF EXISTS {name}")
                self._staged.discard(name)
            if rows is not None and values <= _INLINE_MAX:
                # a few rows (a batch's alerts, cases, history lines, keys): kept here and sent
                # with each statement that reads them, as a WITH of VALUES; a temporary table,
                # even made in one statement, cost the server ~3 ms of catalog work to create
                # and drop, several times for each alert raised
                self._inline[name] = (f"{name} ({', '.join(names)}) AS (VALUES {rows})", params)
                return
            self._staged.add(name)
            if rows is not None:
                # more rows, still few: one statement, not a CREATE and a COPY, each a round trip
                cur.execute(
                    f"CREATE TEMP TABLE {name} ON COMMIT DROP AS SELECT * FROM "
                    f"(VALUES {rows}) AS v ({', '.join(names)})",
                    params,
                    prepare=False,
                )
                return
            cols = ", ".join(f"{n} {t}" for n, t in zip(names, types, strict=True))
            cur.execute(f"CREATE TEMP TABLE {name} ({cols}) ON COMMIT DROP")
            _copy(cur, name, table)

    def append(self, target: str, table: pa.Table) -> int:
        # Straight into the table, as a plain COPY: staging in a temporary table and inserting
        # from there wrote every row twice. In binary when every column has a binary form that
        # is the value its CSV text gives (see pg_binary), else as the CSV staging reads.
        self._note(f"INSERT INTO {target}")
        if table.num_rows == 0:
            return 0
        with self._con.cursor() as cur:
            cur.execute(
                "SELECT a.attname, t.typname FROM pg_attribute a "
                "JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                [target],
            )
            types = dict(cur.fetchall())
            names = table.schema.names
            pg = [types.get(n, "") for n in names]
            if not all(
                pg_binary.encodable(f.type, t) for f, t in zip(table.schema, pg, strict=True)
            ):
                _copy(cur, target, table, columns=True)
                return table.num_rows
            cols = ", ".join(f'"{n}"' for n in names)
            with cur.copy(f"COPY {target} ({cols}) FROM STDIN (FORMAT binary)") as copy:
                copy.write(pg_binary.HEADER)
                for batch in table.to_batches(max_chunksize=_COPY_ROWS):
                    copy.write(pg_binary.encode(batch, pg))
                copy.write(pg_binary.TRAILER)
        return table.num_rows


def _copy(cur: psycopg.Cursor[Any], target: str, table: pa.Table, *, columns: bool = False) -> None:
    """COPY ``table`` into ``target`` as CSV (pyarrow writes it, in C++); ``columns``: name the
    target's columns (else the table's are the target's, in order)."""
    if table.num_rows == 0:
        return
    names = ", ".join(f'"{n}"' for n in table.schema.names)
    into = f"{target} ({names})" if columns else target
    options = pacsv.WriteOptions(include_header=False)
    with cur.copy(f"COPY {into} FROM STDIN (FORMAT csv)") as copy:
        # a slice at a time: the server parses one while pyarrow writes the next
        for batch in _naive_utc(table).to_batches(max_chunksize=_COPY_ROWS):
            buf = io.BytesIO()
            pacsv.write_csv(batch, buf, write_options=options)
            copy.write(buf.getbuffer())


class PostgresStore(Store):
    dialect = "postgres"
    #: Each reader is a server connection (a backend process) and the server runs them in
    #: parallel; eight stay well inside the default max_connections (100) with several
    #: Corridor processes and their writers on one server.
    max_readers = 8
    #: connections for small reads beside the writer (:meth:`Store.query` outside a
    #: transaction: an API key's look-up, the scheduler's next run), made when first needed
    max_side_readers = 4

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._con = self._connect(autocommit=False)
        self._side: list[psycopg.Connection[Any]] = []  # idle side connections
        self._side_slots = threading.BoundedSemaphore(self.max_side_readers)
        self._side_lock = threading.Lock()

    def _connect(self, *, autocommit: bool) -> psycopg.Connection[Any]:
        # a server that does not answer is an error after 10 s, not a hang (unless the URL says)
        url = self.url
        extra: dict[str, Any] = {} if "connect_timeout" in url else {"connect_timeout": 10}
        try:
            con = psycopg.connect(url, autocommit=autocommit, **extra)
        except psycopg.Error as e:
            raise StoreError(_connect_error(url, e)) from None
        with con.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
        if not autocommit:
            con.commit()
        return con

    def close(self) -> None:
        with self._write_lock:
            try:
                self._close_readers()
            finally:
                self._con.close()

    def _close_readers(self, *, closing: bool = True) -> None:
        # the side connections too (after a migration: none keeps a plan of the old schema)
        super()._close_readers(closing=closing)
        with self._side_lock:
            side, self._side = self._side, []
        for con in side:
            con.close()

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]] | None:
        # On a connection of its own (autocommit: each read sees what is committed), not through
        # the writer's: a small read never waits for a batch being written, nor for the
        # background work (text analysis, deliveries) queued on the write lock.
        with self._side_slots:
            with self._side_lock:
                self._check_open()
                con = self._side.pop() if self._side else None
            if con is None:
                con = self._connect(autocommit=True)
            keep = False
            try:
                with con.cursor() as cur:
                    cur.execute(_qmarks(sql) if params else sql, list(params) or None)
                    rows = list(cur.fetchall()) if cur.description is not None else []
                keep = True
                return rows
            finally:
                with self._side_lock:
                    keep = keep and not self._closed and not con.closed
                    if keep:
                        self._side.append(con)
                if not keep:
                    con.close()

    @contextmanager
    def _transaction(self) -> Iterator[Tx]:
        tx = PostgresTx(self._con)
        try:
            yield tx
        except BaseException:
            self._con.rollback()
            raise
        else:
            self._con.commit()

    def _make_ibis(self) -> Any:
        import ibis

        return ibis.connect("postgres://" + self.url.split("://", 1)[1])

    #: tables bigger than this on disk are counted from the server's statistics instead of
    #: ``count(*)``, which reads the whole table (seconds at 10 M rows)
    estimate_above_bytes = 64 * 1024 * 1024

    def row_counts(self, tables: Sequence[str]) -> tuple[dict[str, int], list[str]]:
        """A big table's count is estimated as the planner does: the rows per page of the last
        ANALYZE (``pg_class.reltuples / relpages``, kept by autovacuum) times the pages the
        table has now; a table not analysed since it had rows takes the statistics system's
        live-row count (``pg_stat_all_tables.n_live_tup``, kept as writes commit). Only a big
        table with neither (statistics reset, ``track_counts`` off) is counted exactly."""
        names = ", ".join(f"'{t}'" for t in tables)
        estimates: dict[str, int] = {}
        for name, tuples, pages, now_pages, total, live in self.query(
            "SELECT c.relname, c.reltuples, c.relpages, "
            "pg_relation_size(c.oid) / current_setting('block_size')::int, "
            "pg_total_relation_size(c.oid), pg_stat_get_live_tuples(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = current_schema() AND c.relname IN ({names})"
        ):
            if int(total) <= self.estimate_above_bytes:
                continue
            if float(tuples) >= 0 and int(pages) > 0:
                estimates[str(name)] = round(float(tuples) / int(pages) * int(now_pages))
            elif int(live or 0) > 0:
                estimates[str(name)] = int(live)
        counts = self._exact_counts([t for t in tables if t not in estimates])
        counts.update(estimates)
        return {t: counts[t] for t in tables}, [t for t in tables if t in estimates]


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _connect_error(url: str, e: psycopg.Error) -> str:
    """One line: what libpq said (the URL's password hidden) and what to check."""
    said = " ".join(str(e).replace(url, _redact(url)).split())
    said = re.sub(r"^connection (failed|is bad): ", "", said)
    low = said.lower()
    if "database" in low and "does not exist" in low:
        db = url.split("?", 1)[0].rsplit("/", 1)[-1] or "corridor"
        hint = f"create it (createdb {db}, or CREATE DATABASE) or fix the database in the URL"
    elif "role" in low and "does not exist" in low:
        hint = "fix the user name in the URL, or create that role"
    elif "password" in low:
        hint = "check the user's password (postgresql://user:password@host:5432/database)"
    elif "refused" in low or "timeout" in low or "timed out" in low:
        hint = "start the server, or fix the host and port in the URL"
    elif "resolve host" in low or "translate host" in low:
        hint = "check the host name in the URL"
    else:
        hint = "check the URL: postgresql://user:password@host:5432/database"
    return f"cannot connect to PostgreSQL at {_redact(url)}: {said}; {hint}"
