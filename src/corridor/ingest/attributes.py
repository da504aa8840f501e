"""The ``attributes`` field: free-form extra fields given as one JSON object.

Every door reads it the same way. An object's keys are merged with the record's other extra
fields (a key given at the top level wins); a key that names a contract field is refused (free-form
attributes must not fill in, or be judged as, the contract's fields); a missing or empty value
means none. Anything else (an array, a string, a number, a boolean) breaks the contract, which
says object, and the record is rejected with that reason, like any other contract violation.

The HTTP API applies this to each parsed record (:mod:`corridor.ingest.payload`); file imports to
the ``attributes`` column of each chunk (:func:`merge_column`): JSON text of an object in a CSV
cell, an object in NDJSON, a struct, map or JSON text column in Parquet.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson
import pyarrow as pa

from corridor.ingest.validate import ATTRIBUTES


def json_type(value: Any) -> str:
    """The JSON name of a Python value's type: null, boolean, number, string, array, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


def not_an_object(value: Any) -> str:
    """The reason an ``attributes`` value that is no object is rejected."""
    kind = json_type(value)
    article = "an" if kind[0] in "aeiou" else "a"
    return (
        f"expected a JSON object of extra fields (name: value), got {article} {kind}; e.g. "
        '"attributes": {"tier": "gold"}, or give each extra field at the top level of the record'
    )


def conflicts(nested: dict[str, Any], fields: Collection[str]) -> list[tuple[str, str]]:
    """(field, reason) for each key of ``nested`` that names a contract field."""
    return [
        (
            f"{ATTRIBUTES}.{k}",
            f"{k!r} is a field of the contract; send it at the top level of the record, or give "
            "the attribute another name",
        )
        for k in nested
        if k in fields
    ]


def merge_column(
    table: pa.Table, fields: Collection[str]
) -> tuple[pa.Table, dict[int, list[tuple[str, str]]]]:
    """A file chunk's ``attributes`` column → its keys as extra columns (a column the chunk
    already has wins), and the problems of the rows that break the rule, by row position."""
    bad: dict[int, list[tuple[str, str]]] = {}
    nested: list[dict[str, Any] | None] = []
    column = table.column(ATTRIBUTES)
    values = column.to_pylist()
    if pa.types.is_map(column.type):
        values = [None if v is None else dict(v) for v in values]
    for i, value in enumerate(values):
        obj = _as_object(value)
        if isinstance(obj, str):  # the reason it is no object
            bad[i] = [(ATTRIBUTES, obj)]
            nested.append(None)
            continue
        if obj:
            found = conflicts(obj, fields)
            if found:
                bad[i] = found
        nested.append(obj)
    table = table.drop_columns([ATTRIBUTES])
    present = set(table.column_names)
    keys = dict.fromkeys(
        k for obj in nested if obj for k in obj if k not in present and k not in fields
    )
    for key in keys:
        table = table.append_column(key, _column([obj.get(key) if obj else None for obj in nested]))
    return table, bad


def _as_object(value: Any) -> dict[str, Any] | str | None:
    """The object in one cell, None for nothing, or the reason (a str) it is no object."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    if isinstance(value, str | bytes):
        text = value.strip()
        if not text:
            return None
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return (
                "expected a JSON object of extra fields (name: value), e.g. "
                '{"tier": "gold"}; this is no JSON'
            )
        if isinstance(value, dict):
            return value
    return not_an_object(value)


def _column(values: list[Any]) -> pa.Array:
    """An extra column from JSON values: typed when Arrow can, else each value as JSON text."""
    if bool in set(map(type, values)) and any(
        type(v) in (int, float) for v in values
    ):  # a boolean must not pass as a number
        return _json_text(values)
    try:
        return pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return _json_text(values)


def _json_text(values: list[Any]) -> pa.Array:
    texts = [
        None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode() for v in values
    ]
    return pa.array(texts, pa.string())
