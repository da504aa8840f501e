"""Record rules, evaluated on every committed batch (and over past data for a dry run).

The ingest path (:class:`~corridor.ingest.pipeline.Ingestor`, the one write path of the HTTP
API and of file imports alike) calls :func:`evaluate_batch` inside the batch's transaction, once
its records are written: the alerts it raises, their cases and their notifications commit with
the batch or not at all. Feedback texts analysed later (the background worker, ``corridor text
analyze``) are checked by :func:`evaluate_texts` in the transaction that stores their analysis.

Each rule reads the batch's records with what routing and scope need: the touch point (the
record's own, else its interaction's), its department, the partner (the record's own, else its
interaction's), the person's segment and region, and for feedback the text analysis. Records
older than the rule's ``max_age`` when they arrive (an import of history) do not fire; a dry
run (:func:`dry_run`) ignores that and shows what the rule would have fired on past data.
"""

from __future__ import annotations

import json
import operator
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from corridor.loop import alerts, batch_rows
from corridor.loop.alerts import Hit
from corridor.loop.rules import RULE_COLUMNS, Rule, active_rules
from corridor.store.base import Tx

Row = Mapping[str, Any]

#: the rule kinds that watch each record kind
WATCHES: dict[str, tuple[str, ...]] = {
    "feedback": ("detractor", "score_below", "broken_promise", "text"),
    "interactions": ("broken_promise",),
}
_FEEDBACK = """SELECT b.feedback_id AS record_id, b.person_id, b.occurred_at,
    COALESCE(b.touchpoint, i.touchpoint) AS touchpoint,
    COALESCE(b.partner_id, i.partner_id) AS partner_id, t.department, p.segment, p.region,
    b.expectation, b.experience, b.nps, b.csat, b.ces, b.emotion, {text}
FROM {{src}} b
LEFT JOIN interactions i ON i.interaction_id = b.interaction_id
LEFT JOIN touchpoints t ON t.key = COALESCE(b.touchpoint, i.touchpoint)
LEFT JOIN people p ON p.person_id = b.person_id{text_join}"""
FEEDBACK_SQL = _FEEDBACK.format(
    text="ta.intent, ta.theme_id",
    text_join="\nLEFT JOIN text_analysis ta ON ta.feedback_id = b.feedback_id",
)
#: :data:`FEEDBACK_SQL` for a batch whose texts are not analysed yet (no text rule can fire on
#: it): the same columns, without reading the text analysis
FEEDBACK_SQL_UNANALYSED = _FEEDBACK.format(
    text="CAST(NULL AS VARCHAR) AS intent, CAST(NULL AS VARCHAR) AS theme_id", text_join=""
)
INTERACTIONS_SQL = """SELECT b.interaction_id AS record_id, b.person_id, b.occurred_at,
    b.touchpoint, b.partner_id, t.department, p.segment, p.region, b.duration_minutes, b.value,
    CAST(b.attributes AS VARCHAR) AS attributes
FROM {src} b
LEFT JOIN touchpoints t ON t.key = b.touchpoint
LEFT JOIN people p ON p.person_id = b.person_id"""
#: the joins of the queries above as PostgreSQL runs them best for a batch of a few hundred
#: records: one index look-up per record (``OFFSET 0`` keeps each subquery from being flattened
#: into a hash join, which reads the whole interactions and people tables on every batch)
_PG_JOINS = {
    "LEFT JOIN interactions i ON i.interaction_id = b.interaction_id": (
        "LEFT JOIN LATERAL (SELECT i.touchpoint, i.partner_id FROM interactions i\n"
        "    WHERE i.interaction_id = b.interaction_id OFFSET 0) i ON TRUE"
    ),
    "LEFT JOIN people p ON p.person_id = b.person_id": (
        "LEFT JOIN LATERAL (SELECT p.segment, p.region FROM people p\n"
        "    WHERE p.person_id = b.person_id OFFSET 0) p ON TRUE"
    ),
    "LEFT JOIN text_analysis ta ON ta.feedback_id = b.feedback_id": (
        "LEFT JOIN LATERAL (SELECT ta.intent, ta.theme_id FROM text_analysis ta\n"
        "    WHERE ta.feedback_id = b.feedback_id OFFSET 0) ta ON TRUE"
    ),
}


def batch_sql(sql: str, dialect: str, tables: Mapping[str, str] | None = None) -> str:
    """One of the queries above (its ``{src}`` filled) as ``dialect`` runs it best over a batch
    of records: on PostgreSQL, each record's interaction, person and text analysis looked up by
    their keys (see :data:`_PG_JOINS`); elsewhere with the joins as they are, over ``tables``
    (``interactions``, ``people`` → a staged relation holding at least the rows the batch
    refers to: what its transaction read already) instead of the whole tables."""
    if dialect == "postgres":
        for join, lateral in _PG_JOINS.items():
            sql = sql.replace(join, lateral)
        return sql
    for table, staged in (tables or {}).items():
        if table in ("interactions", "people"):
            sql = sql.replace(f"LEFT JOIN {table} ", f"LEFT JOIN {staged} ")
    return sql


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}
_FEEDBACK_FIELDS = ("expectation", "experience", "nps", "csat", "ces", "emotion")


#: the columns each query above reads, in order
COLUMNS: dict[str, tuple[str, ...]] = {
    "feedback": ("record_id", "person_id", "occurred_at", "touchpoint", "partner_id",
                 "department", "segment", "region", "expectation", "experience", "nps", "csat",
                 "ces", "emotion", "intent", "theme_id"),
    "interactions": ("record_id", "person_id", "occurred_at", "touchpoint", "partner_id",
                     "department", "segment", "region", "duration_minutes", "value",
                     "attributes"),
}  # fmt: skip


def read_rows(
    tx: Tx, record_kind: str, sql: str, params: Sequence[Any] = ()
) -> list[dict[str, Any]]:
    """The rows of one of the queries above (``sql``: it, with a WHERE clause) as dicts."""
    names = COLUMNS[record_kind]
    return [dict(zip(names, r, strict=True)) for r in tx.fetchall(sql, params)]


def _value(row: Row, name: str) -> float | None:
    if name == "gap":
        e, x = row.get("experience"), row.get("expectation")
        return None if e is None or x is None else float(e) - float(x)
    v = row.get(name)
    return None if v is None else float(v)


def _scope_test(rule: Rule) -> Callable[[Row], bool]:
    """Whether a row is in the rule's scope (every scope key's column holds an allowed value),
    with the allowed values as sets, made once per rule."""
    wanted = [
        ("partner_id" if key == "partner" else key, frozenset(allowed))
        for key, allowed in rule.scope.items()
    ]
    return lambda row: all(row.get(column) in allowed for column, allowed in wanted)


def _candidate(rule: Rule) -> Callable[[Row], bool]:
    """A quick test a row must pass before the rule's full check (most rows fail it): a
    detractor's NPS, a score under its threshold; every row for the other kinds."""
    if rule.kind == "detractor":
        most = float(rule.get("max_nps"))
        return lambda row: row.get("nps") is not None and row["nps"] <= most
    if rule.kind == "score_below":
        name, below = rule.get("field"), float(rule.get("below"))
        return lambda row: (v := _value(row, name)) is not None and v < below
    return lambda row: True


def _subject(rule: Rule, row: Row, kind: str, extra: str = "") -> str:
    per = rule.get("per")
    tp = row.get("touchpoint")
    if per == "touchpoint" and tp is not None:
        base = f"touchpoint={tp}"
    elif per == "customer" and row.get("person_id") is not None:
        base = f"person={row['person_id']}|touchpoint={tp}"
    else:
        base = f"{kind}={row['record_id']}"
    return base + extra


def _hit(
    rule: Rule, row: Row, kind: str, summary: str, evidence: dict[str, Any], extra: str = ""
) -> Hit:
    return Hit(
        rule=rule,
        subject=_subject(rule, row, kind, extra),
        occurred_at=row["occurred_at"],
        summary=summary,
        record_kind=kind,
        record_id=row["record_id"],
        person_id=row.get("person_id"),
        touchpoint=row.get("touchpoint"),
        department=row.get("department"),
        partner_id=row.get("partner_id"),
        region=row.get("region"),
        segment=row.get("segment"),
        evidence={"record": {k: v for k, v in row.items() if v is not None}, **evidence},
        # (a record without a touch point stands for itself, as its subject says)
        about_person=not (rule.get("per") == "touchpoint" and row.get("touchpoint") is not None),
    )


def _at(row: Row) -> str:
    tp = row.get("touchpoint") or "no touch point"
    who = f" (customer {row['person_id']})" if row.get("person_id") else ""
    return f"at {tp}{who}"


#: a touch point's promises: (key, metric, operator, threshold, target)
Promises = dict[str, list[tuple[str, str, str, float, str]]]
_PROMISE_COLUMNS = ("key", "touchpoint", "metric", "operator", "threshold", "target")


def _read_promises(tx: Tx) -> Promises:
    promises: Promises = {}
    for key, tp, metric, op, threshold, target in tx.fetchall(
        f"SELECT {', '.join(_PROMISE_COLUMNS)} FROM promises ORDER BY key"
    ):
        promises.setdefault(tp, []).append((key, metric, op, float(threshold), target))
    return promises


def _rows_text(columns: Sequence[str]) -> str:
    """SQL for one row's columns as text that tells every value apart (NULL, and where each
    value ends), on both engines."""
    return " || ".join(
        f"CASE WHEN {c} IS NULL THEN '~' ELSE "
        f"CAST(length(CAST({c} AS VARCHAR)) AS VARCHAR) || ':' || CAST({c} AS VARCHAR) END"
        for c in columns
    )


#: a digest of the enabled record rules' rows and of the promises' rows, made by the store: the
#: same digests mean the same rows, whichever process or connection wrote them
_SIGNATURE_SQL = (
    f"SELECT (SELECT md5(string_agg({_rows_text(RULE_COLUMNS)}, ',' ORDER BY rule_id)) "
    "FROM alert_rules WHERE enabled AND family = 'record'), "
    f"(SELECT md5(string_agg({_rows_text(_PROMISE_COLUMNS)}, ',' ORDER BY key)) FROM promises)"
)
#: the enabled record rules and the promises last read, by their digests (a few: several stores
#: in one process)
_KEPT: OrderedDict[tuple[Any, Any], tuple[list[Rule], Promises]] = OrderedDict()
_KEPT_MAX = 8
_KEPT_LOCK = threading.Lock()


def record_rules_and_promises(tx: Tx) -> tuple[list[Rule], Promises]:
    """The enabled record rules and the corridor map's promises, as ``tx`` sees them: read on
    every batch, changed seldom, so kept between batches. Where the store counts the writes to
    them itself (:meth:`~corridor.store.base.Store.rules_version`: a DuckDB file, which one
    process holds) the count is the key, and nothing is read while it stays; elsewhere one
    query asks the store for a digest of their rows, and rows already read under the same
    digests (by any store object of this process, on this store or another holding the same
    rows) are not read and parsed again. A rule added, disabled or changed, or a map loaded,
    by any process, changes a digest, so the next batch reads them."""
    version = getattr(tx, "rules_version", None)
    mine = getattr(tx, "touched", {"*"})
    if version is not None and "*" not in mine and not mine & {"alert_rules", "promises"}:
        signature: tuple[Any, ...] = ("version", version)
        kept = _kept(signature)
        if kept is not None:
            return kept
        read = (active_rules(tx, "record"), _read_promises(tx))
        _keep(signature, read)
        return read
    signature = tuple(tx.fetchall(_SIGNATURE_SQL)[0])
    kept = _kept(signature)
    if kept is not None:
        return kept
    read = (active_rules(tx, "record"), _read_promises(tx))
    # on PostgreSQL each statement sees the latest commit: keep the rows only if nothing
    # changed them between the digest and the reads
    if tuple(tx.fetchall(_SIGNATURE_SQL)[0]) == signature:
        _keep(signature, read)
    return read


def _kept(signature: tuple[Any, ...]) -> tuple[list[Rule], Promises] | None:
    """The rules and promises kept under ``signature`` (the most recently used now), if any."""
    with _KEPT_LOCK:
        kept = _KEPT.get(signature)
        if kept is not None:
            _KEPT.move_to_end(signature)
        return kept


def _keep(signature: tuple[Any, ...], read: tuple[list[Rule], Promises]) -> None:
    """Keep ``read`` under ``signature``, dropping the least recently used past the bound."""
    with _KEPT_LOCK:
        _KEPT[signature] = read
        while len(_KEPT) > _KEPT_MAX:
            _KEPT.popitem(last=False)


class RuleContext:
    """What rules need beyond the rows, read once per evaluation: promises and themes."""

    def __init__(self, tx: Tx, rules: Sequence[Rule], promises: Promises | None = None) -> None:
        self.promises: Promises = {}
        if any(r.kind == "broken_promise" for r in rules):
            self.promises = promises if promises is not None else _read_promises(tx)
        self.themes: dict[str, set[str]] = {}
        self.theme_labels: dict[str, str] = {}
        wanted = {t for r in rules if r.kind == "text" for t in r.get("themes") or ()}
        if wanted:
            for theme_id, label, merged in tx.fetchall(
                "SELECT theme_id, label, merged_into FROM text_themes"
            ):
                self.theme_labels[theme_id] = label
                for name in (theme_id, label, merged):
                    if name in wanted:
                        self.themes.setdefault(name, set()).add(theme_id)

    def theme_ids(self, names: Sequence[str]) -> set[str]:
        return {t for n in names for t in self.themes.get(n, {n})}


def _feedback_hits(rule: Rule, row: Row, ctx: RuleContext) -> Iterator[Hit]:
    kind = rule.kind
    if kind == "detractor":
        nps = row.get("nps")
        if nps is not None and nps <= float(rule.get("max_nps")):
            yield _hit(rule, row, "feedback", f"Detractor: NPS {nps} {_at(row)}", {})
    elif kind == "score_below":
        name, below = rule.get("field"), float(rule.get("below"))
        v = _value(row, name)
        if v is not None and v < below:
            what = f"{name} {v:g} below {below:g} {_at(row)}"
            yield _hit(rule, row, "feedback", what, {"field": name, "value": v, "below": below})
    elif kind == "text":
        intents, themes = rule.get("intents") or (), rule.get("themes") or ()
        intent, theme = row.get("intent"), row.get("theme_id")
        if (intent is not None and intent in intents) or (
            theme is not None and themes and theme in ctx.theme_ids(themes)
        ):
            label = ctx.theme_labels.get(theme or "", theme)
            what = " and ".join(
                x
                for x in (
                    intent if intent in intents else None,
                    f"theme {label}" if theme and themes else None,
                )
                if x
            )
            evidence = {"intent": intent, "theme_id": theme, "theme": label}
            yield _hit(rule, row, "feedback", f"Feedback text: {what} {_at(row)}", evidence)
    elif kind == "broken_promise":
        for key, metric, op, threshold, target in ctx.promises.get(str(row.get("touchpoint")), ()):
            if metric in _FEEDBACK_FIELDS:
                yield from _broken(
                    rule, row, "feedback", key, metric, op, threshold, target, _value(row, metric)
                )


def _interaction_hits(rule: Rule, row: Row, ctx: RuleContext) -> Iterator[Hit]:
    if rule.kind != "broken_promise":
        return
    attrs: dict[str, Any] | None = None
    for key, metric, op, threshold, target in ctx.promises.get(str(row.get("touchpoint")), ()):
        if metric in _FEEDBACK_FIELDS:
            continue
        if metric in ("duration_minutes", "value"):
            v = _value(row, metric)
        else:
            if attrs is None:
                raw = row.get("attributes")
                try:
                    attrs = json.loads(raw) if raw else {}
                except ValueError:
                    attrs = {}
            v = _number(attrs.get(metric) if isinstance(attrs, dict) else None)
        yield from _broken(rule, row, "interactions", key, metric, op, threshold, target, v)


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def _broken(
    rule: Rule,
    row: Row,
    kind: str,
    key: str,
    metric: str,
    op: str,
    threshold: float,
    target: str,
    v: float | None,
) -> Iterator[Hit]:
    wanted = rule.get("promises")
    if v is None or (wanted and key not in wanted) or _OPS[op](v, threshold):
        return
    yield _hit(
        rule,
        row,
        kind,
        f"Promise {key} broken {_at(row)}: {metric} {v:g}, promised {target}",
        {"promise": key, "metric": metric, "value": v, "target": target},
        extra=f"|promise={key}",
    )


def _python_pick(rule: Rule, rows: Sequence[Row], cutoff: datetime | None) -> list[int]:
    """The rows that pass ``rule``'s scope, its quick candidate test and the age cutoff, row by
    row (rows given as dicts: a verification's one record)."""
    in_scope, candidate = _scope_test(rule), _candidate(rule)
    return [
        i
        for i, row in enumerate(rows)
        if (cutoff is None or row["occurred_at"] >= cutoff) and candidate(row) and in_scope(row)
    ]


def _number_column(table: pa.Table, name: str) -> Any:
    if name == "gap":
        return pc.subtract(
            _number_column(table, "experience"), _number_column(table, "expectation")
        )
    return pc.cast(table[name], pa.float64())


def _column_pick(rule: Rule, table: pa.Table, cutoff: datetime | None) -> list[int]:
    """:func:`_python_pick` column-wise over the batch read as Arrow (most rows fail a rule's
    scope or threshold: only the few that pass become Python objects)."""
    conds = []
    for key, allowed in rule.scope.items():
        column = pc.cast(table["partner_id" if key == "partner" else key], pa.string())
        conds.append(pc.is_in(column, value_set=pa.array(sorted(allowed), pa.string())))
    if rule.kind == "detractor":
        conds.append(pc.less_equal(_number_column(table, "nps"), float(rule.get("max_nps"))))
    elif rule.kind == "score_below":
        value = _number_column(table, rule.get("field"))
        conds.append(pc.less(value, float(rule.get("below"))))
    if cutoff is not None:
        at = table["occurred_at"]
        conds.append(pc.greater_equal(at, pa.scalar(cutoff).cast(at.type)))
    if not conds:
        return list(range(table.num_rows))
    mask = conds[0]
    for cond in conds[1:]:
        mask = pc.and_kleene(mask, cond)
    return [int(i) for i in pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()]


def find_hits(
    tx: Tx,
    rules: Sequence[Rule],
    record_kind: str,
    rows: pa.Table | Sequence[Row],
    *,
    now: datetime | None,
    ctx: RuleContext | None = None,
) -> list[Hit]:
    """What ``rules`` fire on ``rows`` of ``record_kind`` (an Arrow table of the queries above,
    or their rows as dicts); with ``now``, records older than a rule's ``max_age`` are skipped
    (live evaluation). ``ctx``: the rules' :class:`RuleContext`, when the caller read it already."""
    ctx = ctx if ctx is not None else RuleContext(tx, rules)
    check = _feedback_hits if record_kind == "feedback" else _interaction_hits
    cutoffs = [
        now - timedelta(seconds=int(rule.get("max_age"))) if now is not None else None
        for rule in rules
    ]
    if isinstance(rows, pa.Table):
        try:
            picks = [_column_pick(r, rows, c) for r, c in zip(rules, cutoffs, strict=True)]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return find_hits(tx, rules, record_kind, rows.to_pylist(), now=now, ctx=ctx)
        wanted = sorted({i for pick in picks for i in pick})
        by_index: Mapping[int, Row] = dict(
            zip(wanted, rows.take(pa.array(wanted, pa.int64())).to_pylist(), strict=True)
        )
    else:
        picks = [_python_pick(r, rows, c) for r, c in zip(rules, cutoffs, strict=True)]
        by_index = dict(enumerate(rows))
    hits: list[Hit] = []
    for rule, pick in zip(rules, picks, strict=True):
        for i in pick:
            hits.extend(check(rule, by_index[i], ctx))
    return hits


def evaluate_batch(
    tx: Tx,
    record_kind: str,
    now: datetime,
    *,
    staged: Callable[[], str] | None = None,
    texts_analysed: bool = True,
    tables: Callable[[], Mapping[str, str]] | None = None,
    batch: pa.Table | None = None,
    read: Mapping[str, pa.Table] | None = None,
    for_texts: list[pa.Table] | None = None,
) -> int:
    """Fire the record rules on the batch staged as ``_batch`` (its records written already),
    inside the batch's transaction; returns the number of alerts raised. ``staged``, when given,
    stages the batch if it is not yet and returns its name: called only when a rule watches.
    ``texts_analysed=False``: the batch's feedback texts are analysed later (a server's
    background worker), so the text rules are left to :func:`evaluate_texts`, which runs when
    the analysis is stored, and the text analysis is not read here. ``tables``: the batch's
    interactions and persons read in its transaction already, staged when called (table →
    staged name; see :func:`batch_sql`), read instead of the whole tables. ``batch`` and
    ``read``: the batch's records and those look-ups as Arrow (``interactions``, ``people``):
    a feedback batch whose texts are analysed later is then read with no query at all
    (:func:`corridor.loop.batch_rows.feedback_rows`, the same rows), and, when a text rule is
    active, those rows of every record of the batch are appended to ``for_texts`` (for
    :func:`corridor.loop.text_rules.evaluate_texts` after the analysis: see its ``known``)."""
    kinds = WATCHES.get(record_kind, ())
    if not kinds:
        return 0
    active, promises = record_rules_and_promises(tx)
    rules = [r for r in active if r.kind in kinds and (texts_analysed or r.kind != "text")]
    arrow = (
        record_kind == "feedback"
        and not texts_analysed
        and batch is not None
        and read is not None
        and {"interactions", "people"} <= set(read)
    )
    later = arrow and for_texts is not None and any(r.kind == "text" for r in active)
    if not rules and not later:
        return 0
    oldest = now - timedelta(seconds=max((int(r.get("max_age")) for r in rules), default=0))
    if arrow:
        assert batch is not None and read is not None
        rows = batch_rows.feedback_rows(
            batch, read, batch_rows.departments(tx), None if later else oldest
        )
        if later and for_texts is not None:
            for_texts.append(rows)
            rows = batch_rows.since(rows, oldest)
        if not rows.num_rows or not rules:
            return 0
        ctx = RuleContext(tx, rules, promises)
        hits = find_hits(tx, rules, record_kind, rows, now=now, ctx=ctx)
        return len(alerts.fire(tx, hits, now)) if hits else 0
    src = staged() if staged is not None else "_batch"
    if record_kind != "feedback":
        sql = INTERACTIONS_SQL.format(src=src)
    elif texts_analysed:
        sql = FEEDBACK_SQL.format(src=src)
    else:
        sql = FEEDBACK_SQL_UNANALYSED.format(src=src)
    sql = batch_sql(sql, tx.dialect, tables() if tables is not None else None)
    rows = tx.fetch_arrow(f"{sql} WHERE b.occurred_at >= ?", (oldest,))
    if not rows.num_rows:
        return 0
    hits = find_hits(tx, rules, record_kind, rows, now=now, ctx=RuleContext(tx, rules, promises))
    return len(alerts.fire(tx, hits, now)) if hits else 0


__all__ = [
    "COLUMNS",
    "FEEDBACK_SQL",
    "FEEDBACK_SQL_UNANALYSED",
    "INTERACTIONS_SQL",
    "WATCHES",
    "RuleContext",
    "batch_sql",
    "evaluate_batch",
    "find_hits",
    "read_rows",
    "record_rules_and_promises",
]
