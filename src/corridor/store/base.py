"""The store: one per URL. Schema and migrations, bulk writes, and Ibis tables for reads.

Writes go through :meth:`Store.transaction`, which yields a :class:`Tx` with a small, portable
vocabulary (execute, fetch, stage an Arrow table, bulk insert). SQL passed to a Tx uses ``?`` for
parameters and the subset of SQL both DuckDB and PostgreSQL speak (``ON CONFLICT``,
``UPDATE ... FROM``), so logic above the store is written once.

Reads go through Ibis tables (:meth:`Store.table`) and run concurrently under the store's one
rule, :meth:`Store.reading`: at most :attr:`Store.max_readers` at a time (per engine), each
thread on a backend (a DuckDB cursor, a PostgreSQL connection) no other thread uses.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import ibis.expr.operations as ops
import pyarrow as pa

from corridor.errors import SchemaVersionError, StoreError
from corridor.store import migrations as mig
from corridor.store.versions import DERIVED, DataVersions
from corridor.store.writelock import WriteLock

Dialect = Literal["duckdb", "postgres"]
T = TypeVar("T")


#: the table a statement writes to (INSERT, UPDATE, DELETE, and DDL)
_WRITES = re.compile(
    r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?|"
    r"(?:CREATE|ALTER|DROP)\s+(?:TABLE|INDEX|VIEW)(?:\s+IF(?:\s+NOT)?\s+EXISTS)?)\s+(\w+)",
    re.IGNORECASE,
)
#: statements that change no table's rows
_NO_CHANGE = ("SELECT", "WITH", "SET", "ANALYZE", "CHECKPOINT", "VACUUM", "PRAGMA", "SHOW")
#: the store's operational tables, which no analysis reads: writes to them (the scheduler's
#: leases, deliveries, sessions, cases) leave :meth:`Store.data_version` as it is
OPERATIONAL = frozenset(
    {
        "jobs", "outbox", "deliveries", "webhook_endpoints", "notification_prefs", "alerts",
        "cases", "case_events", "case_root_causes", "alert_rules", "sla_policies", "users",
        "api_keys", "login_failures", "web_sessions", "audit_log", "report_schedules",
        "report_deliveries",
    }
)  # fmt: skip


class Tx(ABC):
    """A write transaction. Leaving the ``with`` block commits; an exception rolls back."""

    dialect: Dialect
    #: the tables this transaction wrote to ("*": a statement whose target is not known)
    touched: set[str]
    #: :meth:`Store.rules_version` when the transaction began
    rules_version: Any = None
    #: those of them it may have removed or rewritten rows of (any statement but an INSERT)
    rewrote: set[str]

    @property
    def json_type(self) -> str:
        """The engine's JSON column type, for ``CAST(? AS …)`` (JSONB on PostgreSQL, JSON on
        DuckDB: :data:`corridor.store.migrations.TYPES`)."""
        return mig.TYPES[self.dialect]["json"]

    def _note(self, sql: str) -> None:
        """Record the table ``sql`` writes to, if it writes, and whether it may remove or
        rewrite rows (see :meth:`Store.data_version` and :mod:`corridor.store.versions`)."""
        m = _WRITES.match(sql)
        if m:
            table = m.group(1).lower()
            self.touched.add(table)
            if not sql.lstrip()[:6].upper().startswith("INSERT"):
                self.rewrote.add(table)
        elif not sql.lstrip()[:10].upper().startswith(_NO_CHANGE):
            self.touched.add("*")
            self.rewrote.add("*")

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed (or -1 when unknown)."""

    def estimated_rows(self, table: str) -> int | None:
        """About how many rows ``table`` holds, where the engine keeps an estimate that is cheap
        to read (None: not known here)."""
        return None

    @abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table: ...

    @abstractmethod
    def stage(self, name: str, table: pa.Table) -> None:
        """Make ``table`` readable as a temporary relation ``name`` until the transaction ends."""

    def stage_keys(self, name: str, keys: Sequence[str] | Sequence[int]) -> str:
        """Stage ``keys`` (text, or integers when the first is one) as the one-column relation
        ``name`` (column ``k``) and return ``SELECT k FROM name``, for ``column IN (...)`` over
        many values: one staged table instead of a parameter each (which both engines plan
        slowly by the hundred). Use the SELECT returned, not ``name``: an engine may answer
        integers without staging them (PostgreSQL writes them into the SELECT)."""
        kind = pa.int64() if keys and isinstance(keys[0], int) else pa.string()
        self.stage(name, pa.table({"k": pa.array(list(keys), kind)}))
        return f"SELECT k FROM {name}"

    def append(self, target: str, table: pa.Table) -> int:
        """Insert every row of ``table`` into ``target`` (columns by name), none skipped: a row
        whose key is stored already fails the statement, and with it the transaction. For
        records known to be new; returns the rows inserted. This staging version suits an
        engine that reads a staged table in place; PostgreSQL copies straight into ``target``."""
        self.stage("_append", table)
        cols = ", ".join(table.schema.names)
        return self.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM _append")

    def insert(
        self,
        target: str,
        staged: str,
        columns: Sequence[str],
        *,
        key: Sequence[str],
        update: Sequence[str] = (),
    ) -> int:
        """Insert the staged rows into ``target``; rows whose key exists are skipped, or, when
        ``update`` names columns, those columns are overwritten. Returns rows inserted/updated."""
        cols = ", ".join(columns)
        if update:
            sets = ", ".join(f"{c} = excluded.{c}" for c in update)
            conflict = f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
        else:
            conflict = f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
        return self.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staged} {conflict}")


class Store(ABC):
    """A Corridor store. Open one with :func:`corridor.store.open_store`."""

    dialect: Dialect
    url: str

    #: how many reads may run at once (:meth:`reading`); each engine sets its own
    max_readers: int = 4
    #: whether :meth:`write_beside` runs beside the main writer (else it is an ordinary
    #: :meth:`transaction`, and work moved into it gains nothing)
    writes_beside: bool = False

    def __init__(self) -> None:
        self._write_lock = WriteLock()
        # reads: a slot of the semaphore and a backend of the pool while reading(); threads that
        # read outside reading() (scripts, the CLI, tests) get a backend of their own
        self._readers = threading.BoundedSemaphore(self.max_readers)
        self._backends_lock = threading.Lock()
        self._idle: list[Any] = []  # pooled backends no reader holds now
        self._generation = 0  # bumped when the backends are closed (store closed or migrated)
        self._own: dict[threading.Thread, Any] = {}  # per-thread backends outside reading()
        # each table's Ibis schema, read from the catalog once per generation (see table())
        self._schemas: dict[str, Any] = {}
        self._local = threading.local()  # .backend: the pooled backend this thread holds
        self._closed = False
        self._versions = DataVersions()

    # -- lifecycle ----------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None:
        """Close the store: every read backend (call :meth:`_close_readers`), then the writer."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Tx]: ...

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One writer at a time: the store serialises write transactions (threads marked as
        background writers let waiting requests go first: :mod:`corridor.store.writelock`)."""
        with self._write_lock:
            depth = getattr(self._local, "writing", 0)
            self._local.writing = depth + 1
            try:
                with self._transaction() as tx:
                    tx.rules_version = self.rules_version()
                    yield tx
                self._committed(tx)
            finally:
                self._local.writing = depth

    def _committed(self, tx: Tx) -> None:
        """A transaction committed: a write to a table an analysis may read bumps the data
        version (after the commit, so a reader that sees the new version sees the data); one
        that removed or rewrote rows of such a table (not only derived ones) is a fence."""
        if getattr(tx, "touched", {"*"}) - OPERATIONAL:
            rewrote = getattr(tx, "rewrote", {"*"}) - OPERATIONAL - DERIVED
            self._versions.bump(fence=bool(rewrote))

    #: the tables whose committed writes change :meth:`rules_version`
    RULES_TABLES = frozenset({"alert_rules", "promises"})

    def rules_version(self) -> Any:
        """A value that changes after every committed write to the alert rules or the corridor
        map's promises (what record rules read on every batch), for keeping them between
        batches; None when other processes may write them unseen (a server database)."""
        return None

    def data_version(self) -> int | None:
        """A number that changes after every committed write to a table the analyses read, for
        caching their answers (:class:`corridor.api.answer_cache.AnswerCache`); None when
        other processes may write to the store unseen (a server database), so nothing may be
        cached on it."""
        return None

    def data_behind(self, version: int) -> float | None:
        """How far an answer computed at data version ``version`` is behind: seconds since the
        first write after it committed; None while ``version`` is the latest; infinite after a
        write that removed or rewrote analysed rows (see :mod:`corridor.store.versions`)."""
        return self._versions.behind(version)

    def write_beside(self, work: Callable[[Tx], T]) -> T:
        """Run ``work`` in a short write transaction of its own, committed when it returns, and
        give back what it returned.

        For small bookkeeping writes to rows the ingest never touches (a survey response being
        answered): an engine that can write beside the main writer (:class:`DuckDBStore`) does,
        so they do not queue behind a batch being ingested; ``work`` may then run again after
        a write conflict, so it must do nothing but write through ``tx``. Elsewhere (and inside
        a :meth:`transaction` of this thread) it is an ordinary :meth:`transaction`."""
        with self.transaction() as tx:
            return work(tx)

    # -- schema -----------------------------------------------------------------------------
    def schema_version(self) -> int:
        with self.transaction() as tx:
            tx.execute(mig.BOOKKEEPING.format(**mig.TYPES[self.dialect]))
            row = tx.fetchall("SELECT max(version) FROM schema_migrations")
        return int(row[0][0] or 0)

    def migrate(self, target: int = mig.LATEST) -> list[int]:
        """Apply pending migrations up to ``target``, each in its own transaction."""
        current = self.schema_version()
        if current > mig.LATEST:
            raise SchemaVersionError(
                f"the store at {self.url} has schema version {current}, newer than this Corridor "
                f"understands ({mig.LATEST}); upgrade Corridor (pip install -U corridor)"
            )
        applied: list[int] = []
        for m in mig.pending(current, target):
            try:
                with self.transaction() as tx:
                    for stmt in m.sql(self.dialect):
                        tx.execute(stmt)
                    tx.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) "
                        "VALUES (?, ?, ?)",
                        (m.version, m.name, datetime.now(UTC)),
                    )
            except Exception as e:
                raise StoreError(
                    f"migration {m.version} ({m.name}) failed on {self.url}: {e}; "
                    "the store is left at the previous version"
                ) from e
            applied.append(m.version)
        self._after_migrate()
        return applied

    def _after_migrate(self) -> None:
        # backends made before the schema changed are not reused
        self._close_readers(closing=False)

    # -- reads --------------------------------------------------------------------------------
    # An Ibis backend (one DuckDB cursor, one PostgreSQL connection) is not safe to share
    # between threads, so none is: a thread inside reading() holds a backend of the store's
    # pool until it leaves, and a thread reading outside reading() gets one of its own. Reads
    # therefore run concurrently, at most max_readers of them inside reading() at a time.
    @contextmanager
    def reading(self) -> Iterator[None]:
        """Read inside this block: the store's rule for concurrent reads.

        It waits for one of :attr:`max_readers` reader slots, and while it is held this thread's
        :attr:`ibis` / :meth:`table` use a backend of the store's pool that no other thread
        uses, so the pool (the store's read connections) never outgrows the slots. Execute the
        table expressions taken inside the block inside it. Re-entrant: a nested block in the
        same thread holds the same slot and backend."""
        if getattr(self._local, "backend", None) is not None:
            yield
            return
        with self._readers:
            with self._backends_lock:
                self._check_open()
                generation = self._generation
                backend = self._idle.pop() if self._idle else None
            if backend is None:  # at most max_readers are ever made: one per slot
                backend = self._make_ibis()
            self._local.backend = backend
            try:
                yield
            finally:
                self._local.backend = None
                with self._backends_lock:
                    keep = generation == self._generation and not self._closed
                    if keep:
                        self._idle.append(backend)
                if not keep:  # the store was closed (or migrated) while this reader held it
                    self._close_ibis(backend)

    @property
    def ibis(self) -> Any:
        """This thread's Ibis backend over the store: inside :meth:`reading`, the pooled one it
        holds; outside, one of the thread's own (made on first use, closed once the thread has
        ended or the store is closed)."""
        held = getattr(self._local, "backend", None)
        if held is not None:
            return held
        me = threading.current_thread()
        with self._backends_lock:
            self._check_open()
            own = self._own.get(me)
        if own is not None:
            return own
        own = self._make_ibis()
        with self._backends_lock:
            ended = [t for t in self._own if not t.is_alive()]
            stale = [self._own.pop(t) for t in ended]
            self._own[me] = own
        for backend in stale:
            self._close_ibis(backend)
        return own

    @abstractmethod
    def _make_ibis(self) -> Any:
        """A new Ibis backend over the store, for one thread at a time."""

    def _close_ibis(self, backend: Any) -> None:
        # best effort: a connection already closed (or broken) is gone either way
        with suppress(Exception):
            backend.disconnect()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self.url} is closed")

    def _close_readers(self, *, closing: bool = True) -> None:
        """Close every read backend not held by a reader (a held one is closed when its reader
        leaves); ``closing``: the store is being closed, and makes no new ones."""
        with self._backends_lock:
            if closing:
                self._closed = True
            self._generation += 1
            self._schemas.clear()
            backends = [*self._idle, *self._own.values()]
            self._idle.clear()
            self._own.clear()
        for backend in backends:
            self._close_ibis(backend)

    def table(self, name: str) -> Any:
        """An Ibis table expression over one of the store's tables (through this thread's
        backend: see :attr:`ibis`).

        The table's schema is read from the engine's catalog once and kept until the backends
        are renewed (a migration, the store closed): Ibis' own ``table()`` asks the catalog on
        every call, 4-5 ms on DuckDB, twice per analysis. The expression is the one Ibis'
        ``table()`` makes."""
        backend = self.ibis
        with self._backends_lock:
            schema = self._schemas.get(name)
            generation = self._generation
        if schema is None:
            expr = backend.table(name)
            with self._backends_lock:
                if generation == self._generation:
                    self._schemas[name] = expr.schema()
            return expr
        return ops.DatabaseTable(
            name, schema=schema, source=backend, namespace=ops.Namespace()
        ).to_expr()

    def estimated_rows(self, table: str) -> int | None:
        """About how many rows ``table`` holds, read beside the writer (see
        :meth:`Tx.estimated_rows`)."""
        return None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A small read in plain SQL (``?`` parameters), for bookkeeping rather than analytics.

        It sees what is committed. Inside a :meth:`transaction` of this thread it reads through
        that transaction (and sees its writes so far); outside, an engine that can read beside
        the writer (:meth:`_read`) does, so small reads never queue behind a batch being
        written."""
        return self._small_read(sql, params, self._read, Tx.fetchall)

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """:meth:`query`, its rows as an Arrow table (typed as the engine types them)."""
        return self._small_read(sql, params, self._read_arrow, Tx.fetch_arrow)

    def _small_read(
        self,
        sql: str,
        params: Sequence[Any],
        beside: Callable[[str, Sequence[Any]], T | None],
        through: Callable[[Tx, str, Sequence[Any]], T],
    ) -> T:
        if getattr(self._local, "writing", 0) == 0:
            got = beside(sql, params)
            if got is not None:
                return got
        with self.transaction() as tx:
            return through(tx, sql, params)

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]] | None:
        """Run a read outside the write lock and return its rows, or None where the engine
        reads through the writer (the default)."""
        return None

    def _read_arrow(self, sql: str, params: Sequence[Any]) -> pa.Table | None:
        """:meth:`_read` as Arrow; None where the engine reads through the writer."""
        return None

    def count(self, table: str) -> int:
        return int(self.query(f"SELECT count(*) FROM {table}")[0][0])

    def row_counts(self, tables: Sequence[str]) -> tuple[dict[str, int], list[str]]:
        """Rows in each of ``tables`` (names of our own tables), and which of them are the
        engine's estimate rather than an exact count. Exact by default (DuckDB counts from
        its row groups' metadata, in about a millisecond at 10 M rows); an engine whose
        ``count(*)`` scans the table estimates its big tables (PostgreSQL)."""
        return self._exact_counts(tables), []

    def _exact_counts(self, tables: Sequence[str]) -> dict[str, int]:
        if not tables:
            return {}
        sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables)
        return {str(name): int(n) for name, n in self.query(sql)}
