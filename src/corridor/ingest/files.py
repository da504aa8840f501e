"""File import: a contract file (CSV, NDJSON, Parquet) streamed into the store chunk by chunk.

Each chunk goes through the one write path (:meth:`Ingestor.ingest`) as one committed transaction,
so a crash loses at most the chunk in flight and a re-run stores nothing twice (records are
idempotent on their ids). Bad records never stop good ones: they go to a quarantine CSV next to the
file (row, id, field, reason, record), one line per problem, with the row number as the file shows
it (the physical line for CSV, header = line 1, and NDJSON; the 1-based row for Parquet).

Problems with the file as a whole (missing, empty, unreadable, not UTF-8, required columns absent)
raise a :class:`~corridor.errors.CorridorError` before anything is imported.
"""

from __future__ import annotations

import csv
import difflib
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from corridor.domain.contract import KINDS, RecordKind, get_kind
from corridor.errors import ContractError, PayloadError
from corridor.ingest import attributes
from corridor.ingest.pipeline import RecordCounts
from corridor.ingest.readers import (
    SUFFIXES,
    Chunk,
    Problem,
    Reader,
    detect_format,
    open_reader,
)
from corridor.ingest.validate import ATTRIBUTES, ROW

Progress = Callable[[str, float], None]

#: Rows per committed chunk. A multiple-ish of DuckDB's row group (122,880 rows) lets DuckDB write
#: whole row groups straight to the file rather than through its WAL; with the next chunk
#: validated while this one is written, 250,000 measured fastest on 2 cores (docs/benchmarks.md).
DEFAULT_CHUNK_ROWS = 250_000
#: the most rows a chunk may hold (a chunk is read whole into memory)
MAX_CHUNK_ROWS = 10_000_000

QUARANTINE_HEADER = ("row", "id", "field", "reason", "record")
MAP_FILES = ("corridor.yaml", "corridor.yml", "corridor.json")
_GZ_SUFFIXES = (".csv", ".ndjson", ".jsonl", ".json")
#: the order a dataset folder is loaded in: the contract's, profiles first, so events find their
#: people
DATASET_ORDER = tuple(KINDS)


@dataclass
class ImportSummary(RecordCounts):
    """What one file import did."""

    path: Path
    kind: str
    #: records in the file (blank lines aside)
    rows: int = 0
    #: the quarantine file, when something was quarantined
    quarantine: Path | None = None
    seconds: float = 0.0
    #: persons merged because records tied them together through a shared identity
    merges: int = 0
    #: quarantined rows per (field, reason), to say the commonest problems in a line each
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)

    def common_reasons(self, k: int = 3) -> list[tuple[int, str, str]]:
        """The ``k`` commonest (count, field, reason) of the quarantined rows."""
        return [(n, f, r) for (f, r), n in self.reasons.most_common(k)]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "rows": self.rows,
            **self.counts(),
            "quarantine": None if self.quarantine is None else str(self.quarantine),
            "seconds": round(self.seconds, 3),
            "merges": self.merges,
            "common_problems": [
                {"rows": n, "field": f, "reason": r} for n, f, r in self.common_reasons()
            ],
        }


def import_file(
    ingestor: Any,
    path: str | Path,
    kind: str | RecordKind,
    *,
    fmt: str | None = None,
    quarantine: str | Path | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import one contract file of records of ``kind``; bad records go to the quarantine file.

    ``fmt`` is csv, ndjson or parquet (default: from the file name); ``quarantine`` defaults to
    ``<file>.quarantine.csv`` next to the file; ``progress(label, fraction)`` is called per chunk.
    """
    started = time.perf_counter()
    k = get_kind(kind) if isinstance(kind, str) else kind
    p = Path(path)
    reader, target = _opened(p, k, fmt, quarantine, chunk_rows)
    summary = ImportSummary(p, k.name)
    out = _Quarantine(target)
    source = f"file:{p.name}"
    try:
        # Records of a file are new until a chunk finds some stored already (a re-run): new
        # ones take the store's fast plain INSERT; any stored one sends its chunk the safe way.
        fresh = True
        with ingestor.bulk():  # the feedback rollup is refreshed once, after the last chunk
            for chunk in _prefetch(_validated(ingestor, k, reader.chunks())):
                fresh = _import_chunk(ingestor, k, chunk, source, summary, out, assume_new=fresh)
                if progress is not None:
                    progress(f"{summary.rows:,} rows", chunk.fraction)
    except BaseException:
        out.discard()
        raise
    finally:
        reader.close()
    summary.quarantine = out.finish()
    summary.seconds = time.perf_counter() - started
    return summary


def preflight(
    path: str | Path,
    kind: str | RecordKind,
    *,
    fmt: str | None = None,
    quarantine: str | Path | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> None:
    """Everything :func:`import_file` checks before it stores a record, without a store: the
    file is there, readable in its format, with the kind's required columns (where its header
    says them), and its quarantine file can be written without destroying another file. The
    CLI calls it before it makes a store, so a wrong file leaves no empty store behind."""
    k = get_kind(kind) if isinstance(kind, str) else kind
    reader, _ = _opened(Path(path), k, fmt, quarantine, chunk_rows)
    reader.close()


def _opened(
    p: Path,
    k: RecordKind,
    fmt: str | None,
    quarantine: str | Path | None,
    chunk_rows: int,
) -> tuple[Any, Path]:
    """The checks of :func:`preflight`: the file's reader, open, and the quarantine file."""
    if not 1 <= chunk_rows <= MAX_CHUNK_ROWS:
        raise ContractError(f"chunk_rows must be from 1 to {MAX_CHUNK_ROWS:,}, got {chunk_rows}")
    check_file(p)
    file_format, compression = detect_format(p, fmt)
    target = Path(quarantine) if quarantine is not None else p.with_name(p.name + ".quarantine.csv")
    check_quarantine(target, p)
    reader = open_reader(p, file_format, compression, chunk_rows, k)
    try:
        if reader.columns is not None:
            check_columns(k, reader.columns, p)
    except BaseException:
        reader.close()
        raise
    return reader, target


def check_file(p: Path) -> None:
    """Refuse a file that is missing, not a file, or empty."""
    if not p.exists():
        raise PayloadError(f"file {str(p)!r} does not exist")
    if not p.is_file():
        raise PayloadError(f"{str(p)!r} is not a file")
    if p.stat().st_size == 0:
        raise PayloadError(f"{p.name} is empty (0 bytes); nothing to import")


def check_quarantine(target: Path, source: Path) -> None:
    """Refuse, before anything is stored, a quarantine file that could not be written, or whose
    writing would destroy a file: it may replace only an earlier quarantine file (never the
    file being imported, or any other), in a folder that exists or can be made and written."""
    if target.exists() and source.exists() and target.resolve() == source.resolve():
        raise PayloadError(
            f"the quarantine file {target} is the file being imported: it would be overwritten; "
            "name another with --quarantine (or leave it out: FILE.quarantine.csv)"
        )
    if target.is_dir():
        raise PayloadError(f"the quarantine file {target} is a folder; name a file in it")
    if target.exists() and not _is_quarantine(target):
        raise PayloadError(
            f"{target} exists and is not a quarantine file: it would be overwritten; name "
            "another with --quarantine, or move it away"
        )
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise PayloadError(
            f"cannot write the quarantine file {target}: {folder} is not a folder this user may "
            "write to; name another with --quarantine"
        )


def check_columns(kind: RecordKind, columns: list[str], path: Path) -> None:
    """Refuse a file that lacks a required column, suggesting close matches from its header."""
    present = set(columns)
    missing = [f.name for f in kind.fields if f.required and f.name not in present]
    person = (
        kind.person_required
        and not ({"person_id"} | {f.name for f in kind.identity_fields}) & present
    )
    if not missing and not person:
        return
    others = [c for c in columns if c not in kind.field_names]
    lowered = {c.lower(): c for c in others}
    described = []
    for name in [*missing, *(["person_id"] if person else [])]:
        text = repr(name)
        if name == "person_id" and person:
            ids = ", ".join(f.name for f in kind.identity_fields)
            text += f" (or one identity column: {ids})"
        close = difflib.get_close_matches(name, list(lowered), n=1, cutoff=0.6)
        if close:
            text += f" - did you mean {lowered[close[0]]!r}?"
        described.append(text)
    shown = ", ".join(repr(c) for c in columns[:40]) + (" ..." if len(columns) > 40 else "")
    hint = ""
    if len(columns) == 1:
        for sep, label in ((";", "';'"), ("\t", "tab"), ("|", "'|'")):
            if sep in columns[0]:
                hint = f"; the header looks {label}-separated, but CSV files must use commas"
                break
    raise ContractError(
        f"{path.name} cannot be imported as {kind.name}: missing required column"
        f"{'s' if len(described) > 1 else ''} {'; '.join(described)}. "
        f"The file's columns: {shown or '(none)'}{hint}. Nothing was imported."
    )


def _import_chunk(
    ingestor: Any,
    kind: RecordKind,
    chunk: Chunk,
    source: str,
    summary: ImportSummary,
    out: _Quarantine,
    *,
    assume_new: bool,
) -> bool:
    """Import one chunk; False once a chunk finds records that were stored already."""
    summary.rows += chunk.rows
    summary.rejected += len(chunk.problems)
    lines: list[tuple[int, str | None, str, str, str]] = [
        (p.row, p.id, p.field, p.reason, p.record) for p in chunk.problems
    ]
    if chunk.table.num_rows:
        report = ingestor.ingest(
            kind, chunk.table, source=source, validated=chunk.validated, assume_new=assume_new
        )
        summary.add_counts(report)
        summary.merges += len(report.merges)
        assume_new = report.duplicates == 0
        if report.errors:
            rows = chunk.table.column(ROW).to_numpy()
            wanted = sorted({e.row for e in report.errors})
            positions = np.searchsorted(rows, wanted).tolist()
            records = dict(zip(wanted, chunk.records(positions), strict=True))
            lines.extend((e.row, e.id, e.field, e.reason, records[e.row]) for e in report.errors)
    if lines:
        summary.reasons.update((line[2], line[3]) for line in lines)
        lines.sort(key=lambda x: x[0])
        out.write(lines)
    return assume_new


class _Quarantine:
    """The quarantine CSV, written only when there is a problem; replaces an earlier one."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.partial = target.with_name(f".{target.name}.partial")
        self._file: Any = None
        self._writer: Any = None

    def write(self, lines: list[tuple[int, str | None, str, str, str]]) -> None:
        if self._writer is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.partial.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            self._writer.writerow(QUARANTINE_HEADER)
        self._writer.writerows(lines)

    def finish(self) -> Path | None:
        if self._file is None:
            # nothing wrong this time: an earlier run's quarantine no longer tells the truth
            if _is_quarantine(self.target):
                self.target.unlink()
            return None
        self._file.close()
        os.replace(self.partial, self.target)
        return self.target

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self.partial.unlink(missing_ok=True)
            self._file = None


def _is_quarantine(p: Path) -> bool:
    try:
        with p.open(encoding="utf-8") as f:
            return f.readline().strip() == ",".join(QUARANTINE_HEADER)
    except (OSError, UnicodeDecodeError):
        return False


def _validated(ingestor: Any, kind: RecordKind, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    for chunk in chunks:
        if ATTRIBUTES in chunk.table.column_names:
            chunk = _merge_attributes(kind, chunk)
        if chunk.table.num_rows:
            chunk.validated = ingestor.validate(kind, chunk.table)
        yield chunk


def _merge_attributes(kind: RecordKind, chunk: Chunk) -> Chunk:
    """An ``attributes`` column's objects become extra fields; a row whose ``attributes`` is no
    object (or names a contract field) is quarantined, as the API rejects such a record."""
    table, bad = attributes.merge_column(chunk.table, kind.field_names)
    if not bad:
        return Chunk(table, chunk.problems, chunk.fraction, chunk.originals)
    positions = sorted(bad)
    rows = chunk.table.column(ROW).to_pylist()
    ids = (
        chunk.table.column(kind.id_field).to_pylist()
        if kind.id_field in chunk.table.column_names
        else [None] * chunk.table.num_rows
    )
    texts = chunk.records(positions)
    problems = [  # one per row, as the rows are counted by their problems
        Problem(
            rows[i],
            ", ".join(name for name, _ in bad[i]),
            "; ".join(reason for _, reason in bad[i]),
            text,
            None if ids[i] is None else str(ids[i]),
        )
        for i, text in zip(positions, texts, strict=True)
    ]
    keep = [i for i in range(chunk.table.num_rows) if i not in bad]
    table = table.take(pa.array(keep, pa.int64()))
    originals = chunk.originals
    if originals is not None:
        old = originals

        def originals(at: Sequence[int]) -> list[str]:
            return old([keep[p] for p in at])

    merged = sorted([*chunk.problems, *problems], key=lambda p: p.row)
    return Chunk(table, merged, chunk.fraction, originals)


def _prefetch(chunks: Iterator[Chunk], depth: int = 1) -> Iterator[Chunk]:
    """Read and validate the next chunk in a thread while the current one is being written.

    Validation runs in the validator's own DuckDB, writing in the store, so the two overlap.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put(("chunk", chunk)):
                    return
            put(("end", None))
        except BaseException as e:
            put(("error", e))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # the reader lets go of its file now, not when collected

    worker = threading.Thread(target=produce, name="corridor-import-reader", daemon=True)
    worker.start()
    try:
        while True:
            what, item = q.get()
            if what == "end":
                return
            if what == "error":
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def import_dataset(
    ingestor: Any, folder: str | Path, *, progress: Progress | None = None
) -> dict[str, ImportSummary]:
    """Import a folder of contract files: the corridor map first (corridor.yaml/.yml/.json, when
    present), then ``<kind>.<csv|ndjson|parquet>`` for every kind present, profiles first."""
    from corridor.domain.corridor_map import CorridorMap

    root = Path(folder)
    if not root.is_dir():
        raise PayloadError(f"{str(root)!r} is not a folder")
    maps = [root / m for m in MAP_FILES if (root / m).is_file()]
    files: dict[str, Path] = {}
    for kind in DATASET_ORDER:
        names = [f"{kind}{s}" for s in SUFFIXES] + [f"{kind}{s}.gz" for s in _GZ_SUFFIXES]
        found = [root / n for n in names if (root / n).is_file()]
        if len(found) > 1:
            raise ContractError(
                f"{root} holds {len(found)} files for {kind} "
                f"({', '.join(f.name for f in found)}); keep one"
            )
        if found:
            files[kind] = found[0]
    if not maps and not files:
        raise ContractError(
            f"{root} holds no corridor map ({', '.join(MAP_FILES)}) and no contract files "
            f"(<kind>.csv|ndjson|parquet, kinds: {', '.join(KINDS)})"
        )
    if maps:
        cmap = CorridorMap.from_file(maps[0])
        if ingestor.corridor_map != cmap:
            ingestor.load_map(cmap)
    sizes = {k: max(p.stat().st_size, 1) for k, p in files.items()}
    total = sum(sizes.values()) or 1
    done = 0
    summaries: dict[str, ImportSummary] = {}
    with ingestor.bulk():  # the feedback rollup is refreshed once, after the last file
        for kind, path in files.items():

            def step(label: str, fraction: float, kind: str = kind, base: int = done) -> None:
                if progress is not None:
                    progress(f"{kind} {label}", (base + fraction * sizes[kind]) / total)

            summaries[kind] = import_file(ingestor, path, kind, progress=step)
            done += sizes[kind]
    return summaries


__all__ = [
    "DATASET_ORDER",
    "DEFAULT_CHUNK_ROWS",
    "ImportSummary",
    "Problem",
    "Reader",
    "check_columns",
    "check_file",
    "import_dataset",
    "import_file",
]
