"""Analytics: functions take Ibis tables (a Store) plus parameters and return small results.

Gap analytics (:mod:`~corridor.analytics.gaps`), the standard metrics NPS, CSAT and CES
(:mod:`~corridor.analytics.metrics`) and two-slice difference tests
(:mod:`~corridor.analytics.compare`) share one vocabulary of groupings, filters and periods
(:mod:`~corridor.analytics.dimensions`) and one set of estimators working on sufficient
statistics (:mod:`~corridor.analytics.stats`). Aggregation runs in the engine; only the
aggregated frame comes back.
"""

from __future__ import annotations

from corridor.analytics.compare import ComparisonResult, Slice, compare
from corridor.analytics.dimensions import DIMENSIONS, PERIODS, Query, feedback_facts
from corridor.analytics.errors import AnalyticsQueryError
from corridor.analytics.gaps import GapResult, gap_stats, gap_table, summarise_gaps
from corridor.analytics.metrics import MetricResult, metric_stats, metric_table, summarise_metrics
from corridor.analytics.result import AnalyticsResult

__all__ = [
    "DIMENSIONS",
    "PERIODS",
    "AnalyticsQueryError",
    "AnalyticsResult",
    "ComparisonResult",
    "GapResult",
    "MetricResult",
    "Query",
    "Slice",
    "compare",
    "feedback_facts",
    "gap_stats",
    "gap_table",
    "metric_stats",
    "metric_table",
    "summarise_gaps",
    "summarise_metrics",
]
