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
    HASH,
    STAMP,
    Fact,
    data_files,
    json_as_text,
    month_dir,
    months,
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

    @property
    def written(self) -> int:
        """Records written this time (new and changed)."""
        return sum(t.new + t.changed for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lake": str(self.lake),
            "seconds": round(self.seconds, 3),
            "tables": [t.__dict__ for t in self.tables],
        }


def sync(store: Store, lake: str | Path, *, on_step: Step | None = None) -> SyncReport:
    """Bring the lake at ``lake`` (a folder, made if missing) up to what ``store`` holds."""
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
        con.execute("SET TimeZone = 'UTC'")
        for fact in FACTS.values():
            report.tables.append(_sync_table(store, con, root, fact, on_step))
        report.seconds = time.perf_counter() - started
        stamp = {
            "synced_at": datetime.now(UTC).isoformat(),
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
    store: Store, con: duckdb.DuckDBPyConnection, root: Path, fact: Fact, on_step: Step | None
) -> TableSync:
    done = TableSync(fact.name)
    t = store.table(fact.name)
    # JSON as its text: every engine reads it so (the lake store declares it JSON again)
    ordered = json_as_text(t).order_by(list(fact.key))
    held = set(months(root, fact.name))
    here = _store_months(t, fact)
    for month in here:
        start, end = _month_bounds(month)
        rows = ordered.filter((t[fact.time] >= start) & (t[fact.time] < end)).to_pyarrow()
        done.rows += rows.num_rows
        _sync_month(con, root, fact, month, rows, done, on_step)
    for month in sorted(held - set(here)):  # every record of the month left the store
        files = data_files(month_dir(root, fact.name, month))
        if files:
            done.removed += _count(con, files)
        for f in files:
            f.unlink()
            done.files_removed += 1
            if on_step:
                on_step("removed", f)
    return done


def _count(con: duckdb.DuckDBPyConnection, files: list[Path]) -> int:
    got = con.execute("SELECT count(*) FROM read_parquet(?)", [[str(f) for f in files]])
    return int(got.fetchall()[0][0])


def _sync_month(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    fact: Fact,
    month: str,
    rows: pa.Table,
    done: TableSync,
    on_step: Step | None,
) -> None:
    folder = month_dir(root, fact.name, month)
    for stale in folder.glob(".*.tmp") if folder.is_dir() else ():  # a killed sync's
        stale.unlink(missing_ok=True)
    con.register("store_rows", rows)
    names = ", ".join(f'"{c}"' for c in rows.column_names)
    fields = ", ".join(f'"{c}" := "{c}"' for c in rows.column_names)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE o AS SELECT {names}, "
        f"hash(struct_pack({fields})) AS {HASH} FROM store_rows"
    )
    con.unregister("store_rows")
    key = ", ".join(f'"{k}"' for k in fact.key)
    files = data_files(folder)
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
        _write(folder, whole, on_step)
        done.files_written += 1
        for f in files:
            f.unlink(missing_ok=True)
            done.files_removed += 1
            if on_step:
                on_step("removed", f)
    elif new:
        added = con.sql(f"SELECT o.* FROM o ANTI JOIN l USING ({key}) ORDER BY {key}")
        _write(folder, added.to_arrow_table(), on_step)
        done.files_written += 1


def _write(folder: Path, table: pa.Table, on_step: Step | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}.parquet"
    _atomic_write(target, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    if on_step:
        on_step("written", target)
