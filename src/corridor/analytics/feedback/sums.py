"""The additive sufficient statistics of the feedback analytics, as Ibis aggregates.

:data:`GAP_SUMS` (:mod:`~corridor.analytics.feedback.gaps`) and :data:`METRIC_SUMS`
(:mod:`~corridor.analytics.feedback.metrics`) are counts, sums and sums of squares per group:
the analyses compute them from the base tables, the rollup
(:mod:`~corridor.analytics.feedback.rollup`) keeps them per day, with the same expressions
(:func:`gap_aggregates`, :func:`metric_aggregates`), so both paths give the same frame.
"""

from __future__ import annotations

from typing import Any

import ibis.expr.types as ir

from corridor.analytics.core.counting import count_where

#: sufficient statistics of the gap per group: counts, sums and sums of squares (all additive)
GAP_SUMS: tuple[str, ...] = (
    "n",
    "n_below",
    "sum_expectation",
    "sumsq_expectation",
    "sum_experience",
    "sumsq_experience",
    "sum_gap",
    "sumsq_gap",
)

#: NPS 9–10 is a promoter, 0–6 a detractor
PROMOTER_MIN = 9
DETRACTOR_MAX = 6
#: CSAT 4–5 of 1–5 is the top two boxes
CSAT_TOP2_MIN = 4
#: CES 5–7 of 1–7 counts as easy
CES_EASY_MIN = 5

#: sufficient statistics of NPS, CSAT and CES per group: counts, sums and sums of squares
METRIC_SUMS: tuple[str, ...] = (
    "n",
    "nps_n",
    "promoters",
    "detractors",
    "csat_n",
    "csat_top2",
    "ces_n",
    "ces_easy",
    "sum_ces",
    "sumsq_ces",
)


def gap_aggregates(table: ir.Table, where: Any = None) -> dict[str, Any]:
    """The Ibis aggregate expressions for :data:`GAP_SUMS` over rows that have both ratings
    (measures already float64, so PostgreSQL sums doubles, never ``numeric``).

    ``where`` restricts every aggregate to rows where it holds (the rollup aggregates all
    feedback at once and counts only rated rows here); sums over no such row are null."""
    e, x = table.expectation, table.experience
    gap = x - e
    below = x < e if where is None else (x < e) & where
    return {
        "n": count_where(table, where),
        "n_below": count_where(table, below),
        "sum_expectation": e.sum(where=where),
        "sumsq_expectation": (e * e).sum(where=where),
        "sum_experience": x.sum(where=where),
        "sumsq_experience": (x * x).sum(where=where),
        "sum_gap": gap.sum(where=where),
        "sumsq_gap": (gap * gap).sum(where=where),
    }


def metric_aggregates(table: ir.Table, where: Any = None) -> dict[str, Any]:
    """The Ibis aggregate expressions for :data:`METRIC_SUMS` (measures already float64);
    ``where`` restricts every aggregate to rows where it holds, as in :func:`gap_aggregates`."""
    nps, csat, ces = table.nps, table.csat, table.ces

    def both(cond: Any) -> Any:
        return cond if where is None else cond & where

    return {
        "n": count_where(table, where),
        "nps_n": nps.count(where=where),
        "promoters": count_where(table, both(nps >= PROMOTER_MIN)),
        "detractors": count_where(table, both(nps <= DETRACTOR_MAX)),
        "csat_n": csat.count(where=where),
        "csat_top2": count_where(table, both(csat >= CSAT_TOP2_MIN)),
        "ces_n": ces.count(where=where),
        "ces_easy": count_where(table, both(ces >= CES_EASY_MIN)),
        "sum_ces": ces.sum(where=where),
        "sumsq_ces": (ces * ces).sum(where=where),
    }


__all__ = [
    "CES_EASY_MIN",
    "CSAT_TOP2_MIN",
    "DETRACTOR_MAX",
    "GAP_SUMS",
    "METRIC_SUMS",
    "PROMOTER_MIN",
    "gap_aggregates",
    "metric_aggregates",
]
