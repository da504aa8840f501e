"""Forecasts of plain series with honest intervals, and the backtests that say how far to trust
them.

:func:`forecast_series` forecasts one series (a list of numbers, ``NaN`` for a missing period)
``horizon`` periods ahead with 80 % and 95 % prediction intervals; :func:`backtest_series`
evaluates the same procedure by rolling origin. :func:`forecast_batch` and
:func:`backtest_batch` do the same for many series at once (the rows of a matrix): the analyses
forecast every touch point in one call.

The method (documented in ``docs/anticipation.md``):

1. **Candidates**: the additive-error exponential smoothing models of
   :mod:`corridor.analytics.estimators.ets` — ETS(A,N,N), ETS(A,A,N), ETS(A,Ad,N) and, when the
   series holds two full seasons without gaps, ETS(A,N,A), ETS(A,A,A), ETS(A,Ad,A) — each on the
   values and, for positive series where ``log`` allows it, on their logarithm. A model is a
   candidate only when the series leaves AICc at least two degrees of freedom.
2. **Selection** by AICc (Hurvich & Tsai 1989), the likelihood of a model of the logarithm
   taken back to the scale of the values (its Jacobian, Σ log y), as R's ``forecast::ets``
   selects (Hyndman et al. 2002, *IJF* 18(3)).
3. **Intervals**: the class-1 analytic forecast variance σ²·(1 + Σ c_j²) (Hyndman et al. 2008,
   §6.1) with σ² = SSE / (n − parameters), and Student-t quantiles on those degrees of freedom,
   which widen short series' intervals. A logarithm's interval is taken back by ``exp`` (its
   point forecast is the median). Where each period's value is itself an estimate (a mean gap
   over n answers), ``sampling_variance`` gives its variance: σ² is then at least their mean,
   and a forecast period expected to rest on fewer answers than the history did (the last
   three periods' sampling variance above the mean) has its interval widened by the difference.
4. **Too short for a model** (fewer than 6 observations): the mean of the series with the
   t interval of a new observation, s·√(1 + 1/n); one observation: the value and no interval.
5. **Calibration** by the series' own out-of-sample errors (split conformal prediction with a
   rolling origin: Vovk, Gammerman & Shafer 2005, *Algorithmic Learning in a Random World*;
   Lei, G'Sell, Rinaldo, Tibshirani & Wasserman 2018, *JASA* 113(523), with the normalised
   scores of their §5.2; on a sliding window of recent errors as Xu & Xie 2021, *ICML*): the
   whole procedure is refitted at the :data:`CALIBRATION` (12) backtest origins before the
   forecast origin, each with at least ``min_train`` observations; each of their forecasts of
   a period up to the forecast origin gives a score: its absolute error, on the forecast's
   scale (the logarithm's for a model of the log), divided by that forecast's model growth of
   the standard deviation since its last observation (``sd_h / sd_1``) and by the forecast
   origin's one-step standard deviation — every step's error in one-step units of the forecast
   being calibrated, all steps pooled. Each level's interval is drawn with the larger of the
   model's quantile and the ⌈(n + 1)·level⌉-th smallest of the n scores, times the forecast's
   own standard deviation at each step — never narrower than the model's interval — and with
   the model's where fewer than :data:`MIN_SCORES` scores exist. Only periods up to the forecast
   origin are used, so a backtest origin's intervals never see its own test points. This
   corrects what the model cannot know: noise that grew after the window σ² is read from, a
   misspecified model, the estimation error of the smoothing parameters and of the choice.

The backtest refits everything (selection and calibration included) at each of the last
``origins`` periods and forecasts from there: MASE (Hyndman & Koehler 2006, *IJF* 22(4)) scales
the absolute errors by the in-sample mean absolute error of the seasonal naive forecast of that
training window (naive where the window holds no full season), and the seasonal naive forecast
is scored on the same points for comparison; coverage is the share of actual values inside each
interval. :func:`forecast_and_backtest` fits the windows of both once: the backtest's origins
are the ones that calibrate the forecast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict, Unpack, overload

import numpy as np

from corridor.analytics.estimators.forecast_backtest import Backtest, score
from corridor.analytics.estimators.forecast_conformal import (
    CALIBRATION,
    MIN_SCORES,
    calibrate,
    conformal_quantile,
)
from corridor.analytics.estimators.forecast_fit import fit_rows, intervals

LEVELS: tuple[float, ...] = (0.8, 0.95)
#: the fewest observations a backtest or calibration origin is refitted on
MIN_TRAIN = 4


@dataclass(frozen=True)
class BatchForecast:
    """Forecasts of the rows of a matrix: ``mean`` (rows × horizon; the median for a model of
    the logarithm), ``low``/``high`` per level (rows × horizon), the model of each row, the
    observations it rests on and its σ (on the scale it was fitted: the values or their log);
    ``widening`` per level, how many times the model's interval the calibrated one is (1: the
    model's), and ``calibration_n`` the out-of-sample errors that calibrated it."""

    mean: np.ndarray
    low: dict[float, np.ndarray]
    high: dict[float, np.ndarray]
    model: list[str]
    n: np.ndarray
    sigma: np.ndarray
    aicc: np.ndarray
    widening: dict[float, np.ndarray]
    calibration_n: np.ndarray


@dataclass(frozen=True)
class SeriesForecast:
    """The forecast of one series: point forecasts, intervals per level, the model chosen, and
    the calibration of its intervals (as :class:`BatchForecast`)."""

    mean: np.ndarray
    low: dict[float, np.ndarray]
    high: dict[float, np.ndarray]
    model: str
    n: int
    sigma: float
    aicc: float
    widening: dict[float, float]
    calibration_n: int


class SeriesOptions(TypedDict, total=False):
    """How a series is forecast (:func:`forecast_series`, :func:`backtest_series`):
    ``season`` the seasonal period (12 for months, 4 for quarters; 1, the default, for none);
    ``levels`` the intervals' levels (default :data:`LEVELS`); ``log`` whether a model of the
    logarithm may be chosen (only for a series whose values are all positive; default True);
    ``bounds`` the range the values can take (forecasts and intervals are clipped to it);
    ``calibration`` how many earlier origins are refitted for the out-of-sample errors that
    calibrate the intervals (default :data:`CALIBRATION`; 0: the model's intervals)."""

    season: int
    levels: Sequence[float]
    log: bool
    bounds: tuple[float, float]
    calibration: int


class BatchOptions(TypedDict, total=False):
    """How the rows of a matrix are forecast (:func:`forecast_batch`): as
    :class:`SeriesOptions`, with ``log`` per row or for all, ``sampling_variance`` (the shape
    of ``y``) the variance of each period's value where it is an estimate, and ``min_train``
    the fewest observations an origin refitted for calibration (or a backtest) rests on
    (default :data:`MIN_TRAIN`)."""

    season: int
    levels: Sequence[float]
    log: bool | np.ndarray
    sampling_variance: np.ndarray | None
    bounds: tuple[float, float]
    calibration: int
    min_train: int


class BacktestOptions(BatchOptions, total=False):
    """:class:`BatchOptions` and ``origins``, the last origins a backtest refits at (default
    12)."""

    origins: int


def _run(
    y: np.ndarray,
    horizon: int,
    *,
    final: bool,
    origins: int = 12,
    calibration: int = CALIBRATION,
    min_train: int = MIN_TRAIN,
    season: int = 1,
    levels: Sequence[float] = LEVELS,
    log: bool | np.ndarray = True,
    sampling_variance: np.ndarray | None = None,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> tuple[BatchForecast | None, Backtest]:
    """The forecast from the last column (``final``) and the backtest of the last ``origins``
    origins of each row of ``y``, from one fit of every window they need: theirs and, for each
    of them, the ``calibration`` backtest origins before it, whose out-of-sample errors calibrate
    its intervals (see the module docstring)."""
    y = np.atleast_2d(np.asarray(y, dtype=float))
    rows, periods = y.shape
    if horizon < 1:
        raise ValueError("horizon must be at least 1")
    obs = ~np.isnan(y)
    counts = np.cumsum(obs, axis=1)
    logs = np.broadcast_to(np.asarray(log, dtype=bool), (rows,))
    calibration = max(0, int(calibration))
    if sum(min(a, horizon) for a in range(1, calibration + 1)) < MIN_SCORES:
        calibration = 0  # too few errors could ever be scored (horizon 1): the model's intervals
    members: list[tuple[int, int]] = []  # (row, origin): every window fitted
    ends: list[list[int]] = []  # per row, the origins a backtest may refit at
    scored: list[list[int]] = []  # per row, the backtest's origins
    for r in range(rows):
        e = [
            o for o in range(periods - 1)
            if counts[r, o] >= min_train and obs[r, o + 1 : o + 1 + horizon].any()
        ]  # fmt: skip
        mine = e[-origins:] if origins > 0 else []
        if mine or final:  # the calibrated origins, and the ones before them that calibrate them
            members += [(r, o) for o in e[max(0, len(e) - len(mine) - calibration) :]]
        if final:
            members.append((r, periods - 1))
        ends.append(e)
        scored.append(mine)
    at = {m: j for j, m in enumerate(members)}
    at = {m: j for j, m in enumerate(members)}
    if not members:  # nothing to fit (no origin to score): an empty backtest
        none = {lv: np.empty((0, horizon)) for lv in levels}
        return None, score(y, horizon, season, levels, scored, at, np.empty((0, horizon)), none,
                           none)  # fmt: skip
    if members == [(r, periods - 1) for r in range(rows)]:  # only the last columns: no copies
        aligned, sv_aligned = y, sampling_variance
    else:  # every window's end on the last column: its forecasts start after it
        aligned = np.full((len(members), periods), np.nan)
        sv_aligned = None if sampling_variance is None else np.full_like(aligned, np.nan)
        for j, (r, o) in enumerate(members):
            shift = periods - 1 - o
            aligned[j, shift:] = y[r, : o + 1]
            if sv_aligned is not None and sampling_variance is not None:
                sv_aligned[j, shift:] = sampling_variance[r, : o + 1]
    fit = fit_rows(
        aligned, horizon, season, np.array([logs[r] for r, _ in members], dtype=bool), sv_aligned
    )
    calibrated = {(r, o) for r in range(rows) for o in scored[r]}
    calibrated |= {(r, periods - 1) for r in range(rows)} if final else set()
    k, widened, used = calibrate(fit, y, members, ends, calibrated, calibration, levels)
    point, low, high = intervals(fit, k, levels, bounds)

    forecast = None
    if final:
        last = np.array([at[(r, periods - 1)] for r in range(rows)], dtype=np.int64)
        forecast = BatchForecast(
            point[last], {lv: v[last] for lv, v in low.items()},
            {lv: v[last] for lv, v in high.items()}, [fit.model[j] for j in last], fit.n[last],
            fit.sigma[last], fit.aicc[last], {lv: v[last] for lv, v in widened.items()},
            used[last],
        )  # fmt: skip
    return forecast, score(y, horizon, season, levels, scored, at, point, low, high)


@overload
def _row(values: Sequence[float] | np.ndarray) -> np.ndarray: ...
@overload
def _row(values: None) -> None: ...
def _row(values: Sequence[float] | np.ndarray | None) -> np.ndarray | None:
    """One series as the single row of a matrix (None stays None)."""
    return None if values is None else np.asarray(values, dtype=float)[None, :]


def forecast_batch(y: np.ndarray, horizon: int, **options: Unpack[BatchOptions]) -> BatchForecast:
    """Forecasts of each row of ``y`` (rows × periods, ``NaN`` missing) from its last column,
    ``horizon`` periods ahead, as :class:`BatchOptions` say. See the module docstring."""
    fc, _ = _run(y, horizon, final=True, **options, origins=0)
    assert fc is not None
    return fc


def forecast_series(
    y: Sequence[float] | np.ndarray,
    horizon: int = 6,
    *,
    sampling_variance: Sequence[float] | np.ndarray | None = None,
    **options: Unpack[SeriesOptions],
) -> SeriesForecast:
    """Forecast one series ``horizon`` periods ahead (see the module docstring), as
    :class:`SeriesOptions` say; ``sampling_variance`` as :class:`BatchOptions`."""
    b = forecast_batch(_row(y), horizon, sampling_variance=_row(sampling_variance), **options)
    return SeriesForecast(
        b.mean[0], {k: v[0] for k, v in b.low.items()}, {k: v[0] for k, v in b.high.items()},
        b.model[0], int(b.n[0]), float(b.sigma[0]), float(b.aicc[0]),
        {k: float(v[0]) for k, v in b.widening.items()}, int(b.calibration_n[0]),
    )  # fmt: skip


def backtest_batch(y: np.ndarray, horizon: int, **options: Unpack[BacktestOptions]) -> Backtest:
    """Rolling-origin evaluation of :func:`forecast_batch` on each row of ``y``: refit at each
    of the last ``origins`` periods that leave a later observation to score (and at least
    ``min_train`` observations to fit), forecast up to ``horizon`` ahead, score every observed
    period reached. Each origin's intervals are calibrated as :func:`forecast_batch` calibrates
    them, from the ``calibration`` origins before it (refitted too) and only the errors of
    periods up to it. See the module docstring for MASE and coverage."""
    return _run(y, horizon, final=False, **options)[1]


def forecast_and_backtest(
    y: np.ndarray, horizon: int, **options: Unpack[BacktestOptions]
) -> tuple[BatchForecast, Backtest]:
    """:func:`forecast_batch` and :func:`backtest_batch` of the same rows from one fit: the
    windows the backtest refits are the ones that calibrate the forecast's intervals."""
    fc, bt = _run(y, horizon, final=True, **options)
    assert fc is not None
    return fc, bt


def backtest_series(
    y: Sequence[float] | np.ndarray,
    horizon: int = 6,
    *,
    origins: int = 12,
    sampling_variance: Sequence[float] | np.ndarray | None = None,
    **options: Unpack[SeriesOptions],
) -> Backtest:
    """:func:`backtest_batch` of one series."""
    return backtest_batch(
        _row(y),
        horizon,
        origins=origins,
        sampling_variance=_row(sampling_variance),
        **options,
    )


__all__ = [
    "CALIBRATION",
    "LEVELS",
    "MIN_SCORES",
    "MIN_TRAIN",
    "Backtest",
    "BacktestOptions",
    "BatchForecast",
    "BatchOptions",
    "SeriesForecast",
    "SeriesOptions",
    "backtest_batch",
    "backtest_series",
    "conformal_quantile",
    "forecast_and_backtest",
    "forecast_batch",
    "forecast_series",
]
