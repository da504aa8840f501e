"""What every contract-file reader yields and shares: :class:`Chunk` (an Arrow table whose
``_row`` column holds each record's place in the file) with the :class:`Problem` records that
could not be parsed, the :class:`Reader` base, the :class:`Rechunker` that cuts chunks of a
bounded size, and the byte-level helpers. The readers themselves are in
:mod:`corridor.ingest.readers` (NDJSON, Parquet, and the choice of reader) and
:mod:`corridor.ingest.csv_reader`.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from corridor.errors import ContractError, PayloadError
from corridor.ingest.validate import ROW

ROW_FIELD = "(record)"  # the field named for a record that cannot be parsed at all (as the API)

#: a chunk is also cut when its Arrow data passes this size (wide rows, long texts)
MAX_CHUNK_BYTES = 256 << 20


@dataclass(frozen=True)
class Problem:
    """A record that could not be parsed: where it is, why, and its text as found."""

    row: int
    field: str
    reason: str
    record: str  # JSON text
    id: str | None = None


@dataclass
class Chunk:
    """Up to ``chunk_rows`` parsed records (with ``_row``), and the records that failed to parse."""

    table: pa.Table
    problems: list[Problem] = field(default_factory=list)
    #: how far through the file the reader is, 0..1
    fraction: float = 0.0
    #: the original text of the records at these table positions (NDJSON keeps its lines);
    #: None means: rebuild them from ``table``
    originals: Callable[[Sequence[int]], list[str]] | None = None
    #: the validation result for :attr:`table`, once validated (ahead of the write)
    validated: Any = None

    @property
    def rows(self) -> int:
        """Records of the file this chunk covers: parsed and unparseable (blank lines aside)."""
        return self.table.num_rows + len(self.problems)

    def records(self, positions: Sequence[int]) -> list[str]:
        """The original records at ``positions`` of :attr:`table`, as JSON text."""
        if self.originals is not None:
            return self.originals(positions)
        rows = self.table.take(pa.array(positions, pa.int64())).drop_columns([ROW]).to_pylist()
        return [orjson.dumps(r, default=str).decode() for r in rows]


class Reader:
    """Base: ``columns`` (None when unknown) and iteration over chunks."""

    path: Path
    chunk_rows: int

    @property
    def columns(self) -> list[str] | None:
        raise NotImplementedError

    def chunks(self) -> Iterator[Chunk]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (also done when :meth:`chunks` runs to its end)."""


def open_binary(path: Path, compression: str | None) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if compression else path.open("rb")


def read_block(f: io.BufferedIOBase, n: int, path: Path) -> bytes:
    try:
        return f.read(n)
    except (OSError, EOFError) as e:  # e.g. a truncated or corrupt .gz
        raise PayloadError(f"cannot read {path.name}: {e}") from None


def reserved(path: Path, columns: Sequence[str]) -> None:
    """Refuse a header that repeats a column or uses the reserved ``_row``."""
    if ROW in columns:
        raise ContractError(f"{path.name}: the column name {ROW!r} is reserved; rename it")
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise ContractError(f"{path.name}: the column {c!r} appears twice in the header")
        seen.add(c)


def first_chunk_rows(chunk_rows: int) -> int:
    """The first chunk of a big file is half size: writing starts sooner, and the next chunk
    is read and validated meanwhile."""
    return chunk_rows // 2 if chunk_rows >= 200_000 else chunk_rows


class Rechunker:
    """Gathers tables and problems, in file order, into chunks of at most ``size`` rows (or
    :data:`MAX_CHUNK_BYTES`)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.limit = first_chunk_rows(size)
        self.tables: list[pa.Table] = []
        self.n = 0
        self.nbytes = 0
        self.problems: list[Problem] = []

    def add(self, table: pa.Table, problems: list[Problem]) -> None:
        if table.num_rows:
            self.tables.append(table)
            self.n += table.num_rows
            self.nbytes += table.nbytes
        self.problems.extend(problems)

    def take(self, schema: pa.Schema, fraction: float, *, final: bool = False) -> Iterator[Chunk]:
        # many unparseable records in a row are passed on too, so memory stays bounded
        while self.n >= self.limit or (
            (final or len(self.problems) >= self.limit or self.nbytes >= MAX_CHUNK_BYTES)
            and (self.n or self.problems)
        ):
            whole = pa.concat_tables(self.tables) if self.tables else schema.empty_table()
            head, rest = whole.slice(0, self.limit), whole.slice(self.limit)
            self.limit = self.size
            if rest.num_rows:  # problems after this chunk's last row wait for the next one
                last = head.column(ROW)[-1].as_py()
                problems = [p for p in self.problems if p.row <= last]
                self.problems = [p for p in self.problems if p.row > last]
            else:
                problems, self.problems = self.problems, []
            self.tables = [rest] if rest.num_rows else []
            self.n, self.nbytes = rest.num_rows, rest.nbytes
            yield Chunk(head, problems, fraction)
