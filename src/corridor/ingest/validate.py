"""Validate a batch of records against the contract, in one vectorised pass.

The contract (:mod:`corridor.domain.contract`) is compiled into a single DuckDB query over the
batch as an Arrow table, whatever door it came through (HTTP JSON, CSV, NDJSON, Parquet). The query
types every field, normalises identities and labels, packs extra columns into ``attributes`` and
lists every problem of every row as (field, reason). Valid rows come back as a typed Arrow table;
rejected rows as :class:`Rejection` items that name the row, the field and the reason.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from corridor.domain.contract import (
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    PHONE_SEPARATORS,
    Field,
    FieldType,
    RecordKind,
    Vocabulary,
)
from corridor.domain.corridor_map import CorridorMap

ROW = "_row"
ATTRIBUTES = "attributes"


@dataclass(frozen=True)
class Rejection:
    """One problem with one record: which row (1-based), its id if any, the field, the reason."""

    row: int
    id: str | None
    field: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"item": self.row, "id": self.id, "field": self.field, "reason": self.reason}


@dataclass
class ValidationResult:
    valid: pa.Table
    rejections: list[Rejection] = field(default_factory=list)
    rejected_rows: int = 0
    #: rows dropped because an earlier row in the same batch had the same id
    batch_duplicates: int = 0


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _list(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(_lit(v) for v in values) + "]::VARCHAR[]"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Vocabularies:
    """Allowed values that come from the loaded corridor map."""

    touchpoints: tuple[str, ...]
    channels: tuple[str, ...]
    departments: tuple[str, ...]
    has_map: bool

    @classmethod
    def from_map(cls, cmap: CorridorMap | None) -> Vocabularies:
        from corridor.domain.contract import CHANNELS, DEPARTMENTS

        if cmap is None:
            return cls((), CHANNELS, DEPARTMENTS, False)
        return cls(tuple(cmap.touchpoint_keys), tuple(cmap.channels), tuple(cmap.departments), True)

    def values(self, v: Vocabulary) -> tuple[str, ...]:
        return {
            Vocabulary.TOUCHPOINT: self.touchpoints,
            Vocabulary.CHANNEL: self.channels,
            Vocabulary.DEPARTMENT: self.departments,
        }[v]

    def unknown_reason(self, v: Vocabulary, value_sql: str) -> str:
        """SQL for the message given when ``value_sql`` is not in vocabulary ``v``."""
        if v is Vocabulary.TOUCHPOINT and not self.has_map:
            return _lit(
                "no corridor map is loaded, so no touch point is known yet; "
                "load one first with `corridor map load FILE` (or PUT /api/v1/map)"
            )
        allowed = self.values(v)
        shown = ", ".join(allowed[:40]) + (" ..." if len(allowed) > 40 else "")
        what = {"touchpoint": "touch point", "channel": "channel", "department": "department"}[v]
        suffix = (
            " (not in the loaded corridor map: add it there and `corridor map load` the map "
            "again, or correct the row)"
            if v is Vocabulary.TOUCHPOINT
            else ""
        )
        return f"'unknown {what} ''' || {value_sql} || '''{suffix}; allowed: {shown}'"


class _Compiler:
    """Builds the SQL for one kind and one input schema."""

    def __init__(self, kind: RecordKind, schema: pa.Schema, vocab: Vocabularies) -> None:
        self.kind = kind
        self.schema = schema
        self.vocab = vocab
        self.present = set(schema.names)
        #: the name of every SQL lambda's parameter: one no input column has (a record may
        #: carry any extra field, e.g. one named ``x`` or ``e``, which would shadow it)
        self.lam = "_item"
        while self.lam.lower() in {n.lower() for n in schema.names}:
            self.lam += "_"
        self.selects: list[str] = []
        self.errors: list[str] = []
        self.conditions: list[str] = []

    def raw(self, f: Field) -> str | None:
        if f.name not in self.present:
            return None
        col = f"src.{_ident(f.name)}"
        t = self.schema.field(f.name).type
        if f.type is FieldType.TIMESTAMP and (pa.types.is_timestamp(t) or pa.types.is_date(t)):
            return col
        if f.type in (FieldType.NUMBER, FieldType.INTEGER) and (
            pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        ):
            return col
        return f"CAST({col} AS VARCHAR)"

    def err(self, cond: str, fname: str, reason_sql: str) -> None:
        self.conditions.append(f"coalesce({cond}, FALSE)")
        self.errors.append(
            f"CASE WHEN {cond} THEN {{'field': {_lit(fname)}, 'reason': {reason_sql}}} END"
        )

    def field(self, f: Field) -> None:
        raw = self.raw(f)
        n = _ident(f.name)
        if raw is None:
            self.selects.append(f"CAST(NULL AS {self._out_type(f)}) AS {n}")
            if f.required:
                self.err("TRUE", f.name, _lit(f"required field {f.name!r} is missing"))
            return
        if f.type is FieldType.TIMESTAMP:
            self._timestamp(f, raw)
        elif f.type in (FieldType.NUMBER, FieldType.INTEGER):
            self._number(f, raw)
        else:
            self._string(f, raw)

    def _out_type(self, f: Field) -> str:
        return f.sql_type

    def _missing(self, f: Field, expr: str) -> None:
        if f.required:
            self.err(f"{expr} IS NULL", f.name, _lit(f"required field {f.name!r} is empty"))

    def _string(self, f: Field, raw: str) -> None:
        n = _ident(f.name)
        s = f"NULLIF(trim({raw}), '')"
        if f.lowercase:
            s = f"lower({s})"
        if f.name == "phone":
            s = f"NULLIF(regexp_replace({s}, '{PHONE_SEPARATORS}', '', 'g'), '')"
        if f.type is FieldType.KEY_LIST:
            s = (
                f"NULLIF(array_to_string(list_filter(list_transform(string_split({s}, ';'), "
                f"lambda {self.lam}: trim({self.lam})), lambda {self.lam}: {self.lam} <> ''), "
                "';'), '')"
            )
        self.selects.append(f"{s} AS {n}")
        self._missing(f, f"v.{n}")
        v = f"v.{n}"
        limit = MAX_TEXT_LENGTH if f.type is FieldType.TEXT else MAX_ID_LENGTH
        self.err(f"length({v}) > {limit}", f.name, _lit(f"longer than {limit} characters"))
        self.err(
            f"contains({v}, chr(0))",
            f.name,
            _lit("holds a NUL character (\\0), which no store can keep; remove it"),
        )
        if f.choices:
            self.err(
                f"NOT list_contains({_list(f.choices)}, {v})",
                f.name,
                f"'''' || {v} || ''' is not allowed; use one of: {', '.join(f.choices)}'",
            )
        if f.vocabulary is not None:
            allowed = _list(self.vocab.values(f.vocabulary))
            if f.type is FieldType.KEY_LIST:
                bad = (
                    f"list_filter(string_split({v}, ';'), "
                    f"lambda {self.lam}: NOT list_contains({allowed}, {self.lam}))"
                )
                self.err(
                    f"len({bad}) > 0",
                    f.name,
                    self.vocab.unknown_reason(f.vocabulary, f"array_to_string({bad}, ', ')"),
                )
            else:
                self.err(
                    f"NOT list_contains({allowed}, {v})",
                    f.name,
                    self.vocab.unknown_reason(f.vocabulary, v),
                )
        if f.type is FieldType.PERIOD:
            self.err(
                f"NOT regexp_full_match({v}, '\\d{{4}}-(0[1-9]|1[0-2])')",
                f.name,
                f"'''' || {v} || ''' is not a month; write it as YYYY-MM, e.g. 2025-03'",
            )
        if f.name == "email":
            self.err(
                f"NOT regexp_full_match({v}, '[^@\\s]+@[^@\\s]+')",
                f.name,
                f"'''' || {v} || ''' is not an e-mail address'",
            )
        if f.name == "phone":
            self.err(
                f"NOT regexp_full_match({v}, '\\+?\\d{{5,20}}')",
                f.name,
                f"'''' || {v} || ''' is not a phone number (digits, optional leading +)'",
            )

    def _typed(self, f: Field) -> bool:
        """True when the source column already has the field's type: nothing to parse."""
        t = self.schema.field(f.name).type
        if f.type is FieldType.TIMESTAMP:
            return bool(pa.types.is_timestamp(t) or pa.types.is_date(t))
        return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))

    def _source(self, f: Field, raw: str, target: str, unreadable: str) -> tuple[str, str]:
        """(typed value, source text) expressions; a typed source is used as it is, a text that
        does not read as ``target`` is refused with ``unreadable`` (SQL; ``{text}``: the text)."""
        n = _ident(f.name)
        if self._typed(f):
            self.selects.append(f"CAST({raw} AS {target}) AS {n}")
            v = f"v.{n}"
            self._missing(f, v)
            return v, f"CAST({v} AS VARCHAR)"
        src = _ident(f"{f.name}__src")
        self.selects.append(f"NULLIF(trim({raw}), '') AS {src}")
        self.selects.append(f"TRY_CAST(NULLIF(trim({raw}), '') AS {target}) AS {n}")
        v, sv = f"v.{n}", f"v.{src}"
        self._missing(f, sv)
        self.err(f"{sv} IS NOT NULL AND {v} IS NULL", f.name, unreadable.format(text=sv))
        return v, sv

    def _timestamp(self, f: Field, raw: str) -> None:
        v, sv = self._source(
            f,
            raw,
            "TIMESTAMPTZ",
            "'cannot read ''' || left({text}, 60) || ''' as a time; use ISO-8601, "
            "e.g. 2025-03-01T14:30:00Z (no offset means UTC)'",
        )
        self.err(
            f"{v} IS NOT NULL AND (year({v}) < 1970 OR year({v}) > 2100)",
            f.name,
            f"'time ''' || {sv} || ''' is outside 1970-2100'",
        )

    def _number(self, f: Field, raw: str) -> None:
        v, sv = self._source(f, raw, "DOUBLE", "'''' || left({text}, 60) || ''' is not a number'")
        self.err(f"isnan({v}) OR isinf({v})", f.name, _lit("must be a finite number"))
        if f.type is FieldType.INTEGER:
            self.err(
                f"NOT isinf({v}) AND {v} <> round({v})",
                f.name,
                f"'''' || {sv} || ''' must be a whole number'",
            )
        if f.minimum is not None and f.maximum is not None:
            lo, hi = _fmt(f.minimum), _fmt(f.maximum)
            self.err(
                f"{v} < {f.minimum} OR {v} > {f.maximum}",
                f.name,
                f"'''' || {sv} || ''' is out of range; {f.name} must be between {lo} and {hi}'",
            )
        elif f.minimum is not None:
            self.err(
                f"{v} < {f.minimum}",
                f.name,
                f"'''' || {sv} || ''' must be at least {_fmt(f.minimum)}'",
            )

    def person_rule(self) -> None:
        if not self.kind.person_required:
            return
        names = ["person_id", *(f.name for f in self.kind.identity_fields)]
        cond = " AND ".join(f"v.{_ident(x)} IS NULL" for x in names)
        self.err(
            cond,
            "person_id",
            _lit(f"name the person: give person_id or one of {', '.join(names[1:])}"),
        )

    def output_columns(self) -> list[str]:
        out = []
        for f in self.kind.fields:
            n = _ident(f.name)
            out.append(
                f"TRY_CAST(v.{n} AS INTEGER) AS {n}" if f.type is FieldType.INTEGER else f"v.{n}"
            )
        return out

    def extras(self) -> list[str]:
        known = set(self.kind.field_names) | {ROW}
        return [c for c in self.schema.names if c not in known]


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


class Validator:
    """Validates batches for one store's vocabularies; cheap to keep, safe across threads."""

    def __init__(self, vocab: Vocabularies) -> None:
        self.vocab = vocab
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._con.close()

    def validate(self, kind: RecordKind, batch: pa.Table) -> ValidationResult:
        """``batch`` must carry a ``_row`` int64 column (1-based row or item numbers)."""
        if ROW not in batch.schema.names:
            batch = batch.append_column(ROW, pa.array(range(1, batch.num_rows + 1), pa.int64()))
        c = _Compiler(kind, batch.schema, self.vocab)
        for f in kind.fields:
            c.field(f)
        c.person_rule()
        extras = c.extras()
        if extras:
            # Only the keys a record really has: no {"basket": null} for rows without a basket.
            entries = ", ".join(
                f"{{'k': {_lit(e)}, 'v': to_json(src.{_ident(e)})}}" for e in extras
            )
            e = c.lam
            attrs = (
                f"NULLIF(CAST(to_json(map_from_entries(list_filter([{entries}], lambda {e}: "
                f"{e}.v IS NOT NULL AND CAST({e}.v AS VARCHAR) <> 'null'))) AS VARCHAR), '{{}}')"
            )
            # a NUL in an extra field's value: JSON escapes it as \u0000, which PostgreSQL's
            # jsonb refuses (and no text column can hold)
            c.err(
                f"contains(v.{ATTRIBUTES}, '\\u0000')",
                ATTRIBUTES,
                _lit("an extra field's value holds a NUL character (\\0); remove it"),
            )
        else:
            attrs = "CAST(NULL AS VARCHAR)"
        # Cheap test first; the list of reasons is only built for the rows that fail it.
        errors = (
            f"CASE WHEN {' OR '.join(c.conditions) or 'FALSE'} THEN list_filter(["
            + ", ".join(c.errors)
            + f"], lambda {c.lam}: {c.lam} IS NOT NULL) ELSE [] END"
        )
        sql = f"""
            WITH v AS (
                SELECT src.{ROW}, {", ".join(c.selects)}, {attrs} AS {ATTRIBUTES}
                FROM batch AS src
            )
            SELECT v.{ROW}, {", ".join(c.output_columns())}, v.{ATTRIBUTES},
                   {errors} AS _errors
            FROM v
        """
        with self._lock:
            self._con.register("batch", batch)
            try:
                checked = self._con.sql(sql).to_arrow_table()
            finally:
                self._con.unregister("batch")
        ok = pc.equal(pc.list_value_length(checked.column("_errors")), 0)
        if pc.all(ok).as_py() is not False:  # the usual case: no copy of the batch
            valid, bad = checked.drop_columns(["_errors"]), checked.slice(0, 0)
        else:
            valid = checked.filter(ok).drop_columns(["_errors"])
            bad = checked.filter(pc.invert(ok))
        rejections = [
            Rejection(int(row), None if rid is None else str(rid), e["field"], e["reason"])
            for row, rid, errs in zip(
                bad.column(ROW).to_pylist(),
                bad.column(kind.id_field).to_pylist(),
                bad.column("_errors").to_pylist(),
                strict=True,
            )
            for e in errs
        ]
        dups = 0
        if kind.upsert and valid.num_rows:
            valid, dups = _keep_last(valid, kind.id_field)
        return ValidationResult(valid, rejections, bad.num_rows, dups)


def _keep_last(table: pa.Table, id_field: str) -> tuple[pa.Table, int]:
    """For profile kinds, a later row with the same id in one batch wins over an earlier one."""
    ids = table.column(id_field)
    if pc.count_distinct(ids).as_py() == table.num_rows:
        return table, 0
    idx = pa.array(range(table.num_rows), pa.int64())
    last = (
        pa.table({"id": ids, "i": idx})
        .group_by("id", use_threads=False)
        .aggregate([("i", "max")])
        .column("i_max")
    )
    kept = table.take(last.take(pc.sort_indices(last)))
    return kept, table.num_rows - kept.num_rows
