"""Promises: how often each promise in the corridor map is kept, and what breaking it costs.

A promise (``promises`` table, from the corridor map) names a touch point, a ``metric``, an
``operator`` (``<=``, ``>=``, ``<``, ``>``, ``==``) and a ``threshold``, e.g. *checkout within 5
minutes* is ``duration_minutes <= 5`` at ``checkout``. The metric is read from

============================ =================================================================
metric                       measured on
============================ =================================================================
``duration_minutes``,        each interaction at the touch point (the column)
``value``
a feedback field:            each feedback record about the touch point (its own, else its
``expectation``,             interaction's touch point, as in
``experience``, ``nps``,     :mod:`~corridor.analytics.core.dimensions`)
``csat``, ``ces``,
``emotion``
anything else                each interaction at the touch point, from the key of that name
                             in its JSON ``attributes`` (a JSON number, a numeric string such as
                             ``"4.5"``, or ``true``/``false`` as 1/0)
============================ =================================================================

A unit (interaction or feedback record) counts when it has the metric; it *kept* the promise
when ``metric <operator> threshold`` holds. Per promise (and group, and period):

* the **kept rate** ``n_kept / n`` with its Wilson (1927) score interval;
* the mean metric with a Student-t interval;
* the **mean gap** (experience − expectation) when kept and when broken, each with a t
  interval, and their difference *kept − broken* with Welch's (1947) interval and t-test. For
  interaction metrics the gap is that of the feedback records about the interaction (joined on
  ``feedback.interaction_id``; an interaction with two rated records counts twice); for
  feedback metrics it is the record's own gap. Records need both ratings to have a gap.

Groupings, filters and periods are those of :func:`corridor.analytics.feedback.gaps.gap_table`, read
from the unit: for interactions ``touchpoint``, ``stage``, ``department``, ``channel``,
``partner`` (``partner_id``), ``agent`` and the person's ``segment``/``region``, periods of
``interactions.occurred_at``; for feedback records as in
:mod:`~corridor.analytics.core.dimensions`. ``source`` (a feedback property) cannot group or filter
promises, since most promises are measured on interactions.

As elsewhere, the engine computes only additive sufficient statistics (:func:`promise_stats`:
one ``GROUP BY`` over the union of every promise's units, one over their gaps) and
:func:`summarise_promises` turns them into estimates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Unpack

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from corridor.analytics.core import dimensions as dims
from corridor.analytics.core.counting import count_where
from corridor.analytics.core.dimensions import (
    DIMENSIONS,
    Query,
    QueryArgs,
    Source,
)
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.periods import key_frame
from corridor.analytics.core.registry import PERIOD, Analysis, by_param, register
from corridor.analytics.core.result import AnalyticsResult, put_interval
from corridor.analytics.core.result_columns import columns
from corridor.analytics.estimators import stats
from corridor.analytics.feedback.facets import feedback_rows

#: interaction columns a promise can measure
INTERACTION_COLUMNS: tuple[str, ...] = ("duration_minutes", "value")
#: feedback fields a promise can measure
FEEDBACK_FIELDS: tuple[str, ...] = ("expectation", "experience", "nps", "csat", "ces", "emotion")
OPERATORS: tuple[str, ...] = ("<=", ">=", "<", ">", "==")
#: the dimensions promises can be grouped and filtered by
PROMISE_DIMENSIONS: tuple[str, ...] = tuple(d for d in DIMENSIONS if d != "source")

#: a plain decimal number (optionally signed, with exponent) between blanks; the blanks are
#: spelled out because ``\s`` means more on PostgreSQL and Spark (vertical tab) than on DuckDB
_NUMBER = r"^[ \t\n\r\f]*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?[ \t\n\r\f]*$"

#: sufficient statistics per promise and group (additive)
PROMISE_SUMS: tuple[str, ...] = ("n", "n_kept", "sum_value", "sumsq_value")
#: sufficient statistics of the gap per promise, group and kept (1) / broken (0)
PROMISE_GAP_SUMS: tuple[str, ...] = ("n", "sum_gap", "sumsq_gap")

METHOD = (
    "a unit (interaction, or feedback record for feedback metrics) keeps the promise when "
    "metric <operator> threshold; kept rate with Wilson score intervals; mean metric with a "
    "Student-t interval; mean gap (experience − expectation of the feedback about the unit) "
    "when kept and when broken with t intervals, difference kept − broken by Welch's t-test "
    "and interval"
)


@dataclass(frozen=True)
class Promise:
    """One row of the ``promises`` table."""

    key: str
    touchpoint: str
    metric: str
    operator: str
    threshold: float
    target: str
    source: str

    @property
    def measured_on(self) -> str:
        """``interaction``, ``interaction attribute`` or ``feedback``."""
        if self.metric in INTERACTION_COLUMNS:
            return "interaction"
        if self.metric in FEEDBACK_FIELDS:
            return "feedback"
        return "interaction attribute"


def load_promises(source: Source, keys: Sequence[str] | None = None) -> list[Promise]:
    """The promises of the corridor map, in the map's touch point order (then by key); only
    ``keys`` when given (an unknown key raises, naming the known ones)."""
    p = dims.get_table(source, "promises")
    rows = p.select("key", "touchpoint", "metric", "operator", "threshold", "target", "source")
    df = rows.to_pyarrow().to_pandas()
    tp = dims.get_table(source, "touchpoints").select("key", "position").to_pyarrow().to_pandas()
    order = dict(zip(tp["key"], tp["position"], strict=True))
    found = [
        Promise(
            str(r.key),
            str(r.touchpoint),
            str(r.metric),
            str(r.operator),
            float(r.threshold),
            str(r.target),
            str(r.source),
        )
        for r in df.itertuples(index=False)
    ]
    found.sort(key=lambda x: (order.get(x.touchpoint, len(order)), x.touchpoint, x.key))
    bad = [x for x in found if x.operator not in OPERATORS]
    if bad:
        raise AnalyticsQueryError(
            f"promise {bad[0].key!r} has operator {bad[0].operator!r}; allowed: "
            f"{', '.join(OPERATORS)}"
        )
    if keys is None:
        return found
    wanted = [keys] if isinstance(keys, str) else list(keys)
    known = {x.key for x in found}
    unknown = [k for k in wanted if k not in known]
    if unknown:
        raise AnalyticsQueryError(
            f"unknown promise {unknown[0]!r}; the corridor map has: "
            f"{', '.join(sorted(known)) or '(no promises)'}"
        )
    return [x for x in found if x.key in set(wanted)]


def _check_query(query: Query) -> None:
    if "source" in query.dimensions:
        raise AnalyticsQueryError(
            "promises cannot be grouped or filtered by 'source': most are measured on "
            f"interactions, which have none; allowed: {', '.join(PROMISE_DIMENSIONS)}"
        )


def _kept(value: ir.NumericValue, operator: str, threshold: float) -> ir.BooleanValue:
    thr = ibis.literal(float(threshold), type="float64")
    ops = {
        "<=": value <= thr,
        ">=": value >= thr,
        "<": value < thr,
        ">": value > thr,
        "==": value == thr,
    }
    return ops[operator]


def attribute_value(attributes: Any, key: str) -> ir.FloatingValue:
    """The number under ``key`` of a JSON ``attributes`` column as float64: a JSON number, a
    numeric string (CSV imports keep extra columns as strings) or a boolean (1/0); null for
    anything else or when the key is absent.

    Read from the value's JSON text (a cast to string), never through Ibis's typed unwrapping
    (``.str``, ``.float``, ``.bool``): PySpark runs those as Python UDFs, while casts, regular
    expressions and comparisons compile to native SQL on DuckDB, PostgreSQL and Spark alike. The
    text of a JSON number is the number; that of a string is quoted, with escapes (DuckDB,
    PostgreSQL; Spark's ``get_json_object`` gives the bare string), so the quotes are dropped
    and an escaped blank (``\\t``, ``\\n``, ``\\r``, ``\\f``) becomes a space before the number
    is matched; any other escape leaves a backslash, which no number has. A boolean's text is
    ``true`` or ``false`` (a *string* "true" keeps its quotes, so stays null — except on Spark,
    whose bare strings cannot tell the two apart).
    """
    raw = attributes[key].cast("string")
    text = raw.re_replace('"', "").re_replace(r"\\[tnrf]", " ")
    number = ibis.ifelse(text.re_search(_NUMBER), text.cast("float64"), ibis.null("float64"))
    flag = ibis.cases((raw == "true", 1.0), (raw == "false", 0.0), else_=ibis.null("float64"))
    return ibis.coalesce(number, flag)


def interaction_rows(source: Source, dimensions: Sequence[str], metric: str) -> ir.Table:
    """One row per interaction: ``interaction_id``, ``occurred_at``, ``touchpoint``, ``value``
    (the metric as float64) and one column per requested dimension, joining the corridor map
    and people only when needed (LEFT JOINs on primary keys)."""
    t = interaction_values(source, dimensions, {"value": metric})
    return t.select("interaction_id", "occurred_at", "value", *t.columns[3:])


def interaction_values(
    source: Source, dimensions: Sequence[str], metrics: Mapping[str, str]
) -> ir.Table:
    """:func:`interaction_rows` with one float64 column per ``{name: metric}`` of ``metrics``
    (after ``interaction_id`` and ``occurred_at``, before ``touchpoint``)."""
    wanted = tuple(dict.fromkeys(dimensions))
    i = dims.get_table(source, "interactions")
    joined: Any = i
    cols: dict[str, Any] = {
        "touchpoint": i.touchpoint,
        "channel": i.channel,
        "partner": i.partner_id,
        "agent": i.agent_id,
    }
    if {"stage", "department"} & set(wanted):
        tp = dims.get_table(source, "touchpoints")
        tp = tp.select(_tp_key=tp.key, _tp_stage=tp.stage, _tp_department=tp.department)
        joined = joined.left_join(tp, i.touchpoint == tp._tp_key)
        cols.update(stage=tp._tp_stage, department=tp._tp_department)
    if {"segment", "region"} & set(wanted):
        pe = dims.get_table(source, "people")
        pe = pe.select(_pe_id=pe.person_id, _pe_segment=pe.segment, _pe_region=pe.region)
        joined = joined.left_join(pe, i.person_id == pe._pe_id)
        cols.update(segment=pe._pe_segment, region=pe._pe_region)
    values = {
        name: (
            i[metric].cast("float64")
            if metric in INTERACTION_COLUMNS
            else attribute_value(i.attributes, metric)
        )
        for name, metric in metrics.items()
    }
    return joined.select(
        interaction_id=i.interaction_id,
        occurred_at=i.occurred_at,
        **values,
        **{"touchpoint": i.touchpoint},
        **{d: cols[d] for d in wanted if d != "touchpoint"},
    )


def _group_keys(query: Query) -> list[str]:
    """Columns identifying a row within a promise: groupings other than the promise's own touch
    point, then ``period``."""
    return [*(d for d in query.by if d != "touchpoint"), *(["period"] if query.period else [])]


def promise_units(source: Source, promise: Promise, query: Query) -> tuple[ir.Table, ir.Table]:
    """For one promise, ``(units, gaps)``: every unit with its metric ``value`` and ``kept``
    (1/0), and every rated feedback record about a unit with its ``gap`` and the unit's
    ``kept``; both with ``promise`` and the query's group keys."""
    return _promises_units(source, [promise], query)[0]


def _promises_units(
    source: Source, promises: Sequence[Promise], query: Query
) -> list[tuple[ir.Table, ir.Table]]:
    """:func:`promise_units` of every promise, each side of the engine read once: the
    interactions (or feedback) at all the promises' touch points, with every metric the promises
    measure, are selected (and joined to the rated feedback) once, and each promise's rows are
    cut from them by its touch point. The same rows as one :func:`promise_units` per promise."""
    keys = _group_keys(query)
    out: dict[str, tuple[ir.Table, ir.Table]] = {}
    for measured_on in ("feedback", "interactions"):
        mine = [p for p in promises if (p.measured_on == "feedback") == (measured_on == "feedback")]
        if not mine:
            continue
        filters = dict(query.filters)
        filters["touchpoint"] = tuple(dict.fromkeys(p.touchpoint for p in mine))
        q = replace(query, filters=filters)
        metrics = tuple(dict.fromkeys(p.metric for p in mine))
        if measured_on == "feedback":
            base = feedback_rows(source, q, metrics)
            for p in mine:
                t = base.filter(base.touchpoint == p.touchpoint)
                t = t.mutate(value=t[p.metric], gap=t.experience - t.expectation)
                t = t.filter(t.value.notnull())
                t = t.mutate(kept=ibis.ifelse(_kept(t.value, p.operator, p.threshold), 1, 0))
                rated = t.filter(t.gap.notnull())
                label = ibis.literal(p.key, type="string")
                out[p.key] = (
                    _unit_columns(t, label, keys),
                    _gap_columns(rated, label, keys, rated.gap),
                )
            continue
        names = {m: f"_value_{k}" for k, m in enumerate(metrics)}
        base = dims.apply_query(
            interaction_values(source, q.dimensions, {v: m for m, v in names.items()}), q
        )
        f = dims.get_table(source, "feedback")
        f = f.filter(f.interaction_id.notnull(), f.expectation.notnull(), f.experience.notnull())
        f = f.select(
            _fb_interaction=f.interaction_id,
            _fb_gap=f.experience.cast("float64") - f.expectation.cast("float64"),
        )
        rated_base = base.join(f, base.interaction_id == f._fb_interaction)
        for p in mine:
            label = ibis.literal(p.key, type="string")
            sides = []
            for b in (base, rated_base):
                t = b.filter(b.touchpoint == p.touchpoint)
                t = t.mutate(value=t[names[p.metric]])
                t = t.filter(t.value.notnull())
                t = t.mutate(kept=ibis.ifelse(_kept(t.value, p.operator, p.threshold), 1, 0))
                sides.append(t)
            t, j = sides
            out[p.key] = (_unit_columns(t, label, keys), _gap_columns(j, label, keys, j._fb_gap))
    return [out[p.key] for p in promises]


def _nullable(value: Any) -> Any:
    """``value`` cast to the nullable version of its type, so that every promise's rows have
    one schema (a column NOT NULL in one table may be nullable in another) and can be unioned."""
    return value.cast(value.type().copy(nullable=True))


def _unit_columns(t: ir.Table, label: Any, keys: Sequence[str]) -> ir.Table:
    return t.select(
        promise=label,
        **{k: _nullable(t[k]) for k in keys},
        value=_nullable(t.value.cast("float64")),
        kept=_nullable(t.kept.cast("int64")),
    )


def _gap_columns(t: ir.Table, label: Any, keys: Sequence[str], gap: Any) -> ir.Table:
    return t.select(
        promise=label,
        **{k: _nullable(t[k]) for k in keys},
        kept=_nullable(t.kept.cast("int64")),
        gap=_nullable(gap.cast("float64")),
    )


def promise_sums(
    source: Source, query: Query, promises: Sequence[Promise], *, gaps: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`promise_stats` for an already validated query and the promises to measure;
    ``gaps=False`` skips the gaps' query (its frame comes back empty)."""
    _check_query(query)
    keys = ["promise", *_group_keys(query)]
    tp_filter = query.filters.get("touchpoint")
    todo = [p for p in promises if tp_filter is None or p.touchpoint in tp_filter]
    if not todo:
        return (
            pd.DataFrame(columns=[*keys, *PROMISE_SUMS]),
            pd.DataFrame(columns=[*keys, "kept", *PROMISE_GAP_SUMS]),
        )
    parts = _promises_units(source, todo, query)
    units = ibis.union(*(u for u, _ in parts), distinct=False) if len(parts) > 1 else parts[0][0]
    unit_sums = dims.aggregate(
        units,
        keys,
        {
            "n": units.count(),
            "n_kept": count_where(units, units.kept == 1),
            "sum_value": units.value.sum(),
            "sumsq_value": (units.value * units.value).sum(),
        },
    )
    if not gaps:
        return unit_sums, pd.DataFrame(columns=[*keys, "kept", *PROMISE_GAP_SUMS])
    rated = ibis.union(*(g for _, g in parts), distinct=False) if len(parts) > 1 else parts[0][1]
    gap_sums = dims.aggregate(
        rated,
        [*keys, "kept"],
        {
            "n": rated.count(),
            "sum_gap": rated.gap.sum(),
            "sumsq_gap": (rated.gap * rated.gap).sum(),
        },
    )
    return unit_sums, gap_sums


def promise_stats(
    source: Source, *, promises: Sequence[str] | str | None = None, **args: Unpack[QueryArgs]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sufficient statistics per promise, computed in the engine: ``(units, gaps)``.

    ``units``: ``promise``, the ``by`` columns other than ``touchpoint`` (the promise's own),
    ``period`` (with a period), then :data:`PROMISE_SUMS`. ``gaps``: the same keys, ``kept``
    (1 kept, 0 broken), then :data:`PROMISE_GAP_SUMS`.
    """
    query = Query.of(args)
    return promise_sums(source, query, load_promises(source, _keys(promises)))


def _keys(promises: Sequence[str] | str | None) -> list[str] | None:
    if promises is None:
        return None
    return [promises] if isinstance(promises, str) else list(promises)


def summarise_promises(
    unit_sums: pd.DataFrame,
    gap_sums: pd.DataFrame,
    promises: Sequence[Promise],
    by: Sequence[str] | str | None = None,
    period: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The columns documented on :class:`PromiseResult` from :func:`promise_stats`' frames.
    Pure: no engine. Without groupings and period, every promise in ``promises`` has exactly
    one row (``n = 0`` when nothing measured it)."""
    query = Query.build(by, period)
    conf = dims.check_confidence(confidence)
    keys = _group_keys(query)
    meta = pd.DataFrame(
        {
            # object dtype even when empty, so merging with the engine's keys never fails
            "promise": pd.Series([p.key for p in promises], dtype=object),
            "touchpoint": [p.touchpoint for p in promises],
            "metric": [p.metric for p in promises],
            "target": [f"{p.operator} {p.threshold:g}" for p in promises],
            "promise_source": [p.source for p in promises],
            "measured_on": [p.measured_on for p in promises],
        }
    )
    units = unit_sums.copy()
    if not keys:  # one row per promise, measured or not
        units = meta[["promise"]].merge(units, on="promise", how="left")
    frame = meta.merge(units, on="promise", how="inner", validate="one_to_many")
    for c in PROMISE_SUMS:
        frame[c] = frame[c].astype(float).fillna(0.0)
    order = {p.key: i for i, p in enumerate(promises)}
    frame["_order"] = frame["promise"].map(order)
    frame = frame.sort_values(["_order", *keys], na_position="last", kind="mergesort")
    frame = frame.drop(columns="_order").reset_index(drop=True)
    gap_cols = []
    for flag, name in ((1, "kept"), (0, "broken")):
        part = gap_sums[gap_sums["kept"] == flag].drop(columns="kept")
        names = {c: f"gap_{c}_{name}" for c in PROMISE_GAP_SUMS}
        part = part.rename(columns=names)
        gap_cols += list(names.values())
        frame = _merge_keys(frame, part, ["promise", *keys])
    for c in gap_cols:
        frame[c] = frame[c].astype(float).fillna(0.0)

    meta_cols = ["promise", "touchpoint", "metric", "target", "promise_source", "measured_on"]
    out = key_frame(frame, [*meta_cols, *keys], query.period)
    n = frame["n"].to_numpy(dtype=float)
    out["n"] = frame["n"].astype("int64")
    out["n_kept"] = frame["n_kept"].astype("int64")
    rate = stats.proportion(frame["n_kept"], n, conf)
    put_interval(out, "kept_rate", rate.share, rate.low, rate.high)
    value = stats.mean_interval(n, frame["sum_value"], frame["sumsq_value"], conf)
    put_interval(out, "mean_value", value.mean, value.low, value.high)
    moments: dict[str, stats.Moments] = {}
    for name in ("kept", "broken"):
        cnt = frame[f"gap_n_{name}"].to_numpy(dtype=float)
        s1, s2 = frame[f"gap_sum_gap_{name}"], frame[f"gap_sumsq_gap_{name}"]
        est = stats.mean_interval(cnt, s1, s2, conf)
        out[f"n_gap_{name}"] = frame[f"gap_n_{name}"].astype("int64")
        put_interval(out, f"mean_gap_{name}", est.mean, est.low, est.high)
        moments[name] = stats.moments(cnt, s1, s2)
    kept, broken = moments["kept"], moments["broken"]
    diff = stats.welch_difference(
        kept.mean, kept.var, kept.n, broken.mean, broken.var, broken.n, conf
    )
    put_interval(
        out, "delta_gap", diff.delta, diff.low, diff.high, p_value=("p_value_gap", diff.p_value)
    )
    return out.reset_index(drop=True)


_MISSING = "\x00missing"


def _merge_keys(left: pd.DataFrame, right: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Left merge on ``keys`` where missing labels match each other (as in SQL GROUP BY)."""
    a, b = left.copy(), right.copy()
    tmp = []
    for k in keys:
        if k == "period":
            continue
        name = f"_k_{k}"
        a[name] = a[k].astype(object).where(a[k].notna(), _MISSING)
        b[name] = b[k].astype(object).where(b[k].notna(), _MISSING)
        b = b.drop(columns=k)
        tmp.append(name)
    on = [*tmp, *(["period"] if "period" in keys else [])]
    merged = a.merge(b, on=on, how="left", validate="one_to_one")
    return merged.drop(columns=tmp)


@dataclass(frozen=True, eq=False)
class PromiseResult(AnalyticsResult):
    """Kept rate and the gap when kept against broken, per promise (and group, and period).

    ``frame`` columns, in order:

    * ``promise`` (key), ``touchpoint``, ``metric``, ``target`` (e.g. ``<= 5``),
      ``promise_source`` (who made it: advertising, sales, …), ``measured_on``
      (``interaction``, ``interaction attribute`` or ``feedback``);
    * the grouping dimensions other than ``touchpoint``, then ``period`` and ``period_label``
      with a period;
    * ``n`` (units with the metric), ``n_kept``, ``kept_rate`` with ``_low``/``_high``
      (Wilson); ``mean_value`` with ``_low``/``_high`` (t interval);
    * ``n_gap_kept``, ``mean_gap_kept`` with ``_low``/``_high``; ``n_gap_broken``,
      ``mean_gap_broken`` with ``_low``/``_high`` (t intervals);
    * ``delta_gap`` (mean gap kept − broken) with ``_low``/``_high`` and ``p_value_gap``
      (Welch).

    Rows follow the corridor map's touch point order, promises at one touch point by key (the
    ``promises`` table keeps no order of its own). Without groupings and period every
    promise has one row (``n = 0`` if unmeasured); otherwise one per group with units.
    ``n`` on the result is the number of units measured.
    """


def promise_table(
    source: Source,
    *,
    confidence: float = 0.95,
    promises: Sequence[str] | str | None = None,
    **args: Unpack[QueryArgs],
) -> PromiseResult:
    """Kept rate against target and the gap when kept against broken, for every promise of the
    corridor map (or the ``promises`` keys given). ``by``, ``period``, ``filters``, ``since``
    and ``until`` as in :func:`corridor.analytics.feedback.gaps.gap_table`, except ``source``."""
    conf = dims.check_confidence(confidence)
    query = Query.of(args)
    _check_query(query)
    chosen = load_promises(source, _keys(promises))
    tp_filter = query.filters.get("touchpoint")
    chosen = [p for p in chosen if tp_filter is None or p.touchpoint in tp_filter]
    units, gaps = promise_sums(source, query, chosen)
    frame = summarise_promises(units, gaps, chosen, query.by, query.period, conf)
    return PromiseResult(
        frame=frame,
        n=int(np.asarray(units["n"], dtype=float).sum()),
        confidence=conf,
        method=METHOD,
        query=query.describe() | {"promises": [p.key for p in chosen]},
    )


__all__ = [
    "FEEDBACK_FIELDS",
    "INTERACTION_COLUMNS",
    "OPERATORS",
    "PROMISE_DIMENSIONS",
    "PROMISE_GAP_SUMS",
    "PROMISE_SUMS",
    "Promise",
    "PromiseResult",
    "attribute_value",
    "interaction_rows",
    "load_promises",
    "promise_stats",
    "promise_sums",
    "promise_table",
    "promise_units",
    "summarise_promises",
]


register(
    Analysis(
        "promises",
        "Promises kept against their targets",
        promise_table,
        path="/promises",
        command=("promises",),
        tag="feedback",
        description="Each promise of the corridor map (a delivery within 3 days, an answer "
        "within an hour): the share of interactions that kept it with a Wilson interval, the "
        "mean gap when kept and when broken, and their difference with a Welch p-value, per "
        "grouping and period.",
        by=by_param(choices=PROMISE_DIMENSIONS),
        period=PERIOD,
        filters=PROMISE_DIMENSIONS,
        brief=(
            "promise", "target", "n", "kept_rate", "kept_rate_low", "kept_rate_high",
            "mean_gap_kept", "mean_gap_broken", "delta_gap", "p_value_gap",
        ),
        columns=columns(
            "promise:str metric:str target:str promise_source:str measured_on:str n:int "
            "n_kept:int kept_rate kept_rate_low kept_rate_high mean_value mean_value_low "
            "mean_value_high n_gap_kept:int mean_gap_kept mean_gap_kept_low "
            "mean_gap_kept_high n_gap_broken:int mean_gap_broken mean_gap_broken_low "
            "mean_gap_broken_high delta_gap delta_gap_low delta_gap_high p_value_gap"
        ),
    )
)  # fmt: skip
