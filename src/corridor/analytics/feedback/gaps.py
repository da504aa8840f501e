"""The gap between what customers expected and what they experienced, per group and period.

Two separable steps:

1. :func:`gap_stats` pushes one ``GROUP BY`` into the engine (DuckDB or PostgreSQL, through
   Ibis) and brings back only the *sufficient statistics* per group (and period), the
   :data:`GAP_SUMS` columns. They are additive, so a rollup table that keeps them per day ×
   touch point × channel × … can stand in for this step: summing its rows over the wanted
   groups gives exactly the same frame.
2. :func:`summarise_gaps` turns such a frame into means, intervals and period-over-period
   tests with :mod:`corridor.analytics.estimators.stats`, without touching the engine.

:func:`gap_table` does both and returns a :class:`GapResult`.

A feedback record counts when it has both ``expectation`` and ``experience`` (0–10); its gap is
``experience − expectation`` (negative: worse than expected) and it is *below expectation* when
``experience < expectation``. Means of expectation, experience and gap are over the same
records, so ``mean_gap = mean_experience − mean_expectation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Unpack

import numpy as np
import pandas as pd

from corridor.analytics.core import dimensions as dims
from corridor.analytics.core import registry, result_columns
from corridor.analytics.core.dimensions import Query, QueryArgs, Source
from corridor.analytics.core.periods import align_previous, key_frame
from corridor.analytics.core.result import AnalyticsResult, put_interval
from corridor.analytics.estimators import stats
from corridor.analytics.feedback import rollup
from corridor.analytics.feedback.sums import GAP_SUMS, gap_aggregates

METHOD = (
    "gap = experience − expectation per feedback record with both; means with Student-t "
    "intervals (df = n − 1); share below expectation (experience < expectation) with Wilson "
    "score intervals; change against the group's previous calendar period by Welch's t-test "
    "(mean gap) and the pooled two-proportion z-test (share below)"
)


def gap_stats(source: Source, **args: Unpack[QueryArgs]) -> pd.DataFrame:
    """Sufficient statistics of the gap per group (and period), computed in the engine.

    Columns: the ``by`` dimensions in order, ``period`` (UTC start, when a period is given),
    then :data:`GAP_SUMS`. One row per group that has at least one rated record (with no
    grouping, exactly one row, ``n = 0`` when nothing matches).
    """
    return gap_sums(source, Query.of(args))


def gap_sums(source: Source, query: Query) -> pd.DataFrame:
    """:func:`gap_stats` for an already validated
    :class:`~corridor.analytics.core.dimensions.Query`: from the store's rollup when the query
    allows it (:mod:`corridor.analytics.feedback.rollup`; the same frame), else from the base
    tables."""
    return rollup.sums_or_base(source, query, "gap")


def summarise_gaps(
    sums: pd.DataFrame,
    by: Sequence[str] | str | None = None,
    period: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Estimates, intervals and period-over-period tests from a :data:`GAP_SUMS` frame.

    ``sums`` has one row per group (``by`` columns) and, with ``period``, per UTC period start
    (``period`` column) — as :func:`gap_stats` or a rollup produces it. Pure: no engine.
    Returns the columns documented on :class:`GapResult`.
    """
    query = Query.build(by, period)
    conf = dims.check_confidence(confidence)
    out = key_frame(sums, query.keys, query.period)
    n = sums["n"].to_numpy(dtype=float)
    out["n"] = sums["n"].astype("int64")
    out["n_below"] = sums["n_below"].astype("int64")
    for name in ("expectation", "experience"):
        est = stats.mean_interval(n, sums[f"sum_{name}"], sums[f"sumsq_{name}"], conf)
        put_interval(out, f"mean_{name}", est.mean, est.low, est.high)
    gap = stats.mean_interval(n, sums["sum_gap"], sums["sumsq_gap"], conf)
    out["mean_gap"] = gap.mean
    out["sd_gap"] = gap.sd
    out["se_gap"] = gap.se
    out["mean_gap_low"] = gap.low
    out["mean_gap_high"] = gap.high
    below = stats.proportion(sums["n_below"], n, conf)
    put_interval(out, "share_below", below.share, below.low, below.high)
    if query.period:
        prev = align_previous(
            sums, query.by, query.period, ["n", "n_below", "sum_gap", "sumsq_gap"]
        )
        now = stats.moments(n, sums["sum_gap"], sums["sumsq_gap"])
        before = stats.moments(prev["n"], prev["sum_gap"], prev["sumsq_gap"])
        t = stats.welch_t_test(now.mean, now.var, n, before.mean, before.var, before.n)
        z = stats.two_proportion_z_test(sums["n_below"], n, prev["n_below"], prev["n"])
        with np.errstate(all="ignore"):
            prev_share = np.where(prev["n"] > 0, prev["n_below"] / prev["n"], np.nan)
        out["prev_n"] = prev["n"].astype("Int64")
        out["delta_mean_gap"] = np.asarray(now.mean) - np.asarray(before.mean)
        out["p_value_mean_gap"] = t.p_value
        out["delta_share_below"] = np.asarray(below.share) - prev_share
        out["p_value_share_below"] = z.p_value
    return out.reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class GapResult(AnalyticsResult):
    """Expectation, experience and their gap per group (and period).

    ``frame`` columns, in order:

    * the grouping dimensions (``by``), then ``period`` (UTC start of the calendar period,
      tz-aware) and ``period_label`` (``2025-03-14``, ``2025-W11``, ``2025-03``, ``2025-Q1``)
      when a period was asked for;
    * ``n`` — records with both ratings; ``n_below`` — of them, experience < expectation;
    * ``mean_expectation``, ``mean_experience`` each with ``_low``/``_high`` (t interval);
    * ``mean_gap`` (experience − expectation), ``sd_gap``, ``se_gap``, ``mean_gap_low``,
      ``mean_gap_high`` (t interval, df = n − 1);
    * ``share_below`` with ``share_below_low``/``share_below_high`` (Wilson interval);
    * with a period: ``prev_n`` (records in the group's previous calendar period, missing if it
      has none), ``delta_mean_gap`` and ``p_value_mean_gap`` (Welch t), ``delta_share_below``
      and ``p_value_share_below`` (pooled two-proportion z); deltas are this period minus the
      previous one.

    Intervals and tests that need more data than there is (``n < 2``; no previous period) are
    NaN. ``n`` on the result is the total number of rated records.
    """


def gap_table(source: Source, *, confidence: float = 0.95, **args: Unpack[QueryArgs]) -> GapResult:
    """Gap analytics for any grouping among the
    :data:`~corridor.analytics.core.dimensions.DIMENSIONS` and any period (``day``, ``week``,
    ``month``, ``quarter`` or ``None``).

    ``source`` is a :class:`~corridor.store.Store` (or a mapping of Ibis tables); ``filters``
    maps dimensions to allowed values (``None`` selects missing); ``since`` (inclusive) and
    ``until`` (exclusive) bound ``feedback.occurred_at``. Unknown groupings, filters or periods
    raise :class:`~corridor.analytics.core.errors.AnalyticsQueryError` naming the allowed values.
    """
    return GapResult.per_group(source, confidence, args, gap_sums, summarise_gaps, METHOD)


__all__ = [
    "GAP_SUMS",
    "GapResult",
    "gap_aggregates",
    "gap_stats",
    "gap_sums",
    "gap_table",
    "summarise_gaps",
]


GAPS = registry.register(
    registry.Analysis(
        "gaps",
        "Experience minus expectation",
        gap_table,
        path="/gaps",
        command=("gaps",),
        tag="feedback",
        description="Mean expectation, experience and gap (experience minus expectation) "
        "with intervals, the share of records below expectation, and the change against the "
        "previous period with its p-value, per grouping and period. Filter by any "
        "dimension (`region=north`; an empty value selects records without one).",
        by=registry.by_param(("touchpoint",)),
        period=registry.PERIOD,
        filters=registry.DIMENSION_NAMES,
        brief=(
            "n", "mean_expectation", "mean_experience", "mean_gap", "mean_gap_low",
            "mean_gap_high", "share_below", "delta_mean_gap", "p_value_mean_gap",
        ),
        columns=result_columns.columns(
            "n:int n_below:int mean_expectation mean_expectation_low mean_expectation_high "
            "mean_experience mean_experience_low mean_experience_high mean_gap sd_gap se_gap "
            "mean_gap_low mean_gap_high share_below share_below_low share_below_high "
            "prev_n:int delta_mean_gap p_value_mean_gap delta_share_below p_value_share_below"
        ),
    )
)  # fmt: skip
