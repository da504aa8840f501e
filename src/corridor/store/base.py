"""The store: one per URL. Schema and migrations, bulk writes, and Ibis tables for reads.

Writes go through :meth:`Store.transaction`, which yields a :class:`Tx` with a small, portable
vocabulary (execute, fetch, stage an Arrow table, bulk insert). SQL passed to a Tx uses ``?`` for
parameters and the subset of SQL both DuckDB and PostgreSQL speak (``ON CONFLICT``,
``UPDATE ... FROM``), so logic above the store is written once.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa

from corridor.errors import SchemaVersionError, StoreError
from corridor.store import migrations as mig

Dialect = Literal["duckdb", "postgres"]


class Tx(ABC):
    """A write transaction. Leaving the ``with`` block commits; an exception rolls back."""

    dialect: Dialect

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed (or -1 when unknown)."""

    @abstractmethod
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table: ...

    @abstractmethod
    def stage(self, name: str, table: pa.Table) -> None:
        """Make ``table`` readable as a temporary relation ``name`` until the transaction ends."""

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

    def __init__(self) -> None:
        self._write_lock = threading.RLock()
        self._ibis: Any = None

    # -- lifecycle ----------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Tx]: ...

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One writer at a time: the store serialises write transactions."""
        with self._write_lock, self._transaction() as tx:
            yield tx

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
        self._ibis = None

    # -- reads --------------------------------------------------------------------------------
    @property
    def ibis(self) -> Any:
        """The Ibis backend over this store (built on first use)."""
        if self._ibis is None:
            self._ibis = self._make_ibis()
        return self._ibis

    @abstractmethod
    def _make_ibis(self) -> Any: ...

    def table(self, name: str) -> Any:
        """An Ibis table expression over one of the store's tables."""
        return self.ibis.table(name)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A small read in plain SQL (``?`` parameters), for bookkeeping rather than analytics."""
        with self.transaction() as tx:
            return tx.fetchall(sql, params)

    def count(self, table: str) -> int:
        return int(self.query(f"SELECT count(*) FROM {table}")[0][0])
