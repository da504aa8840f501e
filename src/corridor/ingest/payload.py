"""Request bodies → records → one Arrow batch for the validator.

A body is one JSON object, a JSON array of objects, or NDJSON (one object per line). A body that
cannot be read at all (empty, not UTF-8, malformed JSON, a bare string or number) raises
:class:`~corridor.errors.PayloadError` with what to do about it; a single bad item inside an
otherwise readable body (an NDJSON line that is not JSON, an array element that is not an object)
becomes a :class:`~corridor.ingest.validate.Rejection` and the good items still go through.

Records become an Arrow table column by column (no per-row models): one column per key seen, the
contract's fields and any extra keys (kept as attributes; a nested ``attributes`` object is merged
into them), plus ``_row``, the item's number in the body (array position, or NDJSON line number).
Typing is left to the validator, which judges a record the same way whichever door it came through;
this module only makes sure every value reaches it in a form it can judge: a column of mixed types
falls back to text, and a boolean where the contract wants a number or a time is turned into text
("true") so that it is rejected as "not a number" instead of passing as 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
import pyarrow as pa
import yaml

from corridor.domain import yaml_text
from corridor.domain.contract import RecordKind
from corridor.domain.corridor_map import CorridorMap
from corridor.errors import CorridorMapError, PayloadError, PayloadTooLargeError
from corridor.ingest import attributes
from corridor.ingest.pipeline import Ingestor, IngestReport
from corridor.ingest.validate import ATTRIBUTES, ROW, Rejection

#: content types that announce one JSON value per line
NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonl",
        "application/jsonlines",
        "application/x-jsonlines",
    }
)
#: the ``field`` of a rejection about an item as a whole
RECORD = "(record)"
#: most distinct field names one batch may use (each becomes a column)
MAX_FIELDS = 1000
MAX_FIELD_NAME = 256

_BOM = b"\xef\xbb\xbf"
_HOW = "send one JSON object, a JSON array of objects, or NDJSON (one JSON object per line)"
_JSON_TYPE: pa.DataType | None = pa.json_() if hasattr(pa, "json_") else None


class ParsedPayload(NamedTuple):
    """The objects found in a body, their item numbers, and the items that were not objects."""

    records: list[dict[str, Any]]
    rejections: list[Rejection]
    #: 1-based item number of each record: its array position, or its NDJSON line number
    rows: list[int]

    @property
    def items(self) -> int:
        """How many items the body held, good and bad."""
        return len(self.records) + len({r.row for r in self.rejections})


# -- parsing --------------------------------------------------------------------------------
def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` → ``application/json``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_records(body: bytes, content_type: str | None = None) -> ParsedPayload:
    """Read a body as one JSON object, a JSON array of objects, or NDJSON.

    NDJSON is read when the content type says so (``application/x-ndjson``, ``application/jsonl``)
    or when the body is not one JSON document but its first line is a JSON value of its own.
    """
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    if not body or body.isspace():
        raise PayloadError(f"the request body is empty; {_HOW}")
    if media_type(content_type) in NDJSON_TYPES:
        _refuse_json_document(body)
        return _parse_lines(body)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        _check_utf8(body)
        if _looks_like_ndjson(body):
            return _parse_lines(body)
        raise PayloadError(
            f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}; {_HOW}"
        ) from None
    if type(doc) is dict:
        return ParsedPayload([doc], [], [1])
    if type(doc) is list:
        return _from_items(doc)
    raise PayloadError(f"the body is a single JSON {attributes.json_type(doc)}; {_HOW}")


def _from_items(items: list[Any]) -> ParsedPayload:
    if all(type(x) is dict for x in items):
        return ParsedPayload(items, [], list(range(1, len(items) + 1)))
    records: list[dict[str, Any]] = []
    rows: list[int] = []
    rejections: list[Rejection] = []
    for i, item in enumerate(items, 1):
        if type(item) is dict:
            records.append(item)
            rows.append(i)
        else:
            rejections.append(_not_an_object(i, item))
    return ParsedPayload(records, rejections, rows)


def _parse_lines(body: bytes) -> ParsedPayload:
    records: list[dict[str, Any]] = []
    rows: list[int] = []
    rejections: list[Rejection] = []
    offset = 0
    for n, line in enumerate(body.split(b"\n"), 1):
        start, offset = offset, offset + len(line) + 1
        if not line or line.isspace():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            _check_utf8(line, base=start, line=n)
            rejections.append(
                Rejection(n, None, RECORD, f"invalid JSON: {e.msg} (line {n}, column {e.colno})")
            )
            continue
        if type(value) is dict:
            records.append(value)
            rows.append(n)
        else:
            rejections.append(_not_an_object(n, value))
    if not records and not rejections:
        raise PayloadError(f"the request body holds only blank lines; {_HOW}")
    return ParsedPayload(records, rejections, rows)


def _refuse_json_document(body: bytes) -> None:
    """An NDJSON body that is really one JSON document (pretty-printed over several lines, or
    an array) is one clear error, not an "invalid JSON" rejection per line."""
    first = next((line for line in body.split(b"\n", 64) if line.strip()), b"").strip()
    is_array = first.startswith(b"[")
    if first == b"{":  # as pretty-printers begin an object: one, or several one after another
        raise PayloadError(_PRETTY)
    try:
        orjson.loads(first)
        if not is_array:
            return  # its first line is a record of its own: NDJSON
    except orjson.JSONDecodeError:
        pass
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return  # not one document either: judged line by line
    if type(doc) is list:
        raise PayloadError(
            "the NDJSON body is one JSON array; NDJSON needs one record per line — send the "
            "array as application/json, or put each record on a line of its own"
        )
    raise PayloadError(_PRETTY)


_PRETTY = (
    "the NDJSON body looks like a pretty-printed JSON document; NDJSON needs one record per "
    "line — send it as application/json (one object or an array of objects), or compact each "
    "record onto one line"
)


def _looks_like_ndjson(body: bytes) -> bool:
    """Several lines, the first non-blank of which is a JSON value on its own."""
    start = 0
    while True:
        end = body.find(b"\n", start)
        if end < 0:
            return False  # one line only: it is a (malformed) JSON document, not NDJSON
        line = body[start:end]
        if line and not line.isspace():
            break
        start = end + 1
    if body[end + 1 :].isspace():
        return False
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _check_utf8(data: bytes, *, base: int = 0, line: int | None = None) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        at = base + e.start
        ln = line if line is not None else data.count(b"\n", 0, e.start) + 1
        raise PayloadError(
            f"the request body is not valid UTF-8: byte 0x{data[e.start]:02x} at byte offset {at} "
            f"(line {ln}); encode the body as UTF-8"
        ) from None


def _not_an_object(row: int, value: Any) -> Rejection:
    kind = attributes.json_type(value)
    article = "an" if kind[0] in "aeiou" else "a"
    return Rejection(
        row, None, RECORD, f"expected a JSON object (one record), got {article} {kind}"
    )


# -- records → Arrow ------------------------------------------------------------------------
def records_to_table(
    kind: RecordKind, records: Sequence[dict[str, Any]], rows: Sequence[int]
) -> pa.Table:
    """One Arrow table for the validator; raises :class:`PayloadError` for a record that no
    table can carry faithfully (see :func:`records_to_batch`, which rejects just those)."""
    table, rejections = records_to_batch(kind, records, rows)
    if rejections:
        shown = "; ".join(f"item {r.row}, {r.field}: {r.reason}" for r in rejections[:5])
        more = f" (and {len(rejections) - 5} more)" if len(rejections) > 5 else ""
        raise PayloadError(f"records cannot be read: {shown}{more}")
    return table


def records_to_batch(
    kind: RecordKind,
    records: Sequence[dict[str, Any]],
    rows: Sequence[int],
    *,
    booleans: bool = True,
) -> tuple[pa.Table, list[Rejection]]:
    """Records → (Arrow table with a ``_row`` column, rejections of the records left out).

    A record is left out, with a reason, when it gives an object or array where the contract
    wants a single value, or uses a field name that cannot be a column (empty, a control
    character, reserved, or the same as another name in the batch except for letter case).
    ``booleans=False``: the caller knows no value is a boolean (its JSON text has no ``true``
    or ``false``), so number columns are not searched for one.
    """
    if len(records) != len(rows):
        raise ValueError(f"{len(records)} records but {len(rows)} row numbers")
    if not records:
        return pa.table({ROW: pa.array([], pa.int64())}), []
    fields = {f.name: f for f in kind.fields}
    bad: dict[int, list[tuple[str, str]]] = {}
    inferred = _infer_all(records)
    if ATTRIBUTES in inferred and ATTRIBUTES not in fields:
        records = _merge_attributes(records, fields, bad)
        inferred = _infer_all(records)
    if len(inferred) > MAX_FIELDS:
        raise PayloadError(
            f"the batch uses {len(inferred)} different field names, more than {MAX_FIELDS}; "
            "extra fields become attributes, and a batch this varied is likely a mistake "
            "(keys that carry data, such as ids or dates, belong in values)"
        )
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for key, reason in _bad_names(inferred, fields).items():
        for i, r in enumerate(records):
            if key in r:
                bad.setdefault(i, []).append((key, reason))
        del inferred[key]
    for key, arr in inferred.items():
        if key in fields:
            arr, shapeless = _field_column(key, records, arr, booleans)
            columns[key] = arr
            for i in shapeless:
                got = attributes.json_type(records[i][key])
                bad.setdefault(i, []).append(
                    (
                        key,
                        f"expected a single value, got an {got}; free-form data belongs in "
                        "a field of its own (kept as an attribute) or under 'attributes'",
                    )
                )
        else:
            columns[key] = _extra_column(key, records, arr, booleans)
    columns[ROW] = pa.array(rows, pa.int64())
    table = pa.table(columns)
    if not bad:
        return table, []
    keep = pa.array([i not in bad for i in range(len(records))], pa.bool_())
    rejections = [
        Rejection(rows[i], _record_id(records[i], kind), name, reason)
        for i in sorted(bad)
        for name, reason in bad[i]
    ]
    return table.filter(keep), rejections


def _merge_attributes(
    records: Sequence[dict[str, Any]],
    fields: dict[str, Any],
    bad: dict[int, list[tuple[str, str]]],
) -> list[dict[str, Any]]:
    """``{"attributes": {"a": 1}, ...}`` → ``{"a": 1, ...}``; keys given at the top level win.

    A nested key that names a contract field, and an ``attributes`` that is no object (an
    array, a string, ...), are refused (into ``bad``): see :mod:`corridor.ingest.attributes`.
    """
    out = []
    for i, r in enumerate(records):
        nested = r.get(ATTRIBUTES)
        if type(nested) is dict:
            bad_keys = attributes.conflicts(nested, fields)
            if bad_keys:
                bad.setdefault(i, []).extend(bad_keys)
            merged = {k: v for k, v in nested.items() if k not in fields}
            merged.update(r)
            del merged[ATTRIBUTES]
            out.append(merged)
        elif ATTRIBUTES in r and nested is None:
            out.append({k: v for k, v in r.items() if k != ATTRIBUTES})
        elif ATTRIBUTES in r:
            bad.setdefault(i, []).append((ATTRIBUTES, attributes.not_an_object(nested)))
            out.append({k: v for k, v in r.items() if k != ATTRIBUTES})
        else:
            out.append(r)
    return out


def _bad_names(keys: dict[str, Any], fields: dict[str, Any]) -> dict[str, str]:
    """Field names that cannot be columns, with the reason."""
    bad: dict[str, str] = {}
    for k in keys:
        if not k or k.isspace():
            bad[k] = "empty field name; give every field a name"
        elif k == ROW:
            bad[k] = f"{ROW!r} is reserved for the item number; rename the field"
        elif len(k) > MAX_FIELD_NAME:
            bad[k] = f"field name longer than {MAX_FIELD_NAME} characters"
        elif any(ord(c) < 32 for c in k):
            bad[k] = "field name contains a control character"
    # The validator's SQL matches column names without regard to case: one spelling per batch.
    groups: dict[str, list[str]] = {}
    for k in [*keys, ROW]:
        if k not in bad:
            groups.setdefault(k.lower(), []).append(k)
    for names in groups.values():
        if len(names) > 1:
            keep = next((n for n in names if n in fields or n == ROW), min(names))
            for n in names:
                if n != keep:
                    bad[n] = (
                        f"field name {n!r} differs from {keep!r} only in letter case, and one "
                        f"batch cannot carry both; use {keep!r} or send these records apart"
                    )
    return bad


def _record_id(record: dict[str, Any], kind: RecordKind) -> str | None:
    rid = record.get(kind.id_field)
    return None if rid is None or isinstance(rid, dict | list) else _text(rid)


def _text(v: Any) -> str | None:
    """A JSON value as the text the validator parses: ``true`` stays ``true``, not ``1``."""
    if v is None:
        return None
    t = type(v)
    if t is str:
        return v
    if t is bool:
        return "true" if v else "false"
    if t is dict or t is list:
        return orjson.dumps(v).decode()
    return str(v)


def _infer(values: list[Any]) -> pa.Array | None:
    try:
        return pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None


def _infer_all(records: Sequence[dict[str, Any]]) -> dict[str, pa.ChunkedArray | None]:
    """Every key seen, in first-seen order, with its column when Arrow could type it.

    The fast path types all columns in one pass of pyarrow's compiled row reader (a first row
    of nulls makes it see every key); when some column holds mixed types that pass fails, and
    the columns are built one by one instead (None here).
    """
    keys = dict.fromkeys(itertools.chain.from_iterable(records))
    try:
        table = pa.Table.from_pylist([keys, *records]).slice(1)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return dict.fromkeys(keys)
    return dict(zip(table.column_names, table.columns, strict=True))


def _values(key: str, records: Sequence[dict[str, Any]]) -> list[Any]:
    return [r.get(key) for r in records]


def _typed(
    key: str, records: Sequence[dict[str, Any]], arr: pa.Array | pa.ChunkedArray | None
) -> tuple[pa.Array | pa.ChunkedArray | None, list[Any] | None]:
    """``key``'s column as Arrow types it: ``arr`` when the one-pass read typed it, else inferred
    from the values (None when Arrow cannot type them); and those values, when they were read."""
    if arr is not None:
        return arr, None
    values = _values(key, records)
    return _infer(values), values


def _has_bool(values: list[Any]) -> bool:
    return bool in set(map(type, values))


def _field_column(
    key: str,
    records: Sequence[dict[str, Any]],
    arr: pa.Array | pa.ChunkedArray | None,
    booleans: bool = True,
) -> tuple[pa.Array | pa.ChunkedArray, list[int]]:
    """A contract field: as typed when that is a scalar type the validator reads as it is,
    else text. Returns the indexes of values that are objects or arrays (no single value)."""
    arr, values = _typed(key, records, arr)
    if arr is not None:
        t = arr.type
        if pa.types.is_string(t) or pa.types.is_null(t) or pa.types.is_integer(t):
            return arr, []
        # pyarrow reads [1.5, True] as [1.5, 1.0]: a boolean must not pass as a number.
        if pa.types.is_floating(t):
            if not booleans:
                return arr, []
            values = values if values is not None else _values(key, records)
            if not _has_bool(values):
                return arr, []
    values = values if values is not None else _values(key, records)
    shapeless = [i for i, v in enumerate(values) if type(v) is dict or type(v) is list]
    return pa.array([_text(v) for v in values], pa.string()), shapeless


def _extra_column(
    key: str,
    records: Sequence[dict[str, Any]],
    arr: pa.Array | pa.ChunkedArray | None,
    booleans: bool = True,
) -> pa.Array | pa.ChunkedArray:
    """An extra field (kept as an attribute): scalars as they are; anything nested or of mixed
    types as JSON, so the attribute keeps its exact value."""
    arr, values = _typed(key, records, arr)
    if arr is not None:
        t = arr.type
        if not pa.types.is_nested(t):
            if not pa.types.is_floating(t) or not booleans:
                return arr
            values = values if values is not None else _values(key, records)
            if not _has_bool(values):
                return arr
    values = values if values is not None else _values(key, records)
    storage = pa.array(
        [None if v is None else orjson.dumps(v).decode() for v in values], pa.string()
    )
    if _JSON_TYPE is None:  # pyarrow < 19: nested values stay JSON text
        return storage
    return pa.ExtensionArray.from_storage(_JSON_TYPE, storage)


# -- the corridor map -----------------------------------------------------------------------
def parse_map(body: bytes, content_type: str | None = None) -> CorridorMap:
    """A corridor map document sent as JSON (``application/json``) or YAML (anything else)."""
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    if not body or body.isspace():
        raise CorridorMapError(
            "the corridor map is empty; send a YAML or JSON document with 'stages' and "
            "'touchpoints'"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorridorMapError(
            f"the corridor map is not valid UTF-8 (byte offset {e.start}); encode it as UTF-8"
        ) from None
    mt = media_type(content_type)
    try:
        if mt == "application/json" or mt.endswith("+json"):
            data = orjson.loads(text)
        else:
            data = yaml_text.load(text)
    except orjson.JSONDecodeError as e:
        raise CorridorMapError(
            f"the corridor map is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"
        ) from None
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(e, "problem", None) or str(e)
        raise CorridorMapError(f"the corridor map is not valid YAML{where}: {problem}") from None
    return CorridorMap.from_dict(data, source="the map sent")


# -- one request ----------------------------------------------------------------------------
def ingest_body(
    ingestor: Ingestor,
    kind: RecordKind,
    body: bytes,
    content_type: str | None = None,
    *,
    max_records: int,
    source: str = "api",
) -> IngestReport:
    """Parse, convert, validate and store one body; one report for everything in it.

    Items rejected before validation (not JSON, not an object, an object where a value belongs)
    are counted in ``received`` and ``rejected`` and listed among the errors in item order, so
    the reply accounts for every item of the body.
    """
    parsed = parse_records(body, content_type)
    if parsed.items > max_records:
        raise PayloadTooLargeError(
            f"the batch holds {parsed.items:,} records, more than the limit of {max_records:,} "
            "per request; split it into smaller batches (or raise CORRIDOR_MAX_BATCH_RECORDS)"
        )
    table, shape_rejections = records_to_batch(kind, parsed.records, parsed.rows)
    if table.num_rows:
        report = ingestor.ingest(kind, table, source=source)
    else:
        report = IngestReport(kind.name)
    early = parsed.rejections + shape_rejections
    if early:
        n = len({r.row for r in early})
        report.received += n
        report.rejected += n
        report.errors = sorted([*early, *report.errors], key=lambda r: r.row)
    return report


__all__ = [
    "NDJSON_TYPES",
    "RECORD",
    "ParsedPayload",
    "ingest_body",
    "media_type",
    "parse_map",
    "parse_records",
    "records_to_batch",
    "records_to_table",
]
