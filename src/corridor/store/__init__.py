"""Where data lives: an embedded DuckDB file by default, or a PostgreSQL server.

Store URLs, exactly as :func:`locate` reads them:

- ``postgresql://user:password@host:5432/database`` (or ``postgres://``): a PostgreSQL server,
  the URL handed to libpq as it is.
- ``duckdb:///abs/path/corridor.duckdb``: a DuckDB file at an **absolute** path (the file-URI
  form of RFC 8089: an empty host, then the path). More slashes (``duckdb:////abs/path``) and one
  slash (``duckdb:/abs/path``) name the same absolute path.
- ``duckdb:rel/path/corridor.duckdb`` (no slash after the colon): a path **relative** to the
  current directory.
- ``spark://local[2]?lake=PATH&ops=STORE_URL`` (or ``sc://host:15002?...``, Spark Connect): the
  lake store, the analytics on Apache Spark over the lake's Parquet files
  (:mod:`corridor.store.lake_store`).
- a bare path, ``corridor-data/corridor.duckdb`` or ``/abs/path/corridor.duckdb``: the same as
  ``duckdb:`` followed by that path.

A leading ``~`` stands for the home directory; nothing is percent-decoded (a path is taken
literally, spaces included). ``duckdb://host/...`` (a host) and other schemes are refused.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from corridor.errors import StoreError
from corridor.store.base import Store, Tx
from corridor.store.migrations import LATEST

DEFAULT_PATH = Path("corridor-data") / "corridor.duckdb"
ENV_VAR = "CORRIDOR_STORE"
POSTGRES_SCHEMES = ("postgresql", "postgres")
FORMS = (
    "duckdb:///absolute/path.duckdb, duckdb:relative/path.duckdb, a plain file path, or "
    "postgresql://user@host:5432/database"
)
#: how to make a store where there is none (said whenever one is missing)
HOW_TO_CREATE = (
    "create one with `corridor demo` (a demo company), `corridor import FILE --kind KIND` "
    "(your data) or `corridor migrate` (an empty store), or point --store (or CORRIDOR_STORE) "
    "at an existing store"
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class StoreLocation:
    """A store URL, read: the engine and, for DuckDB, the file's absolute path."""

    #: the URL as given (or the default, or ``$CORRIDOR_STORE``)
    url: str
    engine: str  # "duckdb", "postgres" or "spark"
    #: the DuckDB file, absolute; None for PostgreSQL
    path: Path | None = None
    #: where the URL came from: "--store" (given), "CORRIDOR_STORE" or "default"
    origin: str = "--store"


def resolve_url(url: str | None = None) -> str:
    """The store URL: the argument, else ``$CORRIDOR_STORE``, else ``./corridor-data/...``."""
    return url or os.environ.get(ENV_VAR) or str(DEFAULT_PATH)


def locate(url: str | None = None, *, origin: str | None = None) -> StoreLocation:
    """Read a store URL (see the module docstring); :class:`StoreError` says what is wrong.

    ``origin``: where ``url`` came from ("--store", "CORRIDOR_STORE"), for messages."""
    if origin is None:
        origin = "--store" if url else "CORRIDOR_STORE" if os.environ.get(ENV_VAR) else "default"
    url = resolve_url(url)
    if not url.strip():
        raise StoreError(f"the store URL is empty; use {FORMS}")
    m = _SCHEME.match(url)
    scheme = m.group(1).lower() if m else ""
    if scheme in POSTGRES_SCHEMES:
        if not url[len(scheme) + 1 :].startswith("//"):
            raise StoreError(
                f"store URL {url!r}: a PostgreSQL URL reads postgresql://user@host:5432/database"
            )
        return StoreLocation(url, "postgres", origin=origin)
    if scheme in ("spark", "sc"):  # read in full by corridor.store.lake_store.parse
        return StoreLocation(url, "spark", origin=origin)
    if scheme == "duckdb":
        rest = url[len("duckdb:") :]
        if rest.startswith("//"):
            rest = rest[2:]
            if rest and not rest.startswith(
                "/"
            ):  # duckdb://host/... : a host, or a forgotten slash
                raise StoreError(
                    f"store URL {url!r} names a host ({rest.split('/', 1)[0]!r}); a DuckDB file "
                    f"is local: write duckdb:///{rest} for the absolute path /{rest}, or "
                    f"duckdb:{rest} for {rest} relative to the current directory"
                )
            rest = "/" + rest.lstrip("/") if rest else ""
        if not rest.strip("/"):
            raise StoreError(f"store URL {url!r} names no file; use {FORMS}")
        path = rest
    elif "://" in url and len(scheme) > 1:
        raise StoreError(f"unsupported store URL scheme {scheme!r}; use {FORMS}")
    else:
        path = url  # a plain path (a one-letter "scheme" is a Windows drive)
    return StoreLocation(url, "duckdb", Path(os.path.abspath(os.path.expanduser(path))), origin)


def missing_store_message(loc: StoreLocation) -> str | None:
    """Why the DuckDB file ``loc`` cannot be read as an existing store, or None when it can
    (PostgreSQL: None; the server answers for itself when connected)."""
    if loc.path is None:
        return None
    if loc.path.is_dir():
        return (
            f"the store {loc.path} is a folder, not a DuckDB file; name the file, e.g. "
            f"{loc.path / DEFAULT_PATH.name}"
        )
    if loc.path.exists():
        return None
    given = {
        "default": " (the default store: neither --store nor CORRIDOR_STORE is set)",
        "CORRIDOR_STORE": f" (from CORRIDOR_STORE={loc.url})",
    }.get(loc.origin, "")
    hint = ""
    if loc.url.startswith("duckdb:///") and not loc.url.startswith("duckdb:////"):
        relative = Path(loc.url[len("duckdb:///") :])
        if relative.exists():
            hint = (
                f"; {loc.url} is the absolute path {loc.path}: for {relative} in the current "
                f"directory write duckdb:{relative} (or just {relative})"
            )
    return f"no Corridor store at {loc.path}{given}{hint}; {HOW_TO_CREATE}"


def require_store(url: str | None = None, *, origin: str | None = None) -> StoreLocation:
    """The store at ``url``, which must exist: a missing DuckDB file is an error, never
    created (for commands that only read)."""
    loc = locate(url, origin=origin)
    problem = missing_store_message(loc)
    if problem is not None:
        raise StoreError(problem)
    return loc


def open_store(
    url: str | None = None,
    *,
    migrate: bool = True,
    schema_version: int = LATEST,
    create: bool = True,
) -> Store:
    """Open the store at ``url`` and bring its schema up to date.

    ``create``: make a missing DuckDB file (and its folder); with False a missing file is a
    :class:`StoreError` naming its path. See the module docstring for the URL forms;
    ``schema_version`` below the latest is for tests of the migrations themselves.
    """
    loc = require_store(url) if not create else locate(url)
    store: Store
    if loc.engine == "postgres":
        from corridor.store.postgres_store import PostgresStore

        store = PostgresStore(loc.url)
    elif loc.engine == "spark":
        from corridor.store.lake_store import open_lake_store

        store = open_lake_store(loc.url, open_store)
    else:
        from corridor.store.duckdb_store import DuckDBStore

        assert loc.path is not None
        store = DuckDBStore(loc.path)
    if migrate:
        try:
            store.migrate(schema_version)
        except BaseException:
            store.close()
            raise
    return store


__all__ = [
    "DEFAULT_PATH",
    "HOW_TO_CREATE",
    "Store",
    "StoreLocation",
    "Tx",
    "locate",
    "missing_store_message",
    "open_store",
    "require_store",
    "resolve_url",
]
