"""Expectation drift: change points in the mean expectation per touch point over time.

What customers expect at a touch point moves when the market moves (a competitor answers chats in
under a minute, a new technology becomes common). This module finds the periods where the mean
expectation (or another feedback measure) steps to a new level, says by how much, how sure we
are, and which market events happened near each step.

Three separable steps, as in :mod:`corridor.analytics.feedback.gaps`:

1. :func:`drift_stats` pushes one ``GROUP BY series × period`` into the engine and brings back
   the sufficient statistics ``n``, ``Σx``, ``Σx²`` per series (by default one per touch point)
   and calendar period.
2. :func:`detect_drift` segments each series with :func:`pelt` and describes every change point
   with a Welch test (:func:`corridor.analytics.estimators.stats.welch_difference`), without the
   engine.
3. :func:`annotate_market_events` lists the market events that touch the series' touch point (or
   name none, i.e. all) within ±1 period of each change point.

:func:`expectation_drift` does all three and returns a :class:`DriftResult`.

Model and method
----------------
Let period ``t = 1…T`` of a series hold ``n_t`` ratings with mean ``m_t``. Within a segment of
constant level the ratings are modelled as independent with common mean and variance ``σ²``
(estimated by the pooled within-period variance ``σ̂² = Σ_t (Σx²_t − (Σx_t)²/n_t) / (N − T)``).
The cost of a segment ``S`` of consecutive periods is its residual sum of squares in units of
the variance::

    C(S) = (Σ_{t∈S} Σx²_t − (Σ_{t∈S} Σx_t)² / Σ_{t∈S} n_t) / (φ σ̂²)

i.e. twice the negative Gaussian log-likelihood up to a constant, computed exactly from the
sufficient statistics — so periods weigh by their ``n``. The change points minimise
``Σ_segments C(S) + β · (number of changes)`` over all segmentations with segments of at least
``min_segment`` periods: the optimal partitioning of Jackson et al. (2005), solved exactly with
the pruning of PELT (Killick, Fearnhead & Eckley 2012).

*Penalty.* Splitting a level-free series at a fixed period lowers the cost by a χ²₁ variable
(the squared two-sample z statistic of the CUSUM / likelihood-ratio scan, Page 1954; Hinkley
1970). The scan looks at ``T − 1`` split points, so the penalty is the Bonferroni-corrected
critical value ``β = z²(1 − α / (2(T − 1)))``: on a series without change, a false change
point appears with probability at most about ``α`` (default 0.01, so few of 30 touch points
show a false drift). Bonferroni is conservative here because adjacent splits are correlated.

*Overdispersion.* Period means often vary more than sampling alone explains (the mix of
sources, segments or channels shifts from period to period), and a detector calibrated on
sampling noise alone would then call those wobbles changes. With
``correct_overdispersion=True`` the variance is scaled by the quasi-likelihood dispersion
(Wedderburn 1974; McCullagh & Nelder 1989, §4.5) ``φ = max(1, Σ_t n_t (m_t − level_t)² /
(σ̂² (T − K)))`` — Pearson's χ² of the period means around the fitted segment levels over its
degrees of freedom — re-estimated and refitted until it settles. ``φ`` is reported; it only
ever makes the detector more cautious. In a simulation study (T = 12 periods of 400 ratings or
53 of 100, α = 0.01, 400 series each) a false change appeared in 0.5–1 % of series without
overdispersion; with φ = 2 in 15–17 % uncorrected and 1–5.5 % corrected.

*A step inside a period.* A level that moves part-way through a period leaves that period
between the two levels. With much data the detector sees it as a short transition: two steps
in the same direction in consecutive periods (the ``series`` frame shows the levels); their
sizes add up to the whole shift. ``min_segment`` (default 1) is the shortest level in periods;
2 or more ignores one-period blips, but then a transition period has to join a neighbour and
the first step may be dated a period early.

*Description of each change point.* ``size = mean after − mean before`` over the two adjacent
segments, with Welch's (1947) interval and two-sided p-value on the pooled ratings of each
segment, and ``p_value_adjusted = min(1, (T − 1) · p)``. These p-values are computed after the
change point was chosen by the same data, so they overstate the evidence (selection); read the
adjusted value, and ``overdispersion``, alongside them.

References
----------
* Page, E. S. (1954), "Continuous inspection schemes", *Biometrika* 41(1/2) — CUSUM.
* Hinkley, D. V. (1970), "Inference about the change-point in a sequence of random variables",
  *Biometrika* 57(1) — likelihood-ratio scan for a change in mean.
* Jackson, B. et al. (2005), "An algorithm for optimal partitioning of data on an interval",
  *IEEE Signal Processing Letters* 12(2).
* Killick, R., Fearnhead, P. & Eckley, I. A. (2012), "Optimal detection of changepoints with a
  linear computational cost", *JASA* 107(500) — PELT.
* Wedderburn, R. W. M. (1974), "Quasi-likelihood functions, generalized linear models, and the
  Gauss–Newton method", *Biometrika* 61(3); McCullagh, P. & Nelder, J. A. (1989), *Generalized
  Linear Models*, 2nd ed., §4.5 — the dispersion estimate.
* Welch, B. L. (1947), *Biometrika* 34(1/2) — unequal-variance t-test.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Unpack

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from corridor.analytics.core import dimensions as dims
from corridor.analytics.core import registry, result_columns
from corridor.analytics.core.dimensions import MEASURES, Query, QueryArgs, Source
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.periods import as_utc, labels
from corridor.analytics.core.result import AnalyticsResult, put_interval
from corridor.analytics.estimators import stats
from corridor.analytics.estimators.changepoints import (
    Segmentation,
    _segments,
    change_penalty,
    dispersion,
    pelt,
    pooled_variance,
    segment_cost,
    segment_series,
)

#: measures a drift can be computed on: the numeric feedback fields and the gap
DRIFT_MEASURES: tuple[str, ...] = (*MEASURES, "gap")

#: sufficient statistics per series and period (additive)
DRIFT_SUMS: tuple[str, ...] = ("n", "sum_value", "sumsq_value")

#: pandas period frequencies matching the engine's truncation (weeks run Monday to Sunday)
_FREQ = {"day": "D", "week": "W-SUN", "month": "M", "quarter": "Q"}
_STEP = {
    "day": pd.DateOffset(days=1),
    "week": pd.DateOffset(days=7),
    "month": pd.DateOffset(months=1),
    "quarter": pd.DateOffset(months=3),
}

METHOD = (
    "per series, period sums of n, Σx, Σx² from the engine; change points in the mean by "
    "optimal partitioning with PELT pruning (Killick et al. 2012) of the Gaussian cost "
    "RSS/(φσ²) with σ² the pooled within-period variance, penalty β = z²(1 − α/(2(T − 1))) "
    "(Bonferroni over the T − 1 split points, CUSUM/likelihood-ratio scan), overdispersion "
    "φ = max(1, Pearson χ²/df of period means around the fitted levels), iterated; each change "
    "described by Welch's t-test and interval on the adjacent segments (after − before); "
    "market events on the touch point (or on all) within ±1 period"
)


# -- the engine step -----------------------------------------------------------------------------


def _check_measure(measure: str) -> str:
    if measure not in DRIFT_MEASURES:
        raise AnalyticsQueryError(
            f"unknown measure {measure!r}; allowed: {', '.join(DRIFT_MEASURES)}"
        )
    return measure


def _check_drift_period(period: str | None) -> str:
    p = dims.check_period(period)
    if p is None:
        raise AnalyticsQueryError(
            "drift needs a period to follow over time; give one of: day, week, month, quarter"
        )
    return p


def _drift_query(args: QueryArgs) -> Query:
    """The query of a drift analysis: per touch point and month unless told otherwise; it must
    have a period."""
    period = _check_drift_period(args.get("period", "month"))
    return Query.of({**args, "period": period}, by=("touchpoint",))


def _measure_expr(table: ir.Table, measure: str) -> ir.FloatingValue:
    if measure == "gap":
        return table.experience - table.expectation
    return table[measure]


def drift_sums(source: Source, query: Query, measure: str = "expectation") -> pd.DataFrame:
    """:func:`drift_stats` for an already validated query (which must have a period)."""
    t = dims.query_rows(source, query)
    t = t.mutate(_x=_measure_expr(t, measure))
    t = t.filter(t._x.notnull())
    return dims.aggregate(
        t,
        query.keys,
        {"n": t.count(), "sum_value": t._x.sum(), "sumsq_value": (t._x * t._x).sum()},
    )


def drift_stats(
    source: Source, *, measure: str = "expectation", **args: Unpack[QueryArgs]
) -> pd.DataFrame:
    """Sufficient statistics of ``measure`` per series (the ``by`` groups) and period, computed
    in the engine over the feedback records that have it.

    Columns: the ``by`` dimensions, ``period`` (UTC start), then :data:`DRIFT_SUMS`.
    ``measure`` is one of :data:`DRIFT_MEASURES` (``gap`` = experience − expectation).
    """
    m = _check_measure(measure)
    return drift_sums(source, _drift_query(args), m)


# -- change points on one series -----------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def detect_drift(
    sums: pd.DataFrame,
    by: Sequence[str] | str | None = "touchpoint",
    period: str = "month",
    alpha: float = 0.01,
    min_segment: int = 1,
    correct_overdispersion: bool = True,
    confidence: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Change points and fitted levels from a :data:`DRIFT_SUMS` frame (one row per series and
    period, as :func:`drift_stats` makes it). Pure: no engine.

    Returns ``(changes, series)``: the frames documented on :class:`DriftResult` (``changes``
    without the ``market_events`` column, which :func:`annotate_market_events` adds).
    """
    by_ = list(dims.check_by(by))
    period_ = _check_drift_period(period)
    conf = dims.check_confidence(confidence)
    if not isinstance(min_segment, int | np.integer) or min_segment < 1:
        raise AnalyticsQueryError(f"min_segment must be a whole number ≥ 1, got {min_segment!r}")
    change_rows: list[dict[str, Any]] = []
    series_parts: list[pd.DataFrame] = []
    frame = sums[sums["n"] > 0]
    if by_:
        grouped = frame.groupby(by_, dropna=False, sort=False)
        parts = [(key if isinstance(key, tuple) else (key,), rows) for key, rows in grouped]
    else:
        parts = [((), frame)]
    for key, rows in parts:
        rows = rows.sort_values("period", kind="mergesort")
        n = rows["n"].to_numpy(dtype=float)
        s = rows["sum_value"].to_numpy(dtype=float)
        q = rows["sumsq_value"].to_numpy(dtype=float)
        starts = as_utc(rows["period"]).reset_index(drop=True)
        seg = segment_series(n, s, q, alpha, min_segment, correct_overdispersion)
        segs = _segments(len(n), seg.changes)
        label = {k: (None if _missing(v) else v) for k, v in zip(by_, key, strict=True)}

        level = np.empty(len(n))
        segment_no = np.empty(len(n), dtype=int)
        for i, (a, b) in enumerate(segs):
            total = n[a:b].sum()  # a segment of periods without answers has no level
            level[a:b] = s[a:b].sum() / total if total > 0 else np.nan
            segment_no[a:b] = i
        est = stats.mean_interval(n, s, q, conf)
        part = pd.DataFrame({**{k: [v] * len(n) for k, v in label.items()}})
        part["period"] = starts
        part["n"] = n.astype("int64")
        put_interval(part, "mean", est.mean, est.low, est.high)
        part["level"] = segment_no
        part["level_mean"] = level
        series_parts.append(part)

        for (a, b), (_, c) in itertools.pairwise(segs):
            before = stats.moments(n[a:b].sum(), s[a:b].sum(), q[a:b].sum())
            after = stats.moments(n[b:c].sum(), s[b:c].sum(), q[b:c].sum())
            diff = stats.welch_difference(
                after.mean, after.var, after.n, before.mean, before.var, before.n, conf
            )
            p = float(diff.p_value)
            change_rows.append(
                {
                    **label,
                    "date": starts[b],
                    "size": float(diff.delta),
                    "size_low": float(diff.low),
                    "size_high": float(diff.high),
                    "statistic": float(diff.statistic),
                    "p_value": p,
                    "p_value_adjusted": min(1.0, p * (len(n) - 1)) if np.isfinite(p) else p,
                    "mean_before": float(before.mean),
                    "mean_after": float(after.mean),
                    "n_before": int(before.n),
                    "n_after": int(after.n),
                    "before_start": starts[a],
                    "after_end": starts[c - 1],
                    "periods": len(n),
                    "overdispersion": seg.phi,
                }
            )
    change_cols = [
        *by_,
        "date",
        "period_label",
        "size",
        "size_low",
        "size_high",
        "statistic",
        "p_value",
        "p_value_adjusted",
        "mean_before",
        "mean_after",
        "n_before",
        "n_after",
        "before_start",
        "after_end",
        "periods",
        "overdispersion",
    ]
    changes = pd.DataFrame(change_rows, columns=[c for c in change_cols if c != "period_label"])
    changes["date"] = as_utc(changes["date"])
    changes.insert(len(by_) + 1, "period_label", labels(changes["date"], period_))
    series_cols = [*by_, "period", "period_label", "n", "mean", "mean_low", "mean_high"]
    if series_parts:
        series = pd.concat(series_parts, ignore_index=True)
        series["period_label"] = labels(series["period"], period_)
    else:
        series = pd.DataFrame(columns=[*series_cols, "level", "level_mean"])
    series = series[[*series_cols, "level", "level_mean"]]
    return changes.reset_index(drop=True), series.reset_index(drop=True)


# -- market events -------------------------------------------------------------------------------


def period_start(times: pd.Series, period: str) -> pd.Series:
    """The UTC start of the calendar period holding each time, as the engine truncates."""
    ts = pd.to_datetime(times, utc=True).dt.tz_localize(None)
    return ts.dt.to_period(_FREQ[period]).dt.start_time.dt.tz_localize("UTC")


def market_events(source: Source) -> pd.DataFrame:
    """The market events table (small) as a frame: ``event_id``, ``occurred_at`` (UTC),
    ``kind``, ``touchpoints`` (a list of keys; empty = all touch points), ``description``."""
    t = dims.get_table(source, "market_events")
    df = t.select("event_id", "occurred_at", "kind", "touchpoints", "description").to_pyarrow()
    out = df.to_pandas()
    out["occurred_at"] = pd.to_datetime(out["occurred_at"], utc=True)
    out["touchpoints"] = [
        [k.strip() for k in str(v).split(";") if k.strip()] if isinstance(v, str) else []
        for v in out["touchpoints"]
    ]
    return out.sort_values(["occurred_at", "event_id"], kind="mergesort").reset_index(drop=True)


def annotate_market_events(
    changes: pd.DataFrame, events: pd.DataFrame, period: str
) -> pd.DataFrame:
    """Add ``market_events``: the ids (``;``-joined, in time order; missing when none) of the
    market events whose period is the change's period, the one before or the one after, and
    that name the change's touch point or no touch point at all (when the series are not per
    touch point, every event in the window)."""
    out = changes.copy()
    if events.empty or out.empty:
        out["market_events"] = pd.Series([None] * len(out), index=out.index, dtype=object)
        return out
    step = _STEP[period]
    ev_period = period_start(events["occurred_at"], period)
    found: list[str | None] = []
    for _, row in out.iterrows():
        date = row["date"]
        near = (ev_period >= date - step) & (ev_period <= date + step)
        if "touchpoint" in out.columns:
            tp = row["touchpoint"]
            touches = events["touchpoints"].map(lambda keys, tp=tp: not keys or tp in keys)
            near &= touches
        ids = events.loc[near, "event_id"].tolist()
        found.append(";".join(ids) if ids else None)
    out["market_events"] = found
    return out


# -- the result ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DriftResult(AnalyticsResult):
    """Change points in the mean of a feedback measure (expectation by default) per series.

    ``frame`` — one row per change point, in series then time order:

    * the series dimensions (``by``, by default ``touchpoint``);
    * ``date`` — UTC start of the first period at the new level; ``period_label``;
    * ``size`` — mean after − mean before (adjacent segments), ``size_low``/``size_high``
      (Welch interval), ``statistic`` (Welch t), ``p_value`` (two-sided),
      ``p_value_adjusted`` (× (T − 1), Bonferroni over the split points, capped at 1);
    * ``mean_before``, ``mean_after``, ``n_before``, ``n_after`` — the two segments, which
      run from ``before_start`` to the period before ``date`` and from ``date`` to
      ``after_end``;
    * ``periods`` — periods with data in the series (T); ``overdispersion`` — φ used;
    * ``market_events`` — ids of market events on that touch point (or on all) within ±1
      period, ``;``-joined, missing when none.

    ``series`` — one row per series and period: the dimensions, ``period``,
    ``period_label``, ``n``, ``mean`` with ``mean_low``/``mean_high`` (t interval),
    ``level`` (0, 1, … the segment within the series) and ``level_mean`` (its fitted mean).

    ``n`` is the number of feedback records with the measure; ``query`` echoes the request,
    ``measure``, ``alpha`` and ``min_segment``.
    """

    series: pd.DataFrame = field(default_factory=pd.DataFrame)


def expectation_drift(
    source: Source,
    *,
    measure: str = "expectation",
    alpha: float = 0.01,
    min_segment: int = 1,
    correct_overdispersion: bool = True,
    confidence: float = 0.95,
    **args: Unpack[QueryArgs],
) -> DriftResult:
    """Change points in the mean expectation per touch point (or per any grouping) over time.

    ``period`` is ``day``, ``week``, ``month`` (default) or ``quarter``; ``filters``,
    ``since`` (inclusive) and ``until`` (exclusive) select feedback as in
    :func:`corridor.analytics.feedback.gaps.gap_table`. ``alpha`` bounds the chance of a false
    change point per series (see the module notes); ``min_segment`` is the shortest level, in
    periods (a change in the last ``min_segment − 1`` periods cannot be seen yet). ``measure`` may
    be any of :data:`DRIFT_MEASURES`.

    Unsolicited feedback (reviews, social posts) is self-selected on the gap, so its mean
    expectation moves whenever experience moves; to follow what customers at large expect,
    filter on representative sources, e.g. ``filters={"source": ["survey"]}``.
    """
    m = _check_measure(measure)
    conf = dims.check_confidence(confidence)
    query = _drift_query(args)
    assert query.period is not None
    sums = drift_sums(source, query, m)
    changes, series = detect_drift(
        sums, query.by, query.period, alpha, min_segment, correct_overdispersion, conf
    )
    changes = annotate_market_events(changes, market_events(source), query.period)
    meta = query.describe() | {"measure": m, "alpha": alpha, "min_segment": min_segment}
    return DriftResult.from_sums(changes, sums, conf, METHOD, meta, series=series)


__all__ = [
    "DRIFT_MEASURES",
    "DRIFT_SUMS",
    "DriftResult",
    "Segmentation",
    "annotate_market_events",
    "change_penalty",
    "detect_drift",
    "dispersion",
    "drift_stats",
    "drift_sums",
    "expectation_drift",
    "market_events",
    "pelt",
    "pooled_variance",
    "segment_cost",
    "segment_series",
]


registry.register(
    registry.Analysis(
        "drift",
        "Expectation drift: change points in mean expectation",
        expectation_drift,
        path="/drift",
        command=("drift",),
        tag="feedback",
        description="Change points in the mean expectation of each group's series (PELT with "
        "a penalty for the false-alarm rate): the date, the size of each shift with its "
        "interval and adjusted p-value, the means and n before and after, and market events "
        "near it.",
        by=registry.by_param(("touchpoint",)),
        period=replace(registry.PERIOD, default="month", help="the series' period"),
        filters=registry.DIMENSION_NAMES,
        brief=(
            "date", "size", "size_low", "size_high", "p_value_adjusted", "mean_before",
            "mean_after", "n_before", "n_after", "market_events",
        ),
        columns=result_columns.columns(
            "date:time size size_low size_high statistic p_value p_value_adjusted mean_before "
            "mean_after n_before:int n_after:int before_start:time after_end:time periods:int "
            "overdispersion market_events:str"
        ),
    )
)  # fmt: skip
