"""Calendar periods on the small aggregated frame: labels, and each row's previous period."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from corridor.analytics.core.errors import AnalyticsQueryError

_STEP: dict[str, pd.DateOffset] = {
    "day": pd.DateOffset(days=1),
    "week": pd.DateOffset(days=7),
    "month": pd.DateOffset(months=1),
    "quarter": pd.DateOffset(months=3),
}


def _step(period: str) -> pd.DateOffset:
    try:
        return _STEP[period]
    except KeyError:
        raise AnalyticsQueryError(
            f"unknown period {period!r}; allowed: {', '.join(_STEP)}"
        ) from None


def as_utc(values: pd.Series) -> pd.Series:
    """Period starts as tz-aware UTC timestamps (engines hand them back naive, in UTC)."""
    s = pd.to_datetime(values)
    if s.dt.tz is None:
        return s.dt.tz_localize("UTC")
    return s.dt.tz_convert("UTC")


def labels(starts: pd.Series, period: str) -> pd.Series:
    """Readable labels: ``2025-03-14`` (day), ``2025-W11`` (ISO week), ``2025-03`` (month),
    ``2025-Q1`` (quarter)."""
    _step(period)
    s = as_utc(starts)
    if s.empty:
        return pd.Series([], index=s.index, dtype=object)
    if period == "day":
        out = s.dt.strftime("%Y-%m-%d")
    elif period == "week":
        iso = s.dt.isocalendar()
        out = iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2)
    elif period == "month":
        out = s.dt.strftime("%Y-%m")
    else:
        out = s.dt.year.astype(str) + "-Q" + s.dt.quarter.astype(str)
    return out.astype(object)


def key_frame(frame: pd.DataFrame, keys: Sequence[str], period: str | None) -> pd.DataFrame:
    """The first columns of a result frame: ``keys`` of the aggregated ``frame`` (its groupings,
    then ``period``) and, with a ``period``, each row's readable ``period_label``."""
    out = frame[list(keys)].copy()
    if period:
        out["period_label"] = labels(frame["period"], period)
    return out


def previous_start(starts: pd.Series, period: str) -> pd.Series:
    """The start of the calendar period before each start."""
    return as_utc(starts) - _step(period)


def align_previous(
    frame: pd.DataFrame, by: Sequence[str], period: str, columns: Sequence[str]
) -> pd.DataFrame:
    """For each row of ``frame`` (one row per group and period), ``columns`` of the same group's
    immediately preceding calendar period, aligned to ``frame``'s index. Where that period has no
    row (no data, or outside the time range), the values are ``NaN``: the change is reported
    against the period just before, never against an older one.

    Missing group labels match each other, so the "missing" group has a history too.
    """
    keys = [*by, "period"]
    here = frame[keys].copy()
    here["period"] = previous_start(frame["period"], period)
    there = frame[[*keys, *columns]].copy()
    there["period"] = as_utc(there["period"])
    for k in by:  # one sentinel for missing labels, so they join like any other label
        here[k] = here[k].astype(object).where(here[k].notna(), _MISSING)
        there[k] = there[k].astype(object).where(there[k].notna(), _MISSING)
    merged = here.merge(there, on=keys, how="left", validate="many_to_one")
    out = merged[list(columns)].astype(float)
    out.index = frame.index
    return out


_MISSING = "\x00missing"


__all__ = ["align_previous", "as_utc", "key_frame", "labels", "previous_start"]
