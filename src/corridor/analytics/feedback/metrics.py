"""The standard CX metrics — NPS, CSAT top-2-box, CES — per group and period, with intervals.

Definitions (each over the feedback records that answered that question):

* **NPS** (Reichheld 2003): ``100 · (promoters − detractors) / n`` on the 0–10 "would you
  recommend" scale; promoters answer 9–10, passives 7–8, detractors 0–6. Standard error
  ``100 · √((p + d − (p − d)²) / n)`` and Wald interval
  (:func:`corridor.analytics.estimators.stats.nps`).
* **CSAT top-2-box**: share of 4–5 answers on the 1–5 satisfaction scale, Wilson interval.
* **CES**: mean of the 1–7 effort score (7 = very easy) with a t interval, and the share
  *easy* (5–7) with a Wilson interval.

As in :mod:`corridor.analytics.feedback.gaps`, :func:`metric_stats` computes the additive sufficient
statistics (:data:`METRIC_SUMS`) in the engine and :func:`summarise_metrics` turns them into
estimates without it; :func:`metric_table` does both.
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
from corridor.analytics.feedback.sums import (
    CES_EASY_MIN,
    CSAT_TOP2_MIN,
    DETRACTOR_MAX,
    METRIC_SUMS,
    PROMOTER_MIN,
    metric_aggregates,
)

METHOD = (
    "NPS = %promoters (9–10) − %detractors (0–6), SE = 100·√((p + d − (p − d)²)/n), Wald "
    "interval clipped to ±100; CSAT top-2-box (4–5 of 1–5) and CES share easy (5–7 of 1–7) "
    "with Wilson score intervals; CES mean with a Student-t interval; change against the "
    "group's previous calendar period by z-test (NPS, SEs combined), pooled two-proportion "
    "z-test (shares) and Welch's t-test (CES mean)"
)


def metric_stats(source: Source, **args: Unpack[QueryArgs]) -> pd.DataFrame:
    """Sufficient statistics of NPS, CSAT and CES per group (and period), computed in the
    engine, over feedback records with at least one of the three answers.

    Columns: the ``by`` dimensions, ``period`` (UTC start, when given), then
    :data:`METRIC_SUMS`.
    """
    return metric_sums(source, Query.of(args))


def metric_sums(source: Source, query: Query) -> pd.DataFrame:
    """:func:`metric_stats` for an already validated
    :class:`~corridor.analytics.core.dimensions.Query`: from the store's rollup when the query
    allows it (:mod:`corridor.analytics.feedback.rollup`), else from the base tables."""
    return rollup.sums_or_base(source, query, "metric")


def summarise_metrics(
    sums: pd.DataFrame,
    by: Sequence[str] | str | None = None,
    period: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Estimates, intervals and period-over-period tests from a :data:`METRIC_SUMS` frame (as
    :func:`metric_stats` or a rollup produces it). Pure: no engine. Returns the columns
    documented on :class:`MetricResult`."""
    query = Query.build(by, period)
    conf = dims.check_confidence(confidence)
    out = key_frame(sums, query.keys, query.period)
    out["n"] = sums["n"].astype("int64")

    nps_n = sums["nps_n"].to_numpy(dtype=float)
    out["nps_n"] = sums["nps_n"].astype("int64")
    out["promoters"] = sums["promoters"].astype("int64")
    out["passives"] = (sums["nps_n"] - sums["promoters"] - sums["detractors"]).astype("int64")
    out["detractors"] = sums["detractors"].astype("int64")
    score = stats.nps(sums["promoters"], sums["detractors"], nps_n, conf)
    out["nps"] = score.nps
    out["nps_se"] = score.se
    out["nps_low"] = score.low
    out["nps_high"] = score.high

    csat_n = sums["csat_n"].to_numpy(dtype=float)
    out["csat_n"] = sums["csat_n"].astype("int64")
    out["csat_top2"] = sums["csat_top2"].astype("int64")
    top2 = stats.proportion(sums["csat_top2"], csat_n, conf)
    put_interval(out, "csat_top2_share", top2.share, top2.low, top2.high)

    ces_n = sums["ces_n"].to_numpy(dtype=float)
    out["ces_n"] = sums["ces_n"].astype("int64")
    ces = stats.mean_interval(ces_n, sums["sum_ces"], sums["sumsq_ces"], conf)
    out["ces_mean"] = ces.mean
    out["ces_sd"] = ces.sd
    out["ces_mean_low"] = ces.low
    out["ces_mean_high"] = ces.high
    out["ces_easy"] = sums["ces_easy"].astype("int64")
    easy = stats.proportion(sums["ces_easy"], ces_n, conf)
    put_interval(out, "ces_easy_share", easy.share, easy.low, easy.high)

    if query.period:
        prev = align_previous(sums, query.by, query.period, list(METRIC_SUMS))
        d_nps = stats.nps_difference(
            sums["promoters"],
            sums["detractors"],
            nps_n,
            prev["promoters"],
            prev["detractors"],
            prev["nps_n"],
            conf,
        )
        out["delta_nps"] = d_nps.delta
        out["p_value_nps"] = d_nps.p_value
        d_top2 = stats.proportion_difference(
            sums["csat_top2"], csat_n, prev["csat_top2"], prev["csat_n"], conf
        )
        out["delta_csat_top2_share"] = d_top2.delta
        out["p_value_csat_top2_share"] = d_top2.p_value
        now = stats.moments(ces_n, sums["sum_ces"], sums["sumsq_ces"])
        before = stats.moments(prev["ces_n"], prev["sum_ces"], prev["sumsq_ces"])
        t = stats.welch_t_test(now.mean, now.var, ces_n, before.mean, before.var, before.n)
        out["delta_ces_mean"] = np.asarray(now.mean) - np.asarray(before.mean)
        out["p_value_ces_mean"] = t.p_value
        d_easy = stats.proportion_difference(
            sums["ces_easy"], ces_n, prev["ces_easy"], prev["ces_n"], conf
        )
        out["delta_ces_easy_share"] = d_easy.delta
        out["p_value_ces_easy_share"] = d_easy.p_value
    return out.reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class MetricResult(AnalyticsResult):
    """NPS, CSAT top-2-box and CES per group (and period).

    ``frame`` columns, in order:

    * the grouping dimensions (``by``), then ``period`` and ``period_label`` with a period;
    * ``n`` — records with at least one of NPS, CSAT, CES;
    * ``nps_n``, ``promoters``, ``passives``, ``detractors``; ``nps`` (points, −100…100),
      ``nps_se``, ``nps_low``, ``nps_high`` (Wald, clipped to ±100);
    * ``csat_n``, ``csat_top2``, ``csat_top2_share`` (0…1) with ``_low``/``_high`` (Wilson);
    * ``ces_n``, ``ces_mean``, ``ces_sd``, ``ces_mean_low``, ``ces_mean_high`` (t interval);
      ``ces_easy``, ``ces_easy_share`` with ``_low``/``_high`` (Wilson);
    * with a period: ``delta_nps``/``p_value_nps`` (z on the difference, SEs combined),
      ``delta_csat_top2_share``/``p_value_csat_top2_share`` and
      ``delta_ces_easy_share``/``p_value_ces_easy_share`` (pooled two-proportion z),
      ``delta_ces_mean``/``p_value_ces_mean`` (Welch t): this period minus the group's previous
      calendar period, NaN when that period has no answers.

    ``n`` on the result is the number of records with at least one answer.
    """


def metric_table(
    source: Source, *, confidence: float = 0.95, **args: Unpack[QueryArgs]
) -> MetricResult:
    """NPS, CSAT top-2-box and CES with intervals for any grouping, period, filters and time
    range — the same parameters as :func:`corridor.analytics.feedback.gaps.gap_table`."""
    return MetricResult.per_group(source, confidence, args, metric_sums, summarise_metrics, METHOD)


__all__ = [
    "CES_EASY_MIN",
    "CSAT_TOP2_MIN",
    "DETRACTOR_MAX",
    "METRIC_SUMS",
    "PROMOTER_MIN",
    "MetricResult",
    "metric_aggregates",
    "metric_stats",
    "metric_sums",
    "metric_table",
    "summarise_metrics",
]


def _metric(
    name: str, title: str, what: str, keep: tuple[str, ...], brief: tuple[str, ...], cols: str
) -> None:
    registry.register(
        registry.Analysis(
            name,
            title,
            metric_table,
            path=f"/metrics/{name}",
            command=(name,),
            tag="feedback",
            description=f"{what}, per grouping and period, with n, intervals and the change "
            "against the previous period with its p-value. Filter by any dimension "
            "(`region=north`; an empty value selects records without one).",
            by=registry.by_param(),
            period=registry.PERIOD,
            filters=registry.DIMENSION_NAMES,
            keep_columns=keep,
            brief=brief,
            columns=result_columns.columns(cols),
        )
    )


_metric(
    "nps", "Net Promoter Score",
    "Net Promoter Score (share of promoters minus share of detractors, ×100) with Wald "
    "intervals, and the shares of promoters, passives and detractors",
    ("nps", "promoters", "passives", "detractors"),
    ("nps_n", "nps", "nps_low", "nps_high", "promoters", "detractors", "delta_nps", "p_value_nps"),
    (
        "n:int nps_n:int promoters:int passives:int detractors:int nps nps_se nps_low "
        "nps_high delta_nps p_value_nps"
    ),
)  # fmt: skip
_metric(
    "csat", "Customer satisfaction, top-2-box",
    "Customer satisfaction: the top-2-box share with a Wilson interval, and the mean",
    ("csat",),
    ("csat_n", "csat_top2_share", "csat_top2_share_low", "csat_top2_share_high",
     "delta_csat_top2_share", "p_value_csat_top2_share"),
    (
        "n:int csat_n:int csat_top2:int csat_top2_share csat_top2_share_low "
        "csat_top2_share_high delta_csat_top2_share p_value_csat_top2_share"
    ),
)  # fmt: skip
_metric(
    "ces", "Customer effort score",
    "Customer effort score: the mean with a t interval and the share of easy answers",
    ("ces",),
    ("ces_n", "ces_mean", "ces_mean_low", "ces_mean_high", "ces_easy_share", "delta_ces_mean",
     "p_value_ces_mean"),
    (
        "n:int ces_n:int ces_mean ces_sd ces_mean_low ces_mean_high ces_easy:int "
        "ces_easy_share ces_easy_share_low ces_easy_share_high delta_ces_mean "
        "p_value_ces_mean delta_ces_easy_share p_value_ces_easy_share"
    ),
)  # fmt: skip
