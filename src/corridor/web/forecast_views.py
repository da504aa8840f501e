"""The forecasts the pages show (issue 16.3): a touch point's mean gap forecast continuing its
trend chart, with its 80 % and 95 % bands, model, backtest and n; and the touch points whose
gap is forecast to worsen, marked on the overview.

Both read the ``forecast`` analysis from the rollup, within the filters the page was given
(already restricted to the user's scope), from the periods complete before the page's window
ends (the latest day with feedback when the window is "all time"): the month that holds it is
unfinished and is the first month forecast.

Fitting every touch point's models (seasonal ones once two years are stored) is most of the
overview's forecast, so the overview keeps what it fitted in a :class:`ForecastCache` the app
owns (``app.state.forecasts``), keyed by a digest of exactly what the fit reads
(:meth:`~corridor.analytics.anticipation.forecasts.Prepared.fingerprint`: the query and every
touch point's monthly series, read from the rollup, which is cheap): a write that changes no
complete month's sums (feedback about the current month, interactions, people) fits nothing
again, and one that does refits. A touch point's one series is cheap and always computed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from typing import Any

from corridor.analytics.anticipation import forecasts, warnings
from corridor.analytics.anticipation.forecasts import forecast_table
from corridor.analytics.feedback import records
from corridor.store import Store
from corridor.web import charts
from corridor.web.window import Window

WORSEN_HORIZON = warnings.WORSEN_HORIZON
#: months forecast on a touch point's page
HORIZON = 3
#: backtest origins reported with a touch point's forecast
ORIGINS = 6


class ForecastCache:
    """Forecasts the pages computed, by key; the least recently used dropped beyond ``size``.
    Thread-safe (two requests computing the same key at once both compute it)."""

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._kept: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        value = compute()
        with self._lock:
            self._kept[key] = value
            self._kept.move_to_end(key)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._kept)


def _until(store: Store, win: Window) -> datetime | None:
    if win.until is not None:
        return win.until
    last = records.latest_at(store)
    if last is None:
        return None
    day = last.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def touchpoint_forecast(
    store: Store, filters: dict[str, list[str | None]], win: Window
) -> dict[str, Any] | None:
    """One touch point's monthly mean gap forecast :data:`HORIZON` months ahead: each month's
    point forecast with its 80 % and 95 % bounds, the model, the last observed month, n, the
    backtest and whether it is forecast to worsen; None without a forecast."""
    until = _until(store, win)
    if until is None:
        return None
    result = forecast_table(
        store, by=[], period="month", filters=filters, until=until, horizon=HORIZON,
        origins=ORIGINS,
    )  # fmt: skip
    if result.frame.empty:
        return None
    rows = result.frame.sort_values("step")
    shown = warnings.evidence(rows)
    return {**shown, "horizon": HORIZON, "worsening": warnings.worsening(rows)}


def with_forecast(chart: dict[str, Any] | None, fc: dict[str, Any] | None) -> dict[str, Any] | None:
    """The trend chart continued by the forecast's bands (unchanged without a forecast)."""
    if chart is None or not fc or not fc["forecast"]:
        return chart
    steps = fc["forecast"]
    start = None
    if fc.get("last_value") is not None and fc.get("last_period"):
        start = (str(fc["last_period"]), float(fc["last_value"]))
    return charts.forecast_band(
        chart,
        [str(s["period_label"]) for s in steps],
        [s["forecast"] for s in steps],
        {
            80: ([s["low_80"] for s in steps], [s["high_80"] for s in steps]),
            95: ([s["low_95"] for s in steps], [s["high_95"] for s in steps]),
        },
        start=start,
    )


def worsening_touchpoints(
    store: Store,
    filters: dict[str, list[str | None]] | None,
    win: Window,
    cache: ForecastCache | None = None,
) -> dict[str, dict[str, Any]]:
    """Touch point → its forecast row where the mean gap is forecast to worsen within
    :data:`~corridor.analytics.anticipation.warnings.WORSEN_HORIZON` months (see
    :func:`~corridor.analytics.anticipation.warnings.worsening`), with the last observed month,
    its value and n. No backtest: the overview stays fast. ``cache``: keep the answer there."""
    until = _until(store, win)
    if until is None:
        return {}
    prepared = forecasts.prepare(store, by=["touchpoint"], period="month", filters=filters,
                                 until=until)  # fmt: skip
    if cache is None:
        return _worsening(prepared)
    key = ("worsening", prepared.fingerprint())
    found: dict[str, dict[str, Any]] = cache.get(key, lambda: _worsening(prepared))
    return found


def _worsening(prepared: forecasts.Prepared) -> dict[str, dict[str, Any]]:
    result = forecasts.fit(prepared, horizon=warnings.WORSEN_HORIZON, origins=0)
    out: dict[str, dict[str, Any]] = {}
    for keys, rows in warnings.groups(result.frame, ["touchpoint"]):
        found = warnings.worsening(rows)
        if found is not None and keys.get("touchpoint") is not None:
            out[str(keys["touchpoint"])] = found
    return out


__all__ = [
    "HORIZON",
    "WORSEN_HORIZON",
    "ForecastCache",
    "touchpoint_forecast",
    "with_forecast",
    "worsening_touchpoints",
]
