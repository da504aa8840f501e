"""Making erased data unrecoverable from the store's files, not only unreadable through SQL.

A deleted row is gone from every query at once, but both engines may keep its bytes on disk:

- **DuckDB** marks the blocks that held it free after a ``CHECKPOINT`` and reuses them later;
  until then the file still holds the old bytes (measured: after an erase, ``CHECKPOINT``,
  ``VACUUM`` and ``FORCE CHECKPOINT``, the person's e-mail, phone, CRM id and a phrase of
  their feedback were all still in the file). :func:`compact_duckdb` therefore copies the
  database into a fresh file (``ATTACH`` + ``COPY FROM DATABASE``: tables, indexes, sequences
  at their values) and puts it in the old one's place; the store must not be open meanwhile
  (stop ``corridor serve``; ``corridor people compact`` does it).
- **PostgreSQL** keeps dead tuples in the table files until vacuumed; ``VACUUM FULL`` rewrites
  each table (and its indexes and TOAST) into new files and drops the old ones.
  :func:`compact_postgres` runs ``VACUUM (FULL, ANALYZE)`` on every table that holds a person's
  data (ANALYZE: the planner's statistics are recomputed without the erased values). The
  server's write-ahead log and any backups keep the old data until they are recycled or expire:
  that is the operator's retention of WAL and backups, outside Corridor.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from corridor.errors import StoreError
from corridor.privacy.subject import PART_TABLES

#: besides the parts' tables, those derived from them
DERIVED_TABLES = (
    "feedback_rollup",
    "rollup_dirty",
    "rollup_pending",
    "erased_identities",
    "privacy_requests",
)


def compact_duckdb(path: str | Path) -> dict[str, object]:
    """Copy the DuckDB store at ``path`` into a fresh file and replace it (the store must not
    be open). Returns the sizes before and after."""
    import duckdb

    path = Path(path)
    if not path.is_file():
        raise StoreError(f"no DuckDB store at {path}")
    fresh = path.with_name(f".{path.name}.compact")
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        leftover.unlink(missing_ok=True)
    before = path.stat().st_size
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as e:
        raise StoreError(
            f"cannot compact {path}: {e}; stop the process that holds it (a running `corridor "
            "serve`?) and run it again"
        ) from None
    try:
        con.execute("CHECKPOINT")
        db = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        con.execute(f"ATTACH '{str(fresh).replace(chr(39), chr(39) * 2)}' AS corridor_fresh")
        con.execute(f'COPY FROM DATABASE "{db}" TO corridor_fresh')
        con.execute("DETACH corridor_fresh")
    except BaseException:
        con.close()
        fresh.unlink(missing_ok=True)
        raise
    con.close()
    with open(fresh, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(fresh, path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
    return {
        "engine": "duckdb",
        "path": str(path),
        "bytes_before": before,
        "bytes_after": path.stat().st_size,
    }


#: the DETAIL of ``VACUUM (FULL, VERBOSE)`` counting the dead rows it had to copy (PostgreSQL 12-17)
_RECENTLY_DEAD = re.compile(r"(\d+) dead row versions cannot be removed yet")
#: how long compaction waits for other transactions to let go of dead rows, per table
WAIT_S = 60.0


def compact_postgres(url: str, *, wait_s: float = WAIT_S) -> dict[str, object]:
    """``VACUUM (FULL, ANALYZE)`` of every table holding a person's data, on a connection of
    its own (VACUUM runs outside a transaction).

    ``VACUUM FULL`` copies into the new files every dead row some transaction may still see
    (one started before the erase committed, and found by the server's horizon, which a
    concurrent ``CREATE``/``DROP DATABASE`` or another session's open snapshot can hold back
    for a moment): the erased bytes would stay. Each table's ``VERBOSE`` report says how many
    it kept; a table that kept any is rewritten again, with a growing pause, for up to
    ``wait_s`` seconds. Returns the tables compacted and ``kept``: the tables whose dead rows
    could not be removed in that time (empty when every erased byte is gone), with their
    counts."""
    import psycopg

    tables = sorted({*PART_TABLES, *DERIVED_TABLES})
    kept: dict[str, int] = {}
    with psycopg.connect(url, autocommit=True) as con:
        details: list[str] = []
        con.add_notice_handler(lambda d: details.append(d.message_detail or ""))
        existing = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            ).fetchall()
        }
        done = [t for t in tables if t in existing]
        for t in done:
            deadline, pause = time.monotonic() + wait_s, 0.05
            while True:
                details.clear()
                con.execute(f"VACUUM (FULL, ANALYZE, VERBOSE) {t}")
                dead = sum(int(m[1]) for d in details for m in _RECENTLY_DEAD.finditer(d))
                if not dead or time.monotonic() + pause > deadline:
                    break
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
            if dead:
                kept[t] = dead
    return {"engine": "postgres", "tables": done, "kept": kept}


def compact(url: str | None) -> dict[str, object]:
    """Compact the store at ``url`` (see the module notes)."""
    from corridor.store import locate

    loc = locate(url)
    if loc.engine == "postgres":
        return compact_postgres(loc.url)
    assert loc.path is not None
    return compact_duckdb(loc.path)
