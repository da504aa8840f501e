"""Early warnings read from the forecasts (:mod:`corridor.analytics.anticipation.forecasts`).

* :func:`crossing`: the first period, within ``horizon`` periods, at which a group's forecast
  crosses a line — under ``below``, over ``above``, or at ``ratio`` times the last observed
  period's value (2: doubles; 0.5: halves) — read on the point forecast (``bound="point"``,
  the median: more likely than not) or on the far side of the 80 % interval (``"interval"``:
  the whole band beyond the line, at least 90 % likely under the model). A group whose last
  observed period is already beyond a fixed line has crossed it already: that is a threshold
  rule's business, not a warning. The closed loop's ``forecast`` rules fire on it.
* :func:`worsening`: whether a touch point's mean gap is forecast to worsen — the forecast
  falls over the horizon (a trend the model chose, not a last period pulled back to the level)
  and ends below the last observed period by more than the noise, the half-width of the 80 %
  interval of one period's value. The overview marks such cards.
* :func:`evidence`: what a warning carries: every forecast period with its 80 % and 95 %
  bounds, the model, the backtest and n.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pandas as pd

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.numbers import float_or_none

#: which side of the forecast a crossing is read on
BOUNDS: tuple[str, ...] = ("point", "interval")
#: each measure in words
LABELS: dict[str, str] = {
    "gap": "mean gap",
    "nps": "NPS",
    "csat": "CSAT",
    "ces": "CES",
    "feedback": "feedback volume",
    "interactions": "interaction volume",
}
#: the periods ahead the overview looks for a worsening gap
WORSEN_HORIZON = 3
_STEP_COLUMNS = ("step", "forecast", "low_80", "high_80", "low_95", "high_95")
_BACKTEST = ("mase", "mase_naive", "coverage_80", "coverage_95", "backtest_n")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def groups(frame: pd.DataFrame, by: Sequence[str]) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """Each group of a forecast frame: its ``by`` values and its rows in step order."""
    if frame.empty:
        return
    by = list(by)
    if not by:
        yield {}, frame.sort_values("step")
        return
    for key, rows in frame.groupby(by, dropna=False, sort=True):
        values: tuple[Any, ...] = key if isinstance(key, tuple) else (key,)
        clean = {b: (None if _missing(v) else v) for b, v in zip(by, values, strict=True)}
        yield clean, rows.sort_values("step")


def line(
    last: float | None, *, below: float | None, above: float | None, ratio: float | None
) -> tuple[float, str] | None:
    """(the value to cross, ``down`` or ``up``); None when a ratio has no positive baseline."""
    if ratio is not None:
        if last is None or last <= 0:
            return None
        return ratio * last, "up" if ratio > 1 else "down"
    if below is not None:
        return float(below), "down"
    if above is not None:
        return float(above), "up"
    raise ValueError("a crossing needs below, above or ratio")


def crossing(
    rows: pd.DataFrame,
    *,
    horizon: int,
    below: float | None = None,
    above: float | None = None,
    ratio: float | None = None,
    bound: str = "point",
) -> dict[str, Any] | None:
    """The first forecast row (as a dict, with ``target`` and ``direction``) at which one
    group's forecast crosses the line within ``horizon`` steps; None if it does not (see the
    module notes)."""
    if rows.empty or bound not in BOUNDS:
        return None
    last = float_or_none(rows["last_value"].iloc[0])
    drawn = line(last, below=below, above=above, ratio=ratio)
    if drawn is None or last is None:
        return None
    target, direction = drawn
    if ratio is None and (last < target if direction == "down" else last > target):
        return None  # crossed already
    for r in rows[rows["step"] <= horizon].to_dict("records"):
        if bound == "point":
            value = float_or_none(r["forecast"])
        else:
            value = float_or_none(r["high_80"] if direction == "down" else r["low_80"])
        if value is None:
            continue
        if ratio is not None:
            hit = value <= target if direction == "down" else value >= target
        else:
            hit = value < target if direction == "down" else value > target
        if hit:
            plain = {str(k): _plain(v) for k, v in r.items()}
            return {**plain, "target": target, "direction": direction, "read": value}
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float):  # numpy's float64 too: a plain float for JSON
        return float(value) if math.isfinite(value) else None
    if hasattr(value, "item"):  # other numpy scalars
        return _plain(value.item())
    return value


def evidence(rows: pd.DataFrame, *, horizon: int | None = None) -> dict[str, Any]:
    """One group's forecast as a warning carries it: each period (``period``, its label, the
    step, the point forecast and the 80 % and 95 % bounds), the model, the last observed period
    and value, n (records the series rests on), periods observed, and the backtest (MASE, the
    seasonal naive's MASE, the observed coverage of each interval, points scored)."""
    if rows.empty:
        return {}
    use = rows if horizon is None else rows[rows["step"] <= horizon]
    first = rows.iloc[0]
    return {
        "model": _plain(first["model"]),
        "n": _plain(first["n"]),
        "n_periods": _plain(first["n_periods"]),
        "last_period": _plain(first["last_period"]),
        "last_value": _plain(first["last_value"]),
        "backtest": {k: _plain(first[k]) for k in _BACKTEST},
        "forecast": [
            {
                "period": _plain(r["period"]),
                "period_label": _plain(r["period_label"]),
                **{k: _plain(r[k]) for k in _STEP_COLUMNS},
            }
            for r in use.to_dict("records")
        ],
    }


def worsening(rows: pd.DataFrame, horizon: int = WORSEN_HORIZON) -> dict[str, Any] | None:
    """The row at ``horizon`` (or the last one before it) of a gap forecast that worsens beyond
    the noise (see the module notes), with ``drop`` (last observed − forecast) and ``noise``
    (half the 80 % interval of one period); None when it does not."""
    use = rows[rows["step"] <= horizon]
    if len(use) < 2:
        return None
    first, end = use.iloc[0], use.iloc[-1]
    last = float_or_none(first["last_value"])
    f1, fh = float_or_none(first["forecast"]), float_or_none(end["forecast"])
    lo, hi = float_or_none(first["low_80"]), float_or_none(first["high_80"])
    if None in (last, f1, fh, lo, hi):
        return None
    assert last is not None and f1 is not None and fh is not None
    assert lo is not None and hi is not None
    noise = (hi - lo) / 2
    drop = last - fh
    if not (fh < f1 and drop > noise):
        return None
    return {**{str(k): _plain(v) for k, v in end.to_dict().items()}, "drop": drop, "noise": noise}


def describe(get: Callable[[str], Any]) -> str:
    """A forecast rule in words, from ``get`` (a definition value or its default)."""
    period = get("period")
    if get("ratio") is not None:
        what = f"reach {float(get('ratio')):g}× its last {period}"
    elif get("below") is not None:
        what = f"fall below {float(get('below')):g}"
    else:
        what = f"rise above {float(get('above')):g}"
    band = " (the whole 80 % band)" if get("bound") == "interval" else ""
    measure = get("measure")
    return (
        f"{LABELS.get(measure, measure)} forecast to {what} within {get('horizon')} {period}s{band}"
    )


def check_definition(d: dict[str, Any]) -> None:
    """Check (and normalise) what a forecast rule takes: ``measure``, exactly one of ``below``,
    ``above`` and ``ratio``, ``horizon``, ``bound``, ``period``, ``by``, ``min_n`` and
    ``min_periods``; :class:`AnalyticsQueryError` says what is wrong."""
    from corridor.analytics.anticipation.series import MEASURES
    from corridor.analytics.core import registry
    from corridor.analytics.core.dimensions import PERIODS

    if d.get("measure", "gap") not in MEASURES:
        raise AnalyticsQueryError(
            f"measure must be one of {', '.join(MEASURES)}, got {d['measure']!r}"
        )
    if sum(k in d for k in ("below", "above", "ratio")) != 1:
        raise AnalyticsQueryError(
            "a forecast rule needs exactly one of below, above and ratio (2: doubles)"
        )
    if d.get("ratio") == 1:
        raise AnalyticsQueryError("ratio 1 is no change: 2 fires on a doubling, 0.5 on a halving")
    for key in ("horizon", "min_periods"):
        if key in d:
            if float(d[key]) != int(d[key]):
                raise AnalyticsQueryError(f"{key} must be a whole number, got {d[key]}")
            d[key] = int(d[key])
    if d.get("bound", "point") not in BOUNDS:
        raise AnalyticsQueryError(f"bound must be one of {', '.join(BOUNDS)}, got {d['bound']!r}")
    if d.get("period", "month") not in PERIODS:
        raise AnalyticsQueryError(f"period must be one of {', '.join(PERIODS)}")
    by = registry.get("forecast").by
    choices = by.choices if by is not None else ()
    bad = [b for b in d.get("by", ()) if choices and b not in choices]
    if bad:
        raise AnalyticsQueryError(f"a forecast cannot group by {', '.join(bad)}")


__all__ = [
    "BOUNDS",
    "LABELS",
    "WORSEN_HORIZON",
    "check_definition",
    "crossing",
    "describe",
    "evidence",
    "groups",
    "line",
    "worsening",
]
