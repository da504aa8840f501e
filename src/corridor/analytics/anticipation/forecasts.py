"""Forecasts of the gap, NPS, CSAT, CES and volumes of every group, with 80 % and 95 %
intervals and the rolling-origin backtest that says how far to trust them.

For each group (touch point by default) the measure's period series
(:mod:`corridor.analytics.anticipation.series`) is forecast ``horizon`` periods past the last
complete period by :func:`~corridor.analytics.estimators.forecasting.forecast_and_backtest`:
automatic exponential smoothing (ETS) selected by AICc, seasonal where two full seasons are there,
the mean of the series where it is too short for a model, intervals widened where the answers per
period are few and where the group's own out-of-sample errors at the 12 origins before say the
model's intervals are too narrow (split conformal calibration). Every group is also backtested:
the whole procedure (calibration included) refitted at each of the last ``origins`` periods and
scored on what followed — MASE against the seasonal naive forecast on the same points, and the
share of actual values inside the 80 % and 95 % intervals. The method and its validation on real
series: ``docs/anticipation.md``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Unpack

import numpy as np
import pandas as pd

from corridor.analytics.anticipation import series as ser
from corridor.analytics.core import registry, result_columns
from corridor.analytics.core.dimensions import PERIODS, Query, QueryArgs, Source
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.periods import labels
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.estimators.forecasting import CALIBRATION, forecast_and_backtest

METHOD = (
    "per group, the measure's period series forecast by automatic exponential smoothing "
    "(additive-error ETS: none, additive or damped trend; additive season where two full "
    "seasons are observed; volumes also on the log scale), chosen by AICc, maximum likelihood "
    "with least-squares initial states; 80 % and 95 % intervals from the model's forecast "
    "variance with σ² from the recent one-step errors and Student-t quantiles, at least the "
    "sampling variance of the period estimates (widened where the recent periods rest on "
    "fewer answers), widened to the split-conformal quantile of the group's own out-of-sample "
    "errors at the 12 origins before where that is wider (never narrower than the model's; "
    "not with `origins` 0); "
    "under 6 periods, the series' mean. Backtest: the procedure refitted at "
    "each of the last `origins` periods; MASE (scaled by the in-sample seasonal naive error) "
    "for the forecasts and for the seasonal naive forecast on the same points, and the share "
    "of actual values inside each interval"
)
LEVELS = (0.8, 0.95)


@dataclass(frozen=True, eq=False)
class ForecastResult(AnalyticsResult):
    """Forecasts per group and future period.

    ``frame`` columns, in order: the grouping dimensions (``by``); ``period`` (UTC start of the
    forecast period) and ``period_label``; ``step`` (1 = the period after the last complete
    one); ``forecast`` with ``low_80``/``high_80`` and ``low_95``/``high_95``; ``model`` (the
    model chosen for the group); ``n_periods`` (periods observed), ``n`` (records the series
    rests on), ``last_period`` and ``last_value`` (the last observed period and its value);
    the group's backtest: ``mase``, ``mase_naive``, ``coverage_80``, ``coverage_95`` and
    ``backtest_n`` (points scored; 0 when the series is too short to backtest).

    ``extra["backtest"]`` pools the backtest over the groups (mean MASE of the groups that
    have one, mean MASE of the seasonal naive forecast, coverage of all points).
    """


def forecast_table(
    source: Source,
    *,
    measure: str = "gap",
    horizon: int = 6,
    origins: int = 6,
    now: datetime | None = None,
    **args: Unpack[QueryArgs],
) -> ForecastResult:
    """Forecast ``measure`` (:data:`~corridor.analytics.anticipation.series.MEASURES`) per
    group ``horizon`` periods ahead, with the backtest of the last ``origins`` periods; the
    grouping, filters, period and time range of :func:`~corridor.analytics.feedback.gaps.
    gap_table` (a period is required: ``month`` by default). With a backtest, the intervals
    (the forecast's and each backtest origin's) are calibrated by the out-of-sample errors of
    the 12 origins before; ``origins=0`` is the one-fit path: no backtest, and the model's own
    intervals, which nothing here has checked. ``now`` stands for the present (tests): the
    period that holds it is unfinished and left out."""
    query, measure = _query(measure, args)
    _check_horizon(horizon)
    return fit(_series(source, query, measure, now), horizon, origins)


@dataclass(frozen=True)
class Prepared:
    """What a forecast is fitted to: the query as read, the measure and its period series
    (read from the rollup: cheap); :func:`fit` does the rest (the models: most of the time)."""

    query: Query
    measure: str
    series: ser.Series

    def fingerprint(self) -> str:
        """A digest of everything :func:`fit` reads: equal digests, equal forecasts."""
        s = self.series
        h = hashlib.sha256(repr((self.query.describe(), self.measure)).encode())
        h.update(pd.util.hash_pandas_object(s.keys, index=False).to_numpy().tobytes())
        h.update(s.starts.asi8.tobytes())
        for a in (s.values, s.variance, s.records):
            h.update(b"-" if a is None else repr((a.dtype.str, a.shape)).encode())
            if a is not None:
                h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


def prepare(
    source: Source, *, measure: str = "gap", now: datetime | None = None, **args: Unpack[QueryArgs]
) -> Prepared:
    """The query and period series :func:`forecast_table` would fit (see there)."""
    query, measure = _query(measure, args)
    return _series(source, query, measure, now)


def _query(measure: str, args: QueryArgs) -> tuple[Query, str]:
    measure = ser.check_measure(measure)
    args = {"by": ("touchpoint",), **args}
    args["period"] = ser.check_period(args.get("period", "month"))
    return Query.of(args), measure


def _check_horizon(horizon: int) -> None:
    if not 1 <= int(horizon) <= 60:
        raise AnalyticsQueryError(f"horizon must be from 1 to 60, got {horizon!r}")


def _series(source: Source, query: Query, measure: str, now: datetime | None) -> Prepared:
    assert query.period is not None
    sums = ser.sums(source, query, measure)
    s = ser.layout(sums, query.by, query.period, measure, query.since, query.until, now)
    return Prepared(query, measure, s)


def fit(prepared: Prepared, horizon: int = 6, origins: int = 6) -> ForecastResult:
    """The forecasts (and backtest) of a series made by :func:`prepare` (see
    :func:`forecast_table`)."""
    query, measure, s = prepared.query, prepared.measure, prepared.series
    assert query.period is not None
    _check_horizon(horizon)
    season = ser.SEASON[query.period]
    bounds = ser.MEASURES[measure][1]
    log = measure in ser.VOLUMES
    frame = _empty(query)
    summary: dict[str, Any] = {"groups": 0, "points": 0, "mase": None, "mase_naive": None,
                               "coverage_80": None, "coverage_95": None}  # fmt: skip
    if len(s.keys):
        fc, bt = forecast_and_backtest(
            s.values, horizon, origins=origins, season=season, levels=LEVELS, log=log,
            sampling_variance=s.variance, bounds=bounds,
            calibration=CALIBRATION if origins > 0 else 0,
        )  # fmt: skip
        frame = _frame(query, s, fc, bt, horizon)
        summary = _pool(bt, len(s.keys))
    return ForecastResult(
        frame=frame,
        n=int(s.records.sum()) if len(s.records) else 0,
        confidence=0.95,
        method=METHOD,
        query=query.describe(),
        extra={
            "measure": measure,
            "horizon": int(horizon),
            "season": season,
            "backtest": summary,
        },
    )


_COLUMNS = (
    "step", "forecast", "low_80", "high_80", "low_95", "high_95", "model", "n_periods", "n",
    "last_period", "last_value", "mase", "mase_naive", "coverage_80", "coverage_95",
    "backtest_n",
)  # fmt: skip


def _empty(query: Query) -> pd.DataFrame:
    cols: dict[str, Any] = {k: pd.Series([], dtype=object) for k in query.by}
    cols["period"] = pd.Series([], dtype="datetime64[ns, UTC]")
    cols["period_label"] = pd.Series([], dtype=object)
    for c in _COLUMNS:
        kind = {"model": object, "last_period": object}.get(c, float)
        cols[c] = pd.Series([], dtype=kind)
    return pd.DataFrame(cols)


def _frame(query: Query, s: ser.Series, fc: Any, bt: Any, horizon: int) -> pd.DataFrame:
    assert query.period is not None
    groups = len(s.keys)
    future = ser.next_starts(s.starts[-1], query.period, horizon)
    rep = np.repeat(np.arange(groups), horizon)
    out = s.keys.iloc[rep].reset_index(drop=True) if query.by else pd.DataFrame(index=rep)
    out = out.reset_index(drop=True)
    starts = pd.Series(np.tile(future, groups))
    out["period"] = pd.to_datetime(starts, utc=True)
    out["period_label"] = labels(out["period"], query.period).to_numpy()
    out["step"] = np.tile(np.arange(1, horizon + 1), groups)
    out["forecast"] = fc.mean.reshape(-1)
    for lv in LEVELS:
        tag = round(lv * 100)
        out[f"low_{tag}"] = fc.low[lv].reshape(-1)
        out[f"high_{tag}"] = fc.high[lv].reshape(-1)
    out["model"] = np.repeat(np.array(fc.model, dtype=object), horizon)
    out["n_periods"] = np.repeat(fc.n, horizon).astype("int64")
    out["n"] = np.repeat(s.records, horizon).astype("int64")
    observed = ~np.isnan(s.values)
    last = np.where(observed.any(axis=1), s.values.shape[1] - 1 - np.argmax(observed[:, ::-1],
                                                                           axis=1), 0)  # fmt: skip
    last_label = labels(pd.Series(s.starts[last]), query.period).to_numpy()
    out["last_period"] = np.repeat(last_label, horizon)
    out["last_value"] = np.repeat(s.values[np.arange(groups), last], horizon)
    out["mase"] = np.repeat(bt.mase, horizon)
    out["mase_naive"] = np.repeat(bt.mase_naive, horizon)
    out["coverage_80"] = np.repeat(bt.coverage[0.8], horizon)
    out["coverage_95"] = np.repeat(bt.coverage[0.95], horizon)
    out["backtest_n"] = np.repeat(bt.points, horizon).astype("int64")
    return out


def _pool(bt: Any, groups: int) -> dict[str, Any]:
    """The backtest over every group: mean MASE (of groups with one) and pooled coverage."""

    def mean(values: np.ndarray) -> float | None:
        v = values[np.isfinite(values)]
        return float(v.mean()) if len(v) else None

    hits = {lv: np.concatenate([h for h in bt.hits[lv]] or [np.empty(0)]) for lv in LEVELS}
    return {
        "groups": groups,
        "points": len(hits[0.8]),
        "mase": mean(bt.mase),
        "mase_naive": mean(bt.mase_naive),
        "coverage_80": float(hits[0.8].mean()) if len(hits[0.8]) else None,
        "coverage_95": float(hits[0.95].mean()) if len(hits[0.95]) else None,
    }


FORECAST = registry.register(
    registry.Analysis(
        "forecast",
        "Forecasts with intervals and backtests",
        forecast_table,
        path="/forecast",
        command=("forecast",),
        tag="anticipation",
        description="The mean gap, NPS, CSAT, CES, feedback volume or interaction volume of "
        "each group forecast `horizon` periods ahead with 80 % and 95 % intervals (automatic "
        "exponential smoothing chosen by AICc), and the rolling-origin backtest of the last "
        "`origins` periods that says how far to trust it: MASE against the seasonal naive "
        "forecast and the observed coverage of each interval. The unfinished current period is "
        "left out. Filter by any dimension (`region=north`).",
        by=registry.by_param(("touchpoint",)),
        period=registry.Param(
            "period", "str", "month", "the period of the series forecast", tuple(PERIODS)
        ),
        filters=registry.DIMENSION_NAMES,
        confidence=False,
        params=(
            registry.Param(
                "measure", "str", "gap", "what to forecast: " + "; ".join(
                    f"{k}: {v[0]}" for k, v in ser.MEASURES.items()
                ), tuple(ser.MEASURES),
            ),
            registry.Param("horizon", "int", 6, "periods ahead", ge=1, le=60),
            registry.Param(
                "origins", "int", 6, "backtest origins: the last periods the forecast is "
                "refitted at and scored from; with a backtest, the intervals are calibrated by "
                "the out-of-sample errors of the 12 origins before each (0: no backtest, and "
                "the model's own intervals)", ge=0, le=36,
            ),
        ),
        extras=("measure", "horizon", "season", "backtest"),
        brief=("step", "forecast", "low_80", "high_80", "low_95", "high_95", "model", "mase",
               "coverage_80"),
        columns=result_columns.described(
            "step:int periods after the last complete one (1 = the next)",
            "forecast point forecast (the median for a model of the logarithm)",
            "low_80 lower end of the 80 % prediction interval",
            "high_80 upper end of the 80 % prediction interval",
            "low_95 lower end of the 95 % prediction interval",
            "high_95 upper end of the 95 % prediction interval",
            "model:str the model chosen for the group (ETS(error,trend,season), mean, last value)",
            "n_periods:int periods observed in the group's series",
            "n:int records the group's series rests on (answers, or records counted)",
            "last_period:str the last observed period",
            "last_value the measure in the last observed period",
            "mase backtest MASE of the forecasts (below 1: better than the in-sample naive)",
            "mase_naive backtest MASE of the seasonal naive forecast on the same points",
            "coverage_80 share of backtest values inside their 80 % interval",
            "coverage_95 share of backtest values inside their 95 % interval",
            "backtest_n:int backtest points scored",
        ),
    )
)  # fmt: skip


__all__ = ["FORECAST", "LEVELS", "ForecastResult", "Prepared", "fit", "forecast_table", "prepare"]
