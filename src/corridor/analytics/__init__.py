"""Analytics: functions take Ibis tables (a Store) plus parameters and return small results.

Gap analytics (:mod:`~corridor.analytics.feedback.gaps`), the standard metrics NPS, CSAT and CES
(:mod:`~corridor.analytics.feedback.metrics`), two-slice difference tests
(:mod:`~corridor.analytics.feedback.compare`), promises kept and broken
(:mod:`~corridor.analytics.feedback.promises`), expectation drift
(:mod:`~corridor.analytics.feedback.drift`) and the functional/emotional and solicited/unsolicited
facets (:mod:`~corridor.analytics.feedback.facets`) share one vocabulary of groupings, filters and
periods (:mod:`~corridor.analytics.core.dimensions`) and one set of estimators working on sufficient
statistics (:mod:`~corridor.analytics.estimators.stats`). Aggregation runs in the engine; only the
aggregated frame comes back.
"""

from __future__ import annotations

from corridor.analytics.core.dimensions import DIMENSIONS, PERIODS, Query, feedback_facts
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.feedback.compare import ComparisonResult, Slice, compare
from corridor.analytics.feedback.drift import DriftResult, drift_stats, expectation_drift
from corridor.analytics.feedback.facets import (
    FacetResult,
    SourceFacetResult,
    facet_table,
    source_facets,
)
from corridor.analytics.feedback.gaps import GapResult, gap_stats, gap_table, summarise_gaps
from corridor.analytics.feedback.metrics import (
    MetricResult,
    metric_stats,
    metric_table,
    summarise_metrics,
)
from corridor.analytics.feedback.promises import PromiseResult, promise_stats, promise_table

__all__ = [
    "DIMENSIONS",
    "PERIODS",
    "AnalyticsQueryError",
    "AnalyticsResult",
    "ComparisonResult",
    "DriftResult",
    "FacetResult",
    "GapResult",
    "MetricResult",
    "PromiseResult",
    "Query",
    "Slice",
    "SourceFacetResult",
    "compare",
    "drift_stats",
    "expectation_drift",
    "facet_table",
    "feedback_facts",
    "gap_stats",
    "gap_table",
    "metric_stats",
    "metric_table",
    "promise_stats",
    "promise_table",
    "source_facets",
    "summarise_gaps",
    "summarise_metrics",
]
