"""Per-group period series of the measures Corridor forecasts, from the engine.

Each measure is read as additive sums per group and period — the mean gap, NPS, CSAT and CES
from the feedback rollup when the query allows it (the same frames as
:func:`~corridor.analytics.feedback.gaps.gap_sums` and
:func:`~corridor.analytics.feedback.metrics.metric_sums`), feedback and interaction volumes by one
``GROUP BY`` over their tables — and laid out as one row per group on a common axis of periods:
the value of each period and, for the measures that are estimates from a sample of answers, the
variance of that estimate (its sampling variance).

=============== =========================================== ================================
measure         value of a period                           sampling variance
=============== =========================================== ================================
``gap``         mean of experience − expectation             pooled within-period variance / n
``nps``         100 · (promoters − detractors) / answers     100²·(p + d − (p − d)²) / answers,
                                                             p and d pooled over the periods
``csat``        share of 4–5 answers (top-2-box)             p(1 − p) / answers, p pooled
``ces``         mean effort score (1–7)                      pooled within-period variance / n
``feedback``    feedback records                             —
``interactions`` interactions                                —
=============== =========================================== ================================

A period without answers is missing for the four estimates; the volumes count 0 there once the
group has appeared. Periods before a group's first record are outside its series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from corridor.analytics.core import dimensions as dims
from corridor.analytics.core.counting import count_where
from corridor.analytics.core.dimensions import PERIODS, Query, Source
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.periods import as_utc
from corridor.analytics.feedback.gaps import gap_sums
from corridor.analytics.feedback.metrics import metric_sums
from corridor.analytics.feedback.promises import interaction_rows

#: measure -> (what it is, the range its values can take)
MEASURES: dict[str, tuple[str, tuple[float, float]]] = {
    "gap": ("mean gap, experience − expectation (0–10 scales)", (-10.0, 10.0)),
    "nps": ("Net Promoter Score, points", (-100.0, 100.0)),
    "csat": ("CSAT top-2-box share (4–5 of 1–5)", (0.0, 1.0)),
    "ces": ("mean customer effort score (1–7, 7 = very easy)", (1.0, 7.0)),
    "feedback": ("feedback records per period", (0.0, np.inf)),
    "interactions": ("interactions per period", (0.0, np.inf)),
}
VOLUMES = ("feedback", "interactions")
#: the seasonal period of each period: a year of months or quarters and weeks, a week of days
SEASON: dict[str, int] = {"day": 7, "week": 52, "month": 12, "quarter": 4}
_STEP: dict[str, pd.DateOffset] = {
    "day": pd.DateOffset(days=1),
    "week": pd.DateOffset(days=7),
    "month": pd.DateOffset(months=1),
    "quarter": pd.DateOffset(months=3),
}


@dataclass(frozen=True)
class Series:
    """Groups × periods: ``keys`` (one row per group: the ``by`` columns), ``starts`` (UTC
    period starts of the axis), ``values`` and ``variance`` (NaN: missing or outside), the
    records each group rests on (``records``)."""

    keys: pd.DataFrame
    starts: pd.DatetimeIndex
    values: np.ndarray
    variance: np.ndarray | None
    records: np.ndarray


def next_starts(last: pd.Timestamp, period: str, steps: int) -> pd.DatetimeIndex:
    """The starts of the ``steps`` periods after the one starting at ``last``."""
    out = [last + _STEP[period] * (h + 1) for h in range(steps)]
    return pd.DatetimeIndex(out).tz_convert("UTC") if out else pd.DatetimeIndex([], tz="UTC")


def sums(source: Source, query: Query, measure: str) -> pd.DataFrame:
    """Additive sums per group and period: the rollup's frames for the four estimates, a count
    (``n``) for the volumes."""
    if measure == "gap":
        return gap_sums(source, query)
    if measure in ("nps", "csat", "ces"):
        return metric_sums(source, query)
    if measure == "feedback":
        t = dims.query_rows(source, query)
        return dims.aggregate(t, query.keys, {"n": count_where(t)})
    if "source" in query.dimensions:
        raise AnalyticsQueryError(
            "interaction volumes cannot be grouped or filtered by source (a property of "
            "feedback); allowed: " + ", ".join(d for d in dims.DIMENSIONS if d != "source")
        )
    rows = interaction_rows(source, query.dimensions, "duration_minutes")
    t = dims.apply_query(rows, query)
    return dims.aggregate(t, query.keys, {"n": count_where(t)})


def _value_and_counts(frame: pd.DataFrame, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """Each row's value (NaN without answers) and the answers it rests on."""
    with np.errstate(all="ignore"):
        if measure == "gap":
            n = frame["n"].to_numpy(float)
            return np.where(n > 0, frame["sum_gap"] / np.maximum(n, 1), np.nan), n
        if measure == "nps":
            n = frame["nps_n"].to_numpy(float)
            share = (frame["promoters"] - frame["detractors"]).to_numpy(float)
            return np.where(n > 0, 100 * share / np.maximum(n, 1), np.nan), n
        if measure == "csat":
            n = frame["csat_n"].to_numpy(float)
            return np.where(n > 0, frame["csat_top2"] / np.maximum(n, 1), np.nan), n
        if measure == "ces":
            n = frame["ces_n"].to_numpy(float)
            return np.where(n > 0, frame["sum_ces"] / np.maximum(n, 1), np.nan), n
    n = frame["n"].to_numpy(float)
    return n, n


def _unit_variance(frame: pd.DataFrame, measure: str) -> float:
    """The variance of one answer, pooled over a group's periods (NaN when unknown)."""
    with np.errstate(all="ignore"):
        if measure in ("gap", "ces"):
            n, s, ss = (
                ("n", "sum_gap", "sumsq_gap") if measure == "gap" else ("ces_n", "sum_ces",
                                                                       "sumsq_ces")
            )  # fmt: skip
            cnt = frame[n].to_numpy(float)
            within = frame[ss].to_numpy(float) - frame[s].to_numpy(float) ** 2 / np.maximum(cnt, 1)
            dof = (cnt - 1).clip(min=0).sum()
            return float(np.maximum(within, 0).sum() / dof) if dof > 0 else np.nan
        if measure == "nps":
            total = frame["nps_n"].sum()
            if total <= 0:
                return np.nan
            p, d = frame["promoters"].sum() / total, frame["detractors"].sum() / total
            return float(100.0**2 * (p + d - (p - d) ** 2))
        total = frame["csat_n"].sum()
        if total <= 0:
            return np.nan
        p = frame["csat_top2"].sum() / total
        return float(p * (1 - p))


def layout(
    frame: pd.DataFrame,
    by: Sequence[str],
    period: str,
    measure: str,
    since: datetime | None,
    until: datetime | None,
    now: datetime | None = None,
) -> Series:
    """The groups' series on one axis of periods, from the first period with data to the last
    complete one: a period that holds ``until`` (or, without it, the present) is unfinished and
    left out, and so is a first period that starts before ``since``."""
    frame = frame.copy()
    value, answers = _value_and_counts(frame, measure)
    frame["_value"], frame["_answers"] = value, answers
    frame = frame[frame["_answers"] > 0] if measure not in VOLUMES else frame[frame["n"] > 0]
    by = list(by)
    cutoff = pd.Timestamp(until or now or datetime.now(UTC))
    if not frame.empty:
        frame["period"] = as_utc(frame["period"])
        last = frame["period"].max()
        if last + _STEP[period] > cutoff:
            frame = frame[frame["period"] < last]
        if since is not None and not frame.empty:
            first = frame["period"].min()
            if first < pd.Timestamp(since):
                frame = frame[frame["period"] > first]
    if frame.empty:
        empty = pd.DataFrame({k: pd.Series([], dtype=object) for k in by})
        return Series(empty, pd.DatetimeIndex([], tz="UTC"), np.empty((0, 0)), None, np.empty(0))
    first, last = frame["period"].min(), frame["period"].max()
    points = [first]
    while points[-1] < last:
        points.append(points[-1] + _STEP[period])
    starts = pd.DatetimeIndex(points)
    position = {ts: i for i, ts in enumerate(starts)}
    if by:
        codes = frame.groupby(by, dropna=False, sort=True).ngroup().to_numpy()
        keys = frame.assign(_g=codes).drop_duplicates("_g").sort_values("_g")[by]
        keys = keys.reset_index(drop=True)
    else:
        codes = np.zeros(len(frame), dtype=int)
        keys = pd.DataFrame(index=[0])
    groups, periods = len(keys), len(starts)
    values = np.full((groups, periods), np.nan)
    variance = None if measure in VOLUMES else np.full((groups, periods), np.nan)
    records = np.zeros(groups)
    cols = [position[ts] for ts in frame["period"]]
    values[codes, cols] = frame["_value"].to_numpy(float)
    for g in range(groups):
        rows = frame[codes == g]
        records[g] = rows["_answers"].sum()
        if variance is not None:
            unit = _unit_variance(rows, measure)
            at = [position[ts] for ts in rows["period"]]
            variance[g, at] = unit / rows["_answers"].to_numpy(float)
    if measure in VOLUMES:  # a group's periods without records count 0 once it has appeared
        seen = np.cumsum(~np.isnan(values), axis=1) > 0
        values = np.where(seen & np.isnan(values), 0.0, values)
    return Series(keys, starts, values, variance, records)


def check_measure(measure: str) -> str:
    if measure not in MEASURES:
        raise AnalyticsQueryError(f"unknown measure {measure!r}; allowed: {', '.join(MEASURES)}")
    return measure


def check_period(period: str | None) -> str:
    if period is None:
        raise AnalyticsQueryError(
            f"a forecast needs a period: give period (one of {', '.join(PERIODS)})"
        )
    return str(dims.check_period(period))


__all__ = [
    "MEASURES",
    "SEASON",
    "VOLUMES",
    "Series",
    "check_measure",
    "check_period",
    "layout",
    "next_starts",
    "sums",
]
