"""Difference tests between two slices of feedback: two groups, two periods, or both.

A slice is a set of filters plus a time range, e.g. ``Slice({"channel": ["web"]})`` against
``Slice({"channel": ["app"]})``, or the same filters over two quarters. :func:`compare` reports,
for every gap measure and standard metric, both estimates, the difference ``b − a`` (read ``a``
as the baseline) with its interval, and a two-sided test of "no difference":

================== =================================== =========================================
measure            test                                interval of the difference
================== =================================== =========================================
mean_expectation,  Welch t (Welch 1947)                Welch t, df by Welch–Satterthwaite
mean_experience,
mean_gap, ces_mean
share_below,       pooled two-proportion z             Newcombe (1998) hybrid score
csat_top2_share,
ces_easy_share
nps                z on the difference, SEs combined   Wald: Δ ± z·√(SE_a² + SE_b²)
================== =================================== =========================================

The tests assume the slices are independent samples: give disjoint slices (a record in both
would be counted twice and make the test too confident).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from corridor.analytics.core import dimensions as dims
from corridor.analytics.core.dimensions import Filters, Query, Source, TimeLike
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.estimators import stats
from corridor.analytics.feedback.gaps import gap_sums
from corridor.analytics.feedback.metrics import metric_sums


@dataclass(frozen=True)
class Slice:
    """Filters (``{dimension: values}``) and a time range (``since`` inclusive, ``until``
    exclusive) that select one sample of feedback."""

    filters: Filters = field(default_factory=dict)
    since: TimeLike = None
    until: TimeLike = None
    label: str | None = None

    def query(self) -> Query:
        return Query.build(None, None, self.filters, self.since, self.until)


METHOD = (
    "difference b − a; means: Welch t-test and Welch interval; shares: pooled two-proportion "
    "z-test and Newcombe hybrid score interval; NPS: z-test and Wald interval with "
    "SE = √(SE_a² + SE_b²), SE = 100·√((p + d − (p − d)²)/n); slices assumed independent"
)


@dataclass(frozen=True, eq=False)
class ComparisonResult(AnalyticsResult):
    """One row per measure.

    ``frame`` columns: ``measure``; ``n_a``, ``estimate_a``, ``n_b``, ``estimate_b`` (NPS in
    points, shares 0…1); ``delta`` (b − a) with ``delta_low``/``delta_high``; ``statistic``
    (t or z), ``df`` (Welch degrees of freedom, NaN for z-tests), ``p_value`` (two-sided);
    ``test`` (``welch_t``, ``two_proportion_z`` or ``nps_z``). ``query`` holds both slices under
    ``a`` and ``b``; ``n`` is the number of feedback records in the two slices together.
    """


def _row(
    measure: str,
    n_a: float,
    est_a: Any,
    n_b: float,
    est_b: Any,
    diff: stats.Difference,
    df: Any,
    test: str,
) -> dict[str, Any]:
    return {
        "measure": measure,
        "n_a": int(n_a),
        "estimate_a": float(est_a),
        "n_b": int(n_b),
        "estimate_b": float(est_b),
        "delta": float(diff.delta),
        "delta_low": float(diff.low),
        "delta_high": float(diff.high),
        "statistic": float(diff.statistic),
        "df": float(df),
        "p_value": float(diff.p_value),
        "test": test,
    }


def compare_sums(
    gaps_a: Mapping[str, Any],
    metrics_a: Mapping[str, Any],
    gaps_b: Mapping[str, Any],
    metrics_b: Mapping[str, Any],
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The comparison frame from one row of :data:`~corridor.analytics.feedback.gaps.GAP_SUMS` and
    of :data:`~corridor.analytics.feedback.metrics.METRIC_SUMS` per slice. Pure: no engine."""
    conf = dims.check_confidence(confidence)
    rows = []
    ga, gb, ma, mb = gaps_a, gaps_b, metrics_a, metrics_b

    def means(
        measure: str, sa: Mapping[str, Any], sb: Mapping[str, Any], n_col: str, col: str
    ) -> None:
        a = stats.moments(sa[n_col], sa[f"sum_{col}"], sa[f"sumsq_{col}"])
        b = stats.moments(sb[n_col], sb[f"sum_{col}"], sb[f"sumsq_{col}"])
        d = stats.welch_difference(b.mean, b.var, b.n, a.mean, a.var, a.n, conf)
        t = stats.welch_t_test(b.mean, b.var, b.n, a.mean, a.var, a.n)
        rows.append(_row(measure, a.n, a.mean, b.n, b.mean, d, t.df, "welch_t"))

    def shares(
        measure: str, sa: Mapping[str, Any], sb: Mapping[str, Any], n_col: str, col: str
    ) -> None:
        d = stats.proportion_difference(sb[col], sb[n_col], sa[col], sa[n_col], conf)
        pa_ = stats.proportion(sa[col], sa[n_col], conf)
        pb_ = stats.proportion(sb[col], sb[n_col], conf)
        rows.append(
            _row(measure, sa[n_col], pa_.share, sb[n_col], pb_.share, d, np.nan, "two_proportion_z")
        )

    for col in ("expectation", "experience", "gap"):
        means(f"mean_{col}", ga, gb, "n", col)
    shares("share_below", ga, gb, "n", "n_below")
    na = stats.nps(ma["promoters"], ma["detractors"], ma["nps_n"], conf)
    nb = stats.nps(mb["promoters"], mb["detractors"], mb["nps_n"], conf)
    d = stats.nps_difference(
        mb["promoters"],
        mb["detractors"],
        mb["nps_n"],
        ma["promoters"],
        ma["detractors"],
        ma["nps_n"],
        conf,
    )
    rows.append(_row("nps", ma["nps_n"], na.nps, mb["nps_n"], nb.nps, d, np.nan, "nps_z"))
    shares("csat_top2_share", ma, mb, "csat_n", "csat_top2")
    means("ces_mean", ma, mb, "ces_n", "ces")
    shares("ces_easy_share", ma, mb, "ces_n", "ces_easy")
    return pd.DataFrame(rows)


def _one_row(frame: pd.DataFrame) -> dict[str, Any]:
    return {str(k): v for k, v in frame.iloc[0].items()}


def compare(source: Source, a: Slice, b: Slice, *, confidence: float = 0.95) -> ComparisonResult:
    """Every gap measure and standard metric in slice ``b`` against slice ``a``.

    Two engine queries per slice (gap and metric sufficient statistics, no grouping); the tests
    run on the aggregated numbers. See the module docstring for the tests and intervals.
    """
    conf = dims.check_confidence(confidence)
    qa, qb = a.query(), b.query()
    ga, gb = (_one_row(gap_sums(source, q)) for q in (qa, qb))
    ma, mb = (_one_row(metric_sums(source, q)) for q in (qa, qb))
    frame = compare_sums(ga, ma, gb, mb, conf)
    n = sum(int(dims.query_rows(source, q).count().to_pyarrow().as_py()) for q in (qa, qb))
    return ComparisonResult(
        frame=frame,
        n=n,
        confidence=conf,
        method=METHOD,
        query={
            "a": {"label": a.label, **qa.describe()},
            "b": {"label": b.label, **qb.describe()},
        },
    )


__all__ = ["ComparisonResult", "Slice", "compare", "compare_sums"]
