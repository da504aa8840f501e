"""``corridor lake sync``: what the operational store holds, written to the lake incrementally.

For every fact table (:data:`corridor.store.lake.FACTS`) and every month, the store's records of
that month are read (one month at a time, so memory grows with a month, not the table), each
given a 64-bit hash of its values, and compared by key with what the lake's folder of that
month holds:

- records the lake lacks are written to a new file of that month (an append);
- when records changed (a merge moved a person, a text was re-analysed), left the store (an
  erasure) or are held twice (a sync killed between writing a month's new file and removing
  the old ones), the month is written again as one file and the old files removed;
- a month with nothing new is not touched, so a second sync writes nothing.

The lake is its own watermark: what it holds is read back (keys and hashes only) rather than
remembered elsewhere, so a sync killed at any point leaves no gap and, after the next one, no
duplicate. Every file is written under a hidden name and renamed into place (an atomic rename
on one file system): a reader never sees half a file. One sync runs at a time (a lock file).
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from corridor.errors import StoreError
from corridor.store.base import Store
from corridor.store.lake import (
    FACTS,
    FORMATS,
    HASH,
    STAMP,
    Fact,
    data_files,
    delta_files,
    is_delta,
    json_as_text,
    lake_format,
    month_dir,
    months,
    table_dir,
)

#: called after each file written or removed (tests kill a sync half-way through it)
Step = Callable[[str, Path], None]


@dataclass
class TableSync:
    """What one sync did to one table."""

    table: str
    rows: int = 0  # records the store holds
    new: int = 0
    changed: int = 0
    removed: int = 0
    files_written: int = 0
    files_removed: int = 0


@dataclass
class SyncReport:
    lake: Path
    tables: list[TableSync] = field(default_factory=list)
    seconds: float = 0.0
    table_format: str = "parquet"

    @property
    def written(self) -> int:
        """Records written this time (new and changed)."""
        return sum(t.new + t.changed for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lake": str(self.lake),
            "format": self.table_format,
            "seconds": round(self.seconds, 3),
            "tables": [t.__dict__ for t in self.tables],
        }


def sync(
    store: Store,
    lake: str | Path,
    *,
    on_step: Step | None = None,
    table_format: str | None = None,
) -> SyncReport:
    """Bring the lake at ``lake`` (a folder, made if missing) up to what ``store`` holds.

    ``table_format``: ``parquet`` (plain Hive-partitioned files) or ``delta`` (Delta Lake
    tables, each month's change one commit); default: the format the lake is in already, or
    parquet for a new lake. A lake is in one format: asking the other is refused."""
    if getattr(store, "lake", None) is not None:  # a LakeStore
        raise StoreError(
            "`corridor lake sync` reads the operational store (DuckDB or PostgreSQL) and "
            "writes the lake; --store names a lake store: give its ops= store instead"
        )
    root = Path(lake).expanduser().absolute()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the lake folder {root}: {e.strerror or e}") from None
    started = time.perf_counter()
    report = SyncReport(root)
    with _locked(root), duckdb.connect() as con:
        target = _target(root, table_format, on_step)
        report.table_format = target.format
        con.execute("SET TimeZone = 'UTC'")
        for fact in FACTS.values():
            report.tables.append(_sync_table(store, con, target, fact))
        report.seconds = time.perf_counter() - started
        stamp = {
            "synced_at": datetime.now(UTC).isoformat(),
            "format": target.format,
            "tables": {t.table: t.rows for t in report.tables},
        }
        _atomic_write(root / STAMP, lambda tmp: tmp.write_bytes(orjson.dumps(stamp)))
    return report


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    with open(root / ".corridor_sync.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(
                f"another `corridor lake sync` is writing the lake {root}; wait for it to end"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _atomic_write(target: Path, write: Callable[[Path], Any]) -> None:
    """Write ``target`` under a hidden name, then rename it into place."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _store_months(t: Any, fact: Fact) -> list[str]:
    m = t[fact.time].truncate("M").name("m")
    got = t.select(m).distinct().to_pyarrow().column("m").to_pylist()
    return sorted(v.strftime("%Y-%m") for v in got if v is not None)


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    y, m = (int(x) for x in month.split("-"))
    start = datetime(y, m, 1, tzinfo=UTC)
    end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _sync_table(
    store: Store, con: duckdb.DuckDBPyConnection, target: _Target, fact: Fact
) -> TableSync:
    done = TableSync(fact.name)
    t = store.table(fact.name)
    # JSON as its text: every engine reads it so (the lake store declares it JSON again)
    ordered = json_as_text(t).order_by(list(fact.key))
    held = set(target.months(fact))
    here = _store_months(t, fact)
    for month in here:
        start, end = _month_bounds(month)
        rows = ordered.filter((t[fact.time] >= start) & (t[fact.time] < end)).to_pyarrow()
        done.rows += rows.num_rows
        _sync_month(con, target, fact, month, rows, done)
    for month in sorted(held - set(here)):  # every record of the month left the store
        files = target.files(fact, month)
        if files:
            done.removed += _count(con, files)
        done.files_removed += target.drop(fact, month, files)
    return done


def _count(con: duckdb.DuckDBPyConnection, files: list[Path]) -> int:
    got = con.execute("SELECT count(*) FROM read_parquet(?)", [[str(f) for f in files]])
    return int(got.fetchall()[0][0])


def _sync_month(
    con: duckdb.DuckDBPyConnection,
    target: _Target,
    fact: Fact,
    month: str,
    rows: pa.Table,
    done: TableSync,
) -> None:
    target.clean(fact, month)
    con.register("store_rows", rows)
    names = ", ".join(f'"{c}"' for c in rows.column_names)
    fields = ", ".join(f'"{c}" := "{c}"' for c in rows.column_names)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE o AS SELECT {names}, "
        f"{target.hash_sql(f'struct_pack({fields})')} AS {HASH} FROM store_rows"
    )
    con.unregister("store_rows")
    key = ", ".join(f'"{k}"' for k in fact.key)
    files = target.files(fact, month)
    if files:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE l AS SELECT {key}, {HASH} FROM read_parquet(?)",
            [[str(f) for f in files]],
        )
    else:
        con.execute(f"CREATE OR REPLACE TEMP TABLE l AS SELECT {key}, {HASH} FROM o LIMIT 0")
    new, changed, removed, twice = con.execute(
        f"""SELECT
            (SELECT count(*) FROM o ANTI JOIN l USING ({key})),
            (SELECT count(*) FROM o JOIN l USING ({key}) WHERE o.{HASH} <> l.{HASH}),
            (SELECT count(*) FROM l ANTI JOIN o USING ({key})),
            (SELECT count(*) - count(DISTINCT ({key})) FROM l)"""
    ).fetchall()[0]
    done.new += new
    done.changed += changed
    done.removed += removed
    if changed or removed or twice:  # the month written again, as one file
        whole = con.sql(f"SELECT * FROM o ORDER BY {key}").to_arrow_table()
        done.files_written += 1
        done.files_removed += target.replace(fact, month, whole, files)
    elif new:
        added = con.sql(f"SELECT o.* FROM o ANTI JOIN l USING ({key}) ORDER BY {key}")
        target.append(fact, month, added.to_arrow_table())
        done.files_written += 1


def _target(root: Path, table_format: str | None, on_step: Step | None) -> _Target:
    """How the lake at ``root`` is written: in its own format, or ``table_format`` for a new
    one (a StoreError for an unknown format, or one the lake is not in)."""
    if table_format is not None and table_format not in FORMATS:
        raise StoreError(
            f"unknown lake table format {table_format!r}; use one of {', '.join(FORMATS)}"
        )
    held = lake_format(root)
    if table_format is not None and held is not None and held != table_format:
        raise StoreError(
            f"the lake {root} holds {held} tables, not {table_format}: sync it as {held}, or "
            f"into another folder as {table_format}"
        )
    chosen = table_format or held or "parquet"
    if chosen == "delta":
        return _DeltaLake(root, on_step)
    return _ParquetLake(root, on_step)


class _Target:
    """Where the sync writes: the lake's tables in one format."""

    format = "parquet"

    def __init__(self, root: Path, on_step: Step | None) -> None:
        self.root = root
        self.on_step = on_step

    def _step(self, what: str, path: Path) -> None:
        if self.on_step:
            self.on_step(what, path)

    def hash_sql(self, value: str) -> str:
        """The SQL of a record's hash (of the struct ``value``), as this format stores it."""
        return f"hash({value})"

    def months(self, fact: Fact) -> list[str]:
        raise NotImplementedError

    def files(self, fact: Fact, month: str) -> list[Path]:
        raise NotImplementedError

    def clean(self, fact: Fact, month: str) -> None:
        """Remove what a killed sync left of its own in the month (nothing by default)."""

    def append(self, fact: Fact, month: str, rows: pa.Table) -> None:
        raise NotImplementedError

    def replace(self, fact: Fact, month: str, rows: pa.Table, old: list[Path]) -> int:
        """Make ``rows`` the month's records; the number of files removed."""
        raise NotImplementedError

    def drop(self, fact: Fact, month: str, old: list[Path]) -> int:
        """Remove the month's records; the number of files removed."""
        raise NotImplementedError


class _ParquetLake(_Target):
    """Plain Hive-partitioned Parquet: files renamed into place, removed once replaced."""

    def months(self, fact: Fact) -> list[str]:
        return months(self.root, fact.name)

    def files(self, fact: Fact, month: str) -> list[Path]:
        return data_files(month_dir(self.root, fact.name, month))

    def clean(self, fact: Fact, month: str) -> None:
        folder = month_dir(self.root, fact.name, month)
        for stale in folder.glob(".*.tmp") if folder.is_dir() else ():  # a killed sync's
            stale.unlink(missing_ok=True)

    def append(self, fact: Fact, month: str, rows: pa.Table) -> None:
        _write(month_dir(self.root, fact.name, month), rows, self.on_step)

    def replace(self, fact: Fact, month: str, rows: pa.Table, old: list[Path]) -> int:
        self.append(fact, month, rows)
        return self.drop(fact, month, old)

    def drop(self, fact: Fact, month: str, old: list[Path]) -> int:
        for f in old:
            f.unlink(missing_ok=True)
            self._step("removed", f)
        return len(old)


class _DeltaLake(_Target):
    """Delta Lake tables (``deltalake``, no JVM), partitioned by month: each month's append,
    replacement or removal is one commit, all or nothing, so a killed sync leaves every month
    as one of its commits left it (never a record twice); the next sync completes the rest.
    Replaced files stay on disk, out of the table's current version, until a vacuum."""

    format = "delta"

    def __init__(self, root: Path, on_step: Step | None) -> None:
        super().__init__(root, on_step)
        try:
            import deltalake
        except ImportError:
            raise StoreError(
                "a Delta lake is written with the deltalake package, which is not installed; "
                "pip install 'corridor[lake]'"
            ) from None
        self._dl = deltalake

    def hash_sql(self, value: str) -> str:
        # Delta has no unsigned integers: the hash's top 63 bits, as a signed 64-bit integer
        return f"CAST(hash({value}) >> 1 AS BIGINT)"

    def _path(self, fact: Fact) -> Path:
        return table_dir(self.root, fact.name)

    def months(self, fact: Fact) -> list[str]:
        if not is_delta(self._path(fact)):
            return []
        parts = self._dl.DeltaTable(str(self._path(fact))).partitions()
        return sorted({str(p["month"]) for p in parts})

    def files(self, fact: Fact, month: str) -> list[Path]:
        if not is_delta(self._path(fact)):
            return []
        return delta_files(self._path(fact), month)

    def _write(self, fact: Fact, rows: pa.Table, month: str, **how: Any) -> None:
        months = pa.array([month] * rows.num_rows, pa.string())
        self._dl.write_deltalake(
            str(self._path(fact)),
            rows.append_column("month", months),
            partition_by=["month"],
            schema_mode="merge",  # a column the operational store gained joins the table
            writer_properties=self._dl.WriterProperties(compression="ZSTD"),  # as plain files
            **how,
        )
        self._step("written", self._path(fact))

    def append(self, fact: Fact, month: str, rows: pa.Table) -> None:
        self._write(fact, rows, month, mode="append")

    def replace(self, fact: Fact, month: str, rows: pa.Table, old: list[Path]) -> int:
        self._write(fact, rows, month, mode="overwrite", predicate=f"month = '{month}'")
        return len(old)

    def drop(self, fact: Fact, month: str, old: list[Path]) -> int:
        self._dl.DeltaTable(str(self._path(fact))).delete(f"month = '{month}'")
        self._step("removed", self._path(fact))
        return len(old)


def _write(folder: Path, table: pa.Table, on_step: Step | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"
    _atomic_write(target, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    if on_step:
        on_step("written", target)
