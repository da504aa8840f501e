"""CSV files: all columns read as text by pyarrow, block by block, with exact line numbers.

pyarrow parses on one thread (``use_threads=False``) so its invalid-row handler knows where a
malformed row is: a row with the wrong number of fields is skipped there and becomes a
:class:`~corridor.ingest.chunks.Problem`. pyarrow numbers *records* (header = 1, blank lines
count); a record spans more than one physical line when a quoted value holds a newline, so each
good row's line number is worked out from the records before it: the malformed ones (whose
numbers pyarrow reports, a little ahead of the batches it returns) and the newlines inside values.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from corridor.errors import PayloadError
from corridor.ingest.chunks import (
    ROW_FIELD,
    Chunk,
    Problem,
    Reader,
    Rechunker,
    open_binary,
    read_block,
    reserved,
)
from corridor.ingest.validate import ROW

_SCAN_BLOCK = 16 << 20
#: bytes pyarrow parses at a time (a module variable so tests can make it small)
CSV_BLOCK = 4 << 20


def check_utf8(path: Path, compression: str | None) -> None:
    """Refuse a file that is not UTF-8 before anything is imported, saying where it breaks."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = lines = line_start = 0  # bytes read, newlines seen, offset where the line began
    with open_binary(path, compression) as f:
        while True:
            block = read_block(f, _SCAN_BLOCK, path)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                data = bytes(e.object)  # what the decoder held back, then this block
                base = offset - (len(data) - len(block))
                pos = max(e.start, 0)
                head = data[:pos]
                if b"\n" in head:
                    line_start = base + head.rfind(b"\n") + 1
                line = lines + head.count(b"\n") + 1
                raise PayloadError(
                    f"{path.name} is not valid UTF-8: line {line}, "
                    f"column {base + pos - line_start + 1} (byte {base + pos}) holds "
                    f"{data[pos : pos + 4]!r}; save the file as UTF-8 and import it again "
                    "(nothing was imported)"
                ) from None
            if not block:
                return
            if b"\n" in block:
                line_start = offset + block.rfind(b"\n") + 1
            offset += len(block)
            lines += block.count(b"\n")


class CsvReader(Reader):
    def __init__(
        self, path: Path, compression: str | None, chunk_rows: int, id_field: str | None = None
    ) -> None:
        self.path, self.compression, self.chunk_rows = path, compression, chunk_rows
        check_utf8(path, compression)
        self.names, self.header_lines = self._header()
        reserved(path, [n for n in self.names if n])
        self.id_index = self.names.index(id_field) if id_field in self.names else None

    def _header(self) -> tuple[list[str], int]:
        with open_binary(self.path, self.compression) as f:
            head = read_block(f, 1 << 20, self.path).decode("utf-8", errors="replace")
        head = head.removeprefix("\ufeff")
        if not head.strip():
            raise PayloadError(
                f"{self.path.name} is empty: a CSV file needs a header row naming its columns"
            )
        reader = csv.reader(io.StringIO(head))
        try:
            names = next(reader)
        except (csv.Error, StopIteration) as e:
            raise PayloadError(f"{self.path.name}: cannot read the header row: {e}") from None
        names = [n.strip() for n in names]
        if not any(names):
            raise PayloadError(f"{self.path.name}: the header row names no columns")
        return names, reader.line_num

    @property
    def columns(self) -> list[str]:
        return [n for n in self.names if n]

    def chunks(self) -> Iterator[Chunk]:
        # unnamed columns (a trailing comma in the header) are parsed, then dropped
        names = [n or f"__unnamed_{i}" for i, n in enumerate(self.names)]
        bad: list[tuple[int, str]] = []  # (record number, text) reported by pyarrow

        def on_invalid(row: Any) -> str:
            bad.append((int(row.number), str(row.text)))
            return "skip"

        raw = pa.OSFile(str(self.path), "rb")
        size = max(self.path.stat().st_size, 1)
        stream = pa.CompressedInputStream(raw, self.compression) if self.compression else raw
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(
                    column_names=names, skip_rows=1, use_threads=False, block_size=CSV_BLOCK
                ),
                parse_options=pacsv.ParseOptions(
                    newlines_in_values=True,
                    ignore_empty_lines=False,  # blank lines keep their place in the numbering
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names},
                    strings_can_be_null=False,
                    check_utf8=False,  # checked before, with a line number
                ),
            )
            yield from self._chunks(reader, len(names), bad, lambda: raw.tell() / size)
        except pa.ArrowInvalid as e:
            raise PayloadError(f"cannot parse {self.path.name}: {e}") from None
        finally:
            stream.close()
            raw.close()

    def _chunks(
        self,
        reader: pacsv.CSVStreamingReader,
        ncols: int,
        bad: list[tuple[int, str]],
        fraction: Callable[[], float],
    ) -> Iterator[Chunk]:
        keep = self.columns
        record = 2  # pyarrow's number of the next record not yet placed (header = 1)
        offset = self.header_lines - 1  # physical line minus record number, so far
        out = Rechunker(self.chunk_rows)
        schema = pa.schema([(n, pa.string()) for n in keep]).append(pa.field(ROW, pa.int64()))
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                batch = None
            n = 0 if batch is None else batch.num_rows
            extra = np.zeros(n, dtype=np.int64)  # newlines inside each good row's values
            if batch is not None:
                for col in batch.columns:
                    extra += pc.count_substring(col, "\n").to_numpy(zero_copy_only=False)
            # ``before[j]``: good rows of this batch in front of bad record j. A bad record with
            # before <= n lies among or right after them; the others are further on and wait.
            bad.sort()
            before = np.array([r - record - j for j, (r, _) in enumerate(bad)], dtype=np.int64)
            take = len(bad) if batch is None else int(np.searchsorted(before, n, side="right"))
            before = np.clip(before[:take], 0, n)
            bad_extra = np.array([t.count("\n") for _, t in bad[:take]], dtype=np.int64)
            shift = np.zeros(n + 1, dtype=np.int64)  # bad records in front of good row i
            bad_lines = np.zeros(n + 1, dtype=np.int64)  # and the newlines inside them
            np.add.at(shift, before, 1)
            np.add.at(bad_lines, before, bad_extra)
            good_before = np.concatenate([[0], np.cumsum(extra)])
            lines = (
                record
                + offset
                + np.arange(n)
                + np.cumsum(shift)[:n]
                + good_before[:n]
                + np.cumsum(bad_lines)[:n]
            )
            bad_before = np.concatenate([[0], np.cumsum(bad_extra)])
            problems = [
                self._problem(r + offset + int(good_before[before[j]] + bad_before[j]), text, ncols)
                for j, (r, text) in enumerate(bad[:take])
                if text.strip()  # a line of spaces is a blank line, not a record
            ]
            record += n + take
            offset += int(extra.sum() + bad_extra.sum())
            del bad[:take]
            if batch is not None:
                table = pa.Table.from_batches([batch])
                empty = _all_empty(table)
                table = table.select(keep).append_column(ROW, pa.array(lines, pa.int64()))
                if empty is not None:
                    table = table.filter(pc.invert(empty))
                out.add(table, problems)
                yield from out.take(schema, min(fraction(), 1.0))
            else:
                out.add(schema.empty_table(), problems)
                yield from out.take(schema, 1.0, final=True)
                return

    def _problem(self, line: int, text: str, ncols: int) -> Problem:
        try:
            fields = next(csv.reader(io.StringIO(text)))
        except (csv.Error, StopIteration):
            fields = []
        rid = None
        if self.id_index is not None and self.id_index < len(fields):
            rid = fields[self.id_index].strip() or None
        reason = f"expected {ncols} fields, found {len(fields)}"
        if any("\n" in f for f in fields):
            # a quoted field runs on to the next line: most often a quote left open
            reason += (
                '; a field opened with a double quote (") runs on over the next line(s): close '
                "the quote (a quote inside a quoted field is written twice)"
            )
        return Problem(line, ROW_FIELD, reason, orjson.dumps(text).decode(), rid)


def _all_empty(table: pa.Table) -> pa.ChunkedArray | None:
    """Rows whose every field is empty (blank lines, or only commas): they carry nothing."""
    mask: Any = None
    for col in table.columns:
        empty = pc.equal(pc.binary_length(col), 0)
        mask = empty if mask is None else pc.and_(mask, empty)
    if mask is None or not pc.any(mask).as_py():
        return None
    return mask
