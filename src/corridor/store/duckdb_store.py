"""The embedded default: one DuckDB file, no server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from corridor.errors import StoreError, StoreLockedError
from corridor.store.base import Store, T, Tx
from corridor.store.versions import DataVersions


class Sizes:
    """DuckDB's estimated row counts of tables, each kept :data:`KEEP_S` seconds.

    Look-ups by key choose between the primary key's index and one pass over the table by its
    size (:func:`corridor.analytics.feedback.rollup_rows.by_keys`): an order of magnitude is all
    they need, and asking DuckDB (``duckdb_tables()``) costs 1–3 ms inside a busy writer, several
    times per batch."""

    KEEP_S = 5.0

    def __init__(self) -> None:
        self._kept: dict[str, tuple[float, int]] = {}

    def get(self, table: str, fetch: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]) -> int:
        now = time.monotonic()
        kept = self._kept.get(table)
        if kept is not None and now - kept[0] < self.KEEP_S:
            return kept[1]
        rows = fetch("SELECT estimated_size FROM duckdb_tables() WHERE table_name = ?", [table])
        n = int(rows[0][0]) if rows and rows[0][0] is not None else 0
        self._kept[table] = (now, n)
        return n


class DuckDBTx(Tx):
    dialect = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection, sizes: Sizes | None = None) -> None:
        self._con = con
        self._staged: list[str] = []
        self._sizes = sizes or Sizes()
        self.touched = set()
        self.rewrote = set()

    def estimated_rows(self, table: str) -> int | None:
        return self._sizes.get(table, self.fetchall)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._note(sql)
        rows = self._con.execute(sql, list(params)).fetchall()
        if sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            return int(rows[0][0]) if rows else 0
        return -1

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._con.execute(sql, list(params)).fetchall()

    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        # a relation, not a DB-API result: its Arrow output is the rows as DuckDB made them
        return self._con.sql(sql, params=list(params) or None).to_arrow_table()

    def stage(self, name: str, table: pa.Table) -> None:
        # Zero-copy: DuckDB scans the Arrow table in place.
        self._con.register(name, table)
        self._staged.append(name)

    def release(self) -> None:
        for name in self._staged:
            self._con.unregister(name)
        self._staged.clear()


#: committed writes to analysed tables, per database file (see Store.data_version)
_VERSIONS: dict[str, DataVersions] = {}
_VERSIONS_LOCK = threading.Lock()
#: committed writes to the rules' tables, per database file (see Store.rules_version)
_RULES_VERSIONS: dict[str, int] = {}


def _holds_duckdb(path: Path) -> bool:
    """Whether ``path`` is a DuckDB database file, or none yet (missing: DuckDB makes one; an
    empty file DuckDB refuses itself): a database file says ``DUCK`` after its 8-byte checksum."""
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except FileNotFoundError:
        return True
    except OSError:
        return True  # (unreadable: DuckDB's own error says why)
    return not head or head[8:12] == b"DUCK"


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the connection's transaction, if one is still open (a commit that failed on a
    conflict has ended it already)."""
    with suppress(duckdb.TransactionException):
        con.rollback()


class DuckDBStore(Store):
    dialect = "duckdb"
    #: Reads run in one process over one database, and DuckDB already spreads each query over
    #: every core: more readers at once add memory (each query's own hash tables), not speed.
    #: Four let a slow analysis run beside quick ones without queueing them behind it.
    max_readers = 4
    writes_beside = True

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self._sizes = Sizes()
        #: the absolute form (``duckdb:///abs/path``), whatever the path given
        self.url = f"duckdb://{self.path.absolute()}"
        with _VERSIONS_LOCK:  # one count per file, whichever store object of it writes
            self._versions = _VERSIONS.setdefault(self._key, DataVersions())
            # another process may have written the file since this one last held it
            self._rules_key = self._key
            _RULES_VERSIONS[self._rules_key] = _RULES_VERSIONS.get(self._rules_key, 0) + 1
        if self.path.is_dir():
            raise StoreError(
                f"the store {self.path} is a folder, not a DuckDB file; name the file, e.g. "
                f"{self.path / 'corridor.duckdb'}"
            )
        if not _holds_duckdb(self.path):
            # DuckDB 2 opens a CSV, JSON or Parquet file as a store of its own kept in memory:
            # all written to it would be lost without a word
            raise StoreError(
                f"{self.path} is not a DuckDB store (a data file?); --store names the store's "
                f"own file, e.g. duckdb://{self.path.parent.absolute() / 'corridor.duckdb'} "
                f"(made if missing); to load this file into a store: corridor import {self.path}"
            )
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(
                    f"cannot create the folder {self.path.parent} for the DuckDB store "
                    f"{self.path}: {e.strerror or e}; check the path (duckdb:///path is absolute, "
                    "duckdb:path relative to the current directory) and its permissions"
                ) from None
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as e:
            msg = str(e)
            if "lock" in msg.lower():
                raise StoreLockedError(
                    f"cannot open the DuckDB store {self.path}: {msg}; another process (a "
                    "running `corridor serve` or `corridor demo`?) holds the file; stop it, or "
                    "point --store at another file",
                    self.path,
                ) from None
            raise StoreError(
                f"cannot open the DuckDB store {self.path}: {msg}; check the path and its "
                "permissions"
            ) from None
        self._con.execute("SET TimeZone = 'UTC'")
        # Read cursors are made from a connection of their own, one at a time: the writer's is
        # busy in another thread whenever a batch is being written.
        self._cursor_root = self._con.cursor()
        self._cursor_lock = threading.Lock()
        # Store.query's and write_beside's connections: one per thread that uses them
        self._thread_cursors: dict[threading.Thread, duckdb.DuckDBPyConnection] = {}

    def close(self) -> None:
        with self._write_lock:
            self._close_readers()
            with self._cursor_lock:
                for cursor in self._thread_cursors.values():
                    cursor.close()
                self._thread_cursors.clear()
                self._cursor_root.close()
            self._con.close()

    def write_beside(self, work: Callable[[Tx], T]) -> T:
        if getattr(self._local, "writing", 0):  # inside this thread's transaction: join it
            return super().write_beside(work)
        # The thread's own connection writes beside the main writer and the other threads'
        # (DuckDB checks conflicts row by row); after a conflict the work runs again, then,
        # should it conflict again, as an ordinary transaction, after the main writer's.
        for attempt in range(8):
            if attempt:  # others writing the same row: let them commit first
                time.sleep(0.002 * attempt)
            con = self._thread_cursor()
            tx = DuckDBTx(con, self._sizes)
            # read before the transaction begins: its snapshot is at least as new as the count
            # (rules kept under it are never older than it says; see Store.rules_version)
            tx.rules_version = self.rules_version()
            con.begin()
            try:
                result = work(tx)
                con.commit()
                self._committed(tx)
            except (duckdb.TransactionException, duckdb.ConstraintException):
                # a row another connection changed, or a key another one inserted, meanwhile
                # (ON CONFLICT sees only committed keys): a genuine constraint error is raised
                # again by the last attempt
                _rollback(con)
                continue
            except BaseException:
                _rollback(con)
                raise
            finally:
                tx.release()
            return result
        return super().write_beside(work)

    def _read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]] | None:
        return self._beside(lambda c: c.execute(sql, list(params)).fetchall())

    def _read_arrow(self, sql: str, params: Sequence[Any]) -> pa.Table | None:
        return self._beside(lambda c: c.sql(sql, params=list(params) or None).to_arrow_table())

    def _beside(self, read: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """``read`` on this thread's cursor (see :meth:`_thread_cursor`)."""
        cursor = self._thread_cursor()
        try:
            return read(cursor)
        except duckdb.ConnectionException:  # closed under it (the store was closed)
            self._local.cursor = None
            self._check_open()
            raise

    def _thread_cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's connection for small reads and writes beside the main writer: a
        cursor is a connection of its own to the same database, reading the last committed
        state while the writer's connection is inside a transaction."""
        self._check_open()
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            me = threading.current_thread()
            with self._cursor_lock:
                self._check_open()
                for gone in [t for t in self._thread_cursors if not t.is_alive()]:
                    self._thread_cursors.pop(gone).close()
                cursor = self._cursor_root.cursor()
                self._thread_cursors[me] = cursor
            self._local.cursor = cursor
        return cursor

    @contextmanager
    def _transaction(self) -> Iterator[Tx]:
        tx = DuckDBTx(self._con, self._sizes)
        self._con.begin()
        try:
            yield tx
        except BaseException:
            self._con.rollback()
            tx.release()
            raise
        else:
            self._con.commit()
            tx.release()

    def estimated_rows(self, table: str) -> int | None:
        return self._sizes.get(table, self.query)

    def rules_version(self) -> Any:
        # one process holds the file, and every write to it passes through a store of this
        # process (counted at its commit, below); each opening counts as a write
        with _VERSIONS_LOCK:
            return (self._rules_key, _RULES_VERSIONS.get(self._rules_key, 0))

    def _committed(self, tx: Tx) -> None:
        super()._committed(tx)
        touched = getattr(tx, "touched", {"*"})
        if "*" in touched or touched & self.RULES_TABLES:
            with _VERSIONS_LOCK:
                _RULES_VERSIONS[self._rules_key] = _RULES_VERSIONS.get(self._rules_key, 0) + 1

    def data_version(self) -> int | None:
        # one process holds the file, and every write to it passes through a store of this
        # process: the count is kept per file, whichever store object of it wrote
        return self._versions.version

    @property
    def _key(self) -> str:
        return str(self.path.resolve())

    def checkpoint(self) -> None:
        with self._write_lock:
            self._con.execute("CHECKPOINT")

    def _make_ibis(self) -> Any:
        import ibis

        # A cursor is its own connection to the same database: Ibis reads never run inside
        # (or block on) a write transaction of the ingest path.
        with self._cursor_lock:
            self._check_open()
            cursor = self._cursor_root.cursor()
        return ibis.duckdb.from_connection(cursor)
