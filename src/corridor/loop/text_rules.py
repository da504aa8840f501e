"""Text rules (a complaint, a theme in the text) on feedback whose text analysis was stored
after its batch committed: a server's background worker analyses texts off the request path
(:mod:`corridor.text.jobs`) and fires these rules in the transaction that stores the analysis.
The other record rules fired in the batch's own transaction
(:func:`corridor.loop.record_rules.evaluate_batch`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from corridor.analytics.feedback import rollup_rows
from corridor.loop import alerts, batch_rows
from corridor.loop.alerts import Hit
from corridor.loop.record_rules import RuleContext, find_hits, record_rules_and_promises
from corridor.loop.rules import Rule
from corridor.store.base import Tx


def evaluate_texts(
    tx: Tx,
    feedback_ids: Sequence[str],
    now: datetime,
    *,
    analysis: pa.Table | None = None,
    known: pa.Table | None = None,
) -> int:
    """Fire the text rules on feedback whose text analysis was just stored (in that
    transaction). ``analysis``: the rows of ``text_analysis`` just stored for them (columns
    ``feedback_id``, ``intent``, ``theme_id``), when the caller has them: only the feedback
    whose intent or theme some text rule names is read then (:func:`read_rows`), and none at
    all when there is none (a text rule fires on nothing else). ``known`` (with ``analysis``):
    rows of those records that their batches handed over (:func:`evaluate_batch`'s
    ``for_texts``); the records among them are not read again."""
    if not feedback_ids:
        return 0
    rules = [r for r in record_rules_and_promises(tx)[0] if r.kind == "text"]
    if not rules:
        return 0
    ctx = RuleContext(tx, rules)
    ids = list(feedback_ids) if analysis is None else _text_candidates(rules, analysis, ctx)
    hits: list[Hit] = []
    if known is not None and analysis is not None and ids:
        rows, ids = batch_rows.analysed_rows(known, analysis, ids)
        hits = find_hits(tx, rules, "feedback", rows, now=now, ctx=ctx) if rows.num_rows else []
    if not ids:
        return len(alerts.fire(tx, hits, now)) if hits else 0
    hits += find_hits(tx, rules, "feedback", read_rows(tx, ids, analysis), now=now, ctx=ctx)
    return len(alerts.fire(tx, hits, now)) if hits else 0


def read_rows(tx: Tx, ids: Sequence[str], analysis: pa.Table | None = None) -> pa.Table:
    """The rows :data:`~corridor.loop.record_rules.FEEDBACK_SQL` gives for the feedback ``ids``,
    built in Arrow (:mod:`corridor.loop.batch_rows`) from the records, their interactions and
    their persons read by key (:func:`rows_of`), and their text ``analysis`` (columns
    ``feedback_id``, ``intent``, ``theme_id``; None: read by key too). The query's joins read
    every interaction and person on DuckDB: 5 ms for 100 records against 100,000 interactions,
    and in proportion at 10 M."""
    wanted = [str(i) for i in ids]
    rows = rows_of(tx, wanted)
    if analysis is None:
        analysis = rollup_rows.by_keys(
            tx, "text_analysis", ("feedback_id", "intent", "theme_id"), wanted
        )
    return batch_rows.analysed_rows(rows, analysis, wanted)[0]


def rows_of(tx: Tx, ids: Sequence[str]) -> pa.Table:
    """The rules' rows of the feedback ``ids`` as a batch hands them over
    (:func:`corridor.loop.batch_rows.feedback_rows`, without their text analysis): the
    records, their interactions and their persons read by key
    (:func:`corridor.analytics.feedback.rollup_rows.by_keys`: from the primary keys' indexes,
    or one pass over a small table)."""
    records = rollup_rows.feedback_of(tx, [str(i) for i in ids])
    read = {
        "interactions": rollup_rows.interactions_of(tx, records),
        "people": rollup_rows.people_of(tx, records),
    }
    return batch_rows.feedback_rows(records, read, batch_rows.departments(tx), None)


def rows_to_read(tx: Tx, analysis: pa.Table, known: pa.Table | None) -> pa.Table | None:
    """The rows (:func:`rows_of`) of the records of a text ``analysis`` about to be stored
    that a text rule can fire on (its intent or theme) and that ``known`` (rows handed over by
    their batches) lacks; None when there are none, or no text rule. For reading before the
    transaction that stores the analysis (beside the store's writer: see
    :func:`corridor.text.jobs.analyze_handed`), not inside it."""
    rules = [r for r in record_rules_and_promises(tx)[0] if r.kind == "text"]
    if not rules:
        return None
    ids = _text_candidates(rules, analysis, RuleContext(tx, rules))
    have = set(known.column("record_id").to_pylist()) if known is not None else set()
    missing = [i for i in ids if i not in have]
    return rows_of(tx, missing) if missing else None


def _text_candidates(rules: Sequence[Rule], analysis: pa.Table, ctx: RuleContext) -> list[str]:
    """The feedback ids of ``analysis`` whose intent or theme one of the text ``rules`` names
    (what :func:`_feedback_hits` tests first): the only ones any of them can fire on."""
    intents = sorted({str(i) for r in rules for i in r.get("intents") or ()})
    themes = sorted({t for r in rules if r.get("themes") for t in ctx.theme_ids(r.get("themes"))})
    mask = pc.is_in(
        pc.cast(analysis["intent"], pa.string()), value_set=pa.array(intents, pa.string())
    )
    if themes:
        in_theme = pc.is_in(
            pc.cast(analysis["theme_id"], pa.string()), value_set=pa.array(themes, pa.string())
        )
        mask = pc.or_kleene(mask, in_theme)
    picked = analysis.filter(pc.fill_null(mask, False))["feedback_id"]
    return [str(i) for i in picked.to_pylist()]


__all__ = ["evaluate_texts", "read_rows", "rows_of", "rows_to_read"]
