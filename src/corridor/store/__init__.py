"""Where data lives: an embedded DuckDB file by default, or a PostgreSQL server."""

from __future__ import annotations

import os
from pathlib import Path

from corridor.errors import StoreError
from corridor.store.base import Store, Tx
from corridor.store.migrations import LATEST

DEFAULT_PATH = Path("corridor-data") / "corridor.duckdb"
ENV_VAR = "CORRIDOR_STORE"


def resolve_url(url: str | None = None) -> str:
    """The store URL: the argument, else ``$CORRIDOR_STORE``, else ``./corridor-data/...``."""
    url = url or os.environ.get(ENV_VAR) or f"duckdb:///{DEFAULT_PATH}"
    return url


def open_store(
    url: str | None = None, *, migrate: bool = True, schema_version: int = LATEST
) -> Store:
    """Open (creating if needed) the store at ``url`` and bring its schema up to date.

    ``duckdb:///path/to/file.duckdb`` (or a bare path) opens an embedded file;
    ``postgresql://user@host:port/db`` a server. ``schema_version`` below the latest is for tests
    of the migrations themselves.
    """
    url = resolve_url(url)
    store: Store
    if url.startswith(("postgresql://", "postgres://")):
        from corridor.store.postgres_store import PostgresStore

        store = PostgresStore(url)
    elif url.startswith("duckdb://"):
        from corridor.store.duckdb_store import DuckDBStore

        path = url[len("duckdb://") :]
        if path.startswith("/") and not path.startswith("//"):
            path = path[1:]  # duckdb:///relative/path
        elif path.startswith("//"):
            path = path[1:]  # duckdb:////absolute/path
        if not path:
            raise StoreError("duckdb:// URL needs a file path, e.g. duckdb:///corridor.duckdb")
        store = DuckDBStore(path)
    elif "://" not in url:
        from corridor.store.duckdb_store import DuckDBStore

        store = DuckDBStore(url)
    else:
        scheme = url.split("://", 1)[0]
        raise StoreError(
            f"unsupported store URL scheme {scheme!r}; use duckdb:///path/file.duckdb or "
            "postgresql://user@host:5432/db"
        )
    if migrate:
        try:
            store.migrate(schema_version)
        except BaseException:
            store.close()
            raise
    return store


__all__ = ["DEFAULT_PATH", "Store", "Tx", "open_store", "resolve_url"]
