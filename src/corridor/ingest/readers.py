"""Stream contract files (CSV, NDJSON, Parquet) as Arrow chunks that carry their row numbers.

A reader yields :class:`~corridor.ingest.chunks.Chunk` objects of at most ``chunk_rows`` records.
Every chunk's table has a ``_row`` int64 column: the physical line number for CSV (header = line
1) and NDJSON, the 1-based row index for Parquet, so a problem found later (by validation) points
at the right place in the file. Records that cannot be parsed at all (a CSV row with the wrong
number of fields, a line that is not a JSON object) travel beside the table as
:class:`~corridor.ingest.chunks.Problem` items and never stop the rest.

Memory stays bounded by the chunk size whatever the size of the file: CSV is parsed block by block
by pyarrow (one thread, so its invalid-row handler knows row numbers), NDJSON is read in blocks of
lines, Parquet batch by batch.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from corridor.domain.contract import RecordKind
from corridor.errors import ContractError, PayloadError
from corridor.ingest.chunks import (
    MAX_CHUNK_BYTES,
    ROW_FIELD,
    Chunk,
    Problem,
    Reader,
    Rechunker,
    first_chunk_rows,
    open_binary,
    read_block,
    reserved,
)
from corridor.ingest.csv_reader import CsvReader
from corridor.ingest.payload import records_to_batch
from corridor.ingest.validate import ROW

FORMATS = ("csv", "ndjson", "parquet")
#: file name endings and the format they mean; ``.gz`` may follow csv and ndjson endings
SUFFIXES = {
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
    ".parquet": "parquet",
    ".pq": "parquet",
}
FORMAT_ALIASES = {"jsonl": "ndjson", "json": "ndjson", "pq": "parquet"}

_NDJSON_BLOCK = 8 << 20
#: an NDJSON file whose first line is no JSON value is tried whole as one JSON document (for a
#: clear error) up to this size (compressed size for .gz)
_DOCUMENT_SNIFF_BYTES = 16 << 20


def detect_format(path: Path, fmt: str | None) -> tuple[str, str | None]:
    """(format, compression) for ``path``: from ``fmt`` when given, else from the file name."""
    name = path.name.lower()
    compression = "gzip" if name.endswith(".gz") else None
    allowed = ", ".join([*SUFFIXES, ".csv.gz", ".ndjson.gz", ".jsonl.gz"])
    if fmt is not None:
        f = FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
        if f not in FORMATS:
            raise ContractError(f"unknown format {fmt!r}; allowed formats: {', '.join(FORMATS)}")
    else:
        stem = name[:-3] if compression else name
        suffix = "." + stem.rsplit(".", 1)[-1] if "." in stem else ""
        if suffix not in SUFFIXES:
            raise ContractError(
                f"cannot tell the format of {path.name!r} from its name; allowed endings: "
                f"{allowed} (or name the format: csv, ndjson or parquet)"
            )
        f = SUFFIXES[suffix]
    if compression and f == "parquet":
        raise ContractError(
            f"{path.name}: Parquet compresses itself; give the .parquet file without .gz"
        )
    return f, compression


def open_reader(
    path: Path, fmt: str, compression: str | None, chunk_rows: int, kind: RecordKind
) -> Reader:
    """A reader for ``path``; whole-file problems (empty, not UTF-8, ...) are raised here.
    ``kind``: the records' kind: a CSV problem names the record by its id field, and an NDJSON
    file's values are typed as the API types a request's (a record judged alike whichever
    door it came through)."""
    if fmt == "csv":
        return CsvReader(path, compression, chunk_rows, kind.id_field)
    if fmt == "ndjson":
        return NdjsonReader(path, compression, chunk_rows, kind)
    return ParquetReader(path, chunk_rows)


def _row_numbers(start: int, n: int) -> pa.Array:
    return pa.array(np.arange(start, start + n, dtype=np.int64))


# -- NDJSON ---------------------------------------------------------------------------------------
def _converted_name(path: Path) -> str:
    """A name for ``path`` converted to NDJSON: never its own (a shell empties the file it
    redirects to before the command reads it)."""
    name = f"{Path(path.stem).stem}.ndjson"
    return name if name != path.name else f"{Path(path.stem).stem}.lines.ndjson"


class NdjsonReader(Reader):
    def __init__(
        self, path: Path, compression: str | None, chunk_rows: int, kind: RecordKind
    ) -> None:
        self.path, self.compression, self.chunk_rows = path, compression, chunk_rows
        self.kind = kind
        with open_binary(path, compression) as f:
            start = read_block(f, 4096, path).lstrip(b"\xef\xbb\xbf \t\r\n")
        converted = _converted_name(path)
        if start.startswith(b"["):
            raise PayloadError(
                f"{path.name} holds a JSON array; NDJSON wants one JSON object per line "
                f"(convert it with e.g. jq -c '.[]' {path.name} > {converted})"
            )
        if self._one_document(start):
            raise PayloadError(
                f"{path.name} looks like a pretty-printed JSON document; NDJSON needs one record "
                f"per line: compact each record onto one line (e.g. jq -c . {path.name} > "
                f"{converted})"
            )
        self._iter = self._chunks()
        # the columns are only known once the first records are parsed
        self._first: Chunk | None = next(self._iter, None)
        if self._first is None:
            raise PayloadError(f"{self.path.name} is empty: NDJSON needs one JSON object per line")

    def _one_document(self, start: bytes) -> bool:
        """Whether the file is JSON spread over lines rather than one record per line: its first
        line is a lone ``{`` (as pretty-printers write), or the first line is no JSON value and
        the whole (small) file is one JSON document."""
        first = start.split(b"\n", 1)[0].strip()
        if first == b"{":
            return True
        if b"\n" not in start or self.path.stat().st_size > _DOCUMENT_SNIFF_BYTES:
            return False
        try:
            orjson.loads(first)
            return False
        except orjson.JSONDecodeError:
            pass
        with open_binary(self.path, self.compression) as f:
            whole = read_block(f, _DOCUMENT_SNIFF_BYTES + 1, self.path)
        try:
            orjson.loads(whole.removeprefix(b"\xef\xbb\xbf"))
        except orjson.JSONDecodeError:
            return False
        return True

    @property
    def columns(self) -> list[str] | None:
        if self._first is None or self._first.table.num_rows == 0:
            return None
        return [c for c in self._first.table.column_names if c != ROW]

    def close(self) -> None:
        self._iter.close()

    def chunks(self) -> Iterator[Chunk]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._iter

    def _chunks(self) -> Generator[Chunk, None, None]:
        size = max(self.path.stat().st_size, 1)
        with self.path.open("rb") as raw:
            f: io.BufferedIOBase = raw
            if self.compression:
                f = gzip.GzipFile(fileobj=raw, mode="rb")
            lines: list[tuple[int, bytes]] = []
            tail = b""
            line_no = nbytes = 0
            limit = first_chunk_rows(self.chunk_rows)
            while True:
                block = read_block(f, _NDJSON_BLOCK, self.path)
                parts = (tail + block).split(b"\n")
                tail = parts.pop() if block else b""
                for text in parts:
                    line_no += 1
                    if line_no == 1:
                        text = text.removeprefix(b"\xef\xbb\xbf")  # a byte order mark
                    if not text.strip():
                        continue
                    lines.append((line_no, text))
                    nbytes += len(text)
                    if len(lines) >= limit or nbytes >= MAX_CHUNK_BYTES:
                        yield self._parse(lines, raw.tell() / size)
                        lines, nbytes, limit = [], 0, self.chunk_rows
                if not block:
                    break
            if lines:
                yield self._parse(lines, 1.0)

    def _parse(self, lines: list[tuple[int, bytes]], fraction: float) -> Chunk:
        good: list[dict[str, Any]] = []
        numbers: list[int] = []
        texts: list[bytes] = []
        problems: list[Problem] = []
        for no, text in lines:
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError as e:
                problems.append(Problem(no, ROW_FIELD, f"invalid JSON: {e}", _as_json(text)))
                continue
            if not isinstance(obj, dict):
                problems.append(
                    Problem(
                        no,
                        ROW_FIELD,
                        f"expected a JSON object per line, found {type(obj).__name__}",
                        _as_json(text),
                    )
                )
                continue
            good.append(obj)
            numbers.append(no)
            texts.append(text)
        keys: dict[str, None] = {}
        for obj in good:
            keys.update(dict.fromkeys(obj))
        if ROW in keys:
            raise ContractError(f"{self.path.name}: the field name {ROW!r} is reserved; rename it")
        # the API's typing: an object where a value is wanted, or a boolean where a number
        # is, is refused, not stored as its Python text or as 1
        booleans = any(b"true" in t or b"false" in t for t in texts)
        table, rejected = records_to_batch(self.kind, good, numbers, booleans=booleans)
        if rejected:
            text_of = dict(zip(numbers, texts, strict=True))
            problems += [
                Problem(r.row, r.field, r.reason, _line(text_of[r.row]), r.id) for r in rejected
            ]
            texts = [text_of[n] for n in table.column(ROW).to_pylist()]  # (the rows kept)

        def originals(positions: Sequence[int]) -> list[str]:
            return [_line(texts[i]) for i in positions]

        return Chunk(table, problems, fraction, originals)


def _line(text: bytes) -> str:
    """A line of the file as the quarantine file keeps a record (its JSON as written)."""
    return text.decode("utf-8", errors="replace").strip()


def _as_json(text: bytes) -> str:
    return orjson.dumps(_line(text)).decode()


# -- Parquet --------------------------------------------------------------------------------------
class ParquetReader(Reader):
    def __init__(self, path: Path, chunk_rows: int) -> None:
        self.path, self.chunk_rows = path, chunk_rows
        try:
            self.file = pq.ParquetFile(path)
            self.schema = self.file.schema_arrow
        except (pa.ArrowException, OSError) as e:
            raise PayloadError(f"cannot read {path.name} as Parquet: {e}") from None
        reserved(path, self.schema.names)

    def close(self) -> None:
        self.file.close()

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def chunks(self) -> Iterator[Chunk]:
        total = max(self.file.metadata.num_rows, 1)
        out = Rechunker(self.chunk_rows)
        schema = self.schema.append(pa.field(ROW, pa.int64()))
        done = 0
        try:
            for batch in self.file.iter_batches(batch_size=out.limit):
                table = pa.Table.from_batches([batch])
                table = table.append_column(ROW, _row_numbers(done + 1, table.num_rows))
                done += table.num_rows
                out.add(table, [])
                yield from out.take(schema, done / total)
            yield from out.take(schema, 1.0, final=True)
        except (pa.ArrowException, OSError) as e:
            raise PayloadError(f"cannot read {self.path.name} after row {done:,}: {e}") from None
        finally:
            self.file.close()
