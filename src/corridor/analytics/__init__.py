"""Analytics: functions take Ibis tables (a Store) plus parameters and return small results.

Gap analytics (:mod:`~corridor.analytics.gaps`), the standard metrics NPS, CSAT and CES
(:mod:`~corridor.analytics.metrics`), two-slice difference tests
(:mod:`~corridor.analytics.compare`), promises kept and broken
(:mod:`~corridor.analytics.promises`), expectation drift (:mod:`~corridor.analytics.drift`)
and the functional/emotional and solicited/unsolicited facets
(:mod:`~corridor.analytics.facets`) share one vocabulary of groupings, filters and periods
(:mod:`~corridor.analytics.dimensions`) and one set of estimators working on sufficient
statistics (:mod:`~corridor.analytics.stats`). Aggregation runs in the engine; only the
aggregated frame comes back.
"""

from __future__ import annotations

from corridor.analytics.compare import ComparisonResult, Slice, compare
from corridor.analytics.dimensions import DIMENSIONS, PERIODS, Query, feedback_facts
from corridor.analytics.drift import DriftResult, drift_stats, expectation_drift
from corridor.analytics.errors import AnalyticsQueryError
from corridor.analytics.facets import FacetResult, SourceFacetResult, facet_table, source_facets
from corridor.analytics.gaps import GapResult, gap_stats, gap_table, summarise_gaps
from corridor.analytics.metrics import MetricResult, metric_stats, metric_table, summarise_metrics
from corridor.analytics.promises import PromiseResult, promise_stats, promise_table
from corridor.analytics.result import AnalyticsResult

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
