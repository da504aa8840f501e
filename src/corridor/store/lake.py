"""The lake: Corridor's fact tables as Hive-partitioned Parquet files, by kind and month.

Layout, readable by any engine (Spark, DuckDB, Trino, pandas)::

    LAKE/interactions/month=2025-03/part-<id>.parquet
    LAKE/feedback/month=2025-03/part-<id>.parquet
    ...
    LAKE/_corridor_lake.json        what the last complete sync wrote (per table and month)

Each file holds the table's columns as the operational store has them (JSON columns as text)
and ``_hash``, DuckDB's 64-bit hash of the record (``hash(struct)``: 4.5x cheaper than an MD5 of
its JSON, measured; a DuckDB release that changed it would have the next sync write the lake
again once, each record still once): how :mod:`corridor.store.lake_sync` tells
a new or changed record from one the lake holds already. ``month`` (``YYYY-MM``, UTC) is the
month of the table's time column. Files whose names start with ``.`` or ``_`` are not data
(Spark, Hive and DuckDB's globbing below leave them out).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corridor.errors import StoreError

#: the file naming the lake's last complete sync (also its mark: a folder without it is no lake)
STAMP = "_corridor_lake.json"
#: the column carrying each record's hash
HASH = "_hash"


@dataclass(frozen=True)
class Fact:
    """One fact table of the lake: its key and the time column that names its month."""

    name: str
    key: tuple[str, ...]
    time: str


#: the tables the lake holds (the big, append-mostly ones); everything else stays operational
FACTS: dict[str, Fact] = {
    f.name: f
    for f in (
        Fact("people", ("person_id",), "first_seen_at"),
        Fact("identities", ("id_type", "id_value"), "first_seen_at"),
        Fact("interactions", ("interaction_id",), "occurred_at"),
        Fact("feedback", ("feedback_id",), "occurred_at"),
        Fact("text_analysis", ("feedback_id",), "analyzed_at"),
        Fact("operational_events", ("event_id",), "started_at"),
        Fact("market_events", ("event_id",), "occurred_at"),
    )
}


def json_as_text(t: Any) -> Any:
    """The Ibis table ``t`` with its JSON columns as their text (what the lake holds)."""
    schema = t.schema()
    return t.select(
        **{c: (t[c].cast("string") if schema[c].is_json() else t[c]) for c in schema.names}
    )


def table_dir(lake: Path, table: str) -> Path:
    return lake / table


def month_dir(lake: Path, table: str, month: str) -> Path:
    return lake / table / f"month={month}"


def data_files(folder: Path) -> list[Path]:
    """The Parquet data files under ``folder`` (a table or a month), sorted; none if missing."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    )


def months(lake: Path, table: str) -> list[str]:
    """The months the lake holds a folder for, for ``table``."""
    folder = table_dir(lake, table)
    if not folder.is_dir():
        return []
    return sorted(p.name[len("month=") :] for p in folder.iterdir() if p.name.startswith("month="))


#: the table formats a lake may be written in: plain Hive-partitioned Parquet, or Delta Lake
#: tables (the same Parquet files and folders, plus a ``_delta_log`` of commits)
FORMATS = ("parquet", "delta")
DELTA_LOG = "_delta_log"


def is_delta(folder: Path) -> bool:
    """Whether the table folder ``folder`` is a Delta table."""
    return (folder / DELTA_LOG).is_dir()


def lake_format(lake: Path) -> str | None:
    """The format the lake's tables are in (None: no table written yet); a StoreError when
    some tables are Delta and others plain Parquet."""
    found = set()
    for name in FACTS:
        folder = table_dir(lake, name)
        if is_delta(folder):
            found.add("delta")
        elif data_files(folder):
            found.add("parquet")
    if len(found) > 1:
        raise StoreError(f"the lake {lake} holds both Delta and plain Parquet tables")
    return found.pop() if found else None


def delta_files(folder: Path, month: str | None = None) -> list[Path]:
    """The data files of the Delta table ``folder``'s current version (of one ``month``), as
    Parquet files Hive-partitioned by month: removed files a vacuum has not deleted yet are
    left out."""
    from deltalake import DeltaTable

    table = DeltaTable(str(folder))
    filters = None if month is None else [("month", "=", month)]
    return sorted(Path(u.removeprefix("file://")) for u in table.file_uris(filters))


def table_files(lake: Path, table: str, month: str | None = None) -> list[Path]:
    """The Parquet files holding ``table`` (of one ``month``) now, whatever the lake's format."""
    folder = table_dir(lake, table)
    if is_delta(folder):
        return delta_files(folder, month)
    return data_files(folder if month is None else month_dir(lake, table, month))


def require_lake(lake: Path) -> Path:
    """``lake``, which must be a lake (a folder a sync has written); else a StoreError saying
    how to make one."""
    if not (lake / STAMP).is_file():
        what = "does not exist" if not lake.exists() else "holds no Corridor lake"
        raise StoreError(
            f"the lake {lake} {what}; write it from the operational store first with "
            f"`corridor lake sync --store OPS_URL --lake {lake}`"
        )
    return lake
