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

The backtest refits everything (selection included) at each of the last ``origins`` periods
and forecasts from there: MASE (Hyndman & Koehler 2006, *IJF* 22(4)) scales the absolute
errors by the in-sample mean absolute error of the seasonal naive forecast of that training
window (naive where the window holds no full season), and the seasonal naive forecast is scored
on the same points for comparison; coverage is the share of actual values inside each interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sp

from corridor.analytics.estimators import ets

LEVELS: tuple[float, ...] = (0.8, 0.95)
#: fewer observations than this: the series' mean instead of a model (ETS(A,N,N) needs 6)
MIN_MODEL = ets.Spec("N", "N").min_obs()
#: periods whose sampling variance sets the expected variance of the next period's estimate
RECENT = 3
#: candidates whose first-grid AICc is within this of the best are refined
SHORTLIST = 6.0
#: the fewest recent one-step errors that set σ² (see :func:`recent_window`)
RECENT_WINDOW = 24


@dataclass(frozen=True)
class BatchForecast:
    """Forecasts of the rows of a matrix: ``mean`` (rows × horizon; the median for a model of
    the logarithm), ``low``/``high`` per level (rows × horizon), the model of each row, the
    observations it rests on and its σ (on the scale it was fitted: the values or their log)."""

    mean: np.ndarray
    low: dict[float, np.ndarray]
    high: dict[float, np.ndarray]
    model: list[str]
    n: np.ndarray
    sigma: np.ndarray
    aicc: np.ndarray


@dataclass(frozen=True)
class SeriesForecast:
    """The forecast of one series: point forecasts, intervals per level, the model chosen."""

    mean: np.ndarray
    low: dict[float, np.ndarray]
    high: dict[float, np.ndarray]
    model: str
    n: int
    sigma: float
    aicc: float


@dataclass(frozen=True)
class Backtest:
    """Rolling-origin accuracy per row: ``mase`` of the forecasts, ``mase_naive`` of the
    seasonal naive forecast on the same points, ``coverage`` per level, ``points`` scored; the
    scaled errors and hits of every point are kept for pooling (``scaled``, ``naive_scaled``,
    ``hits``: lists of arrays, one per row)."""

    mase: np.ndarray
    mase_naive: np.ndarray
    coverage: dict[float, np.ndarray]
    points: np.ndarray
    scaled: list[np.ndarray] = field(repr=False)
    naive_scaled: list[np.ndarray] = field(repr=False)
    hits: dict[float, list[np.ndarray]] = field(repr=False)


def _masks(y: np.ndarray) -> np.ndarray:
    """Observed, missing (between observations) and outside (before the first observation)."""
    seen = ~np.isnan(y)
    started = np.cumsum(seen, axis=1) > 0
    return np.where(seen, ets.OBSERVED, np.where(started, ets.MISSING, ets.OUTSIDE)).astype(np.int8)


def _standardise(y: np.ndarray, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = obs.sum(axis=1)
    with np.errstate(all="ignore"):
        centre = np.where(n > 0, np.nansum(np.where(obs, y, 0.0), axis=1) / np.maximum(n, 1), 0.0)
        dev = np.where(obs, y - centre[:, None], 0.0)
        scale = np.sqrt((dev**2).sum(axis=1) / np.maximum(n, 1))
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    return np.where(obs, (y - centre[:, None]) / scale[:, None], 0.0), centre, scale


@dataclass
class _Choice:
    aicc: np.ndarray
    spec: list[ets.Spec | None]
    log: np.ndarray
    params: dict[str, np.ndarray]
    x0: list[np.ndarray | None]
    sse: np.ndarray


def _select(
    y: np.ndarray, mask: np.ndarray, season: int, log: np.ndarray
) -> tuple[_Choice, dict[bool, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Fit every candidate to every row; keep each row's best by AICc."""
    rows = len(y)
    obs = mask == ets.OBSERVED
    n = obs.sum(axis=1)
    gaps = (mask == ets.MISSING).any(axis=1)
    choice = _Choice(
        aicc=np.full(rows, np.inf),
        spec=[None] * rows,
        log=np.zeros(rows, bool),
        params={k: np.zeros(rows) for k in ("alpha", "beta", "gamma", "phi")},
        x0=[None] * rows,
        sse=np.full(rows, np.nan),
    )
    scaled: dict[bool, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    # the first grid for every candidate; only those near the best are refined
    found: list[tuple[ets.Spec, bool, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    first = np.full(rows, np.inf)
    for logged in (False, True):
        use = log if logged else np.ones(rows, bool)
        if not use.any():
            continue
        with np.errstate(all="ignore"):
            values = np.where(obs & use[:, None], np.log(np.where(obs, y, 1.0)), y) if logged else y
        z, centre, scale = _standardise(values, obs)
        scaled[logged] = (z, centre, scale)
        jacobian = 2 * np.where(obs, values, 0.0).sum(axis=1) if logged else np.zeros(rows)
        for spec in ets.family(season):
            idx = np.flatnonzero(use & (n >= spec.min_obs()) & ~(spec.seasonal & gaps))
            if not len(idx):
                continue
            q, sse = ets.search(spec, z[idx], mask[idx])
            aicc = _aicc(spec, n[idx], sse * scale[idx] ** 2) + jacobian[idx]
            first[idx] = np.minimum(first[idx], aicc)
            found.append((spec, logged, idx, q, sse, aicc))
    for spec, logged, idx, q, sse, aicc in found:
        keep = aicc <= first[idx] + SHORTLIST
        idx, q, sse = idx[keep], q[keep], sse[keep]
        if not len(idx):
            continue
        z, _, scale = scaled[logged]
        p, x0, sse = ets.refine(spec, z[idx], mask[idx], q, sse)
        jacobian = (
            2 * np.where(obs[idx], np.log(np.where(obs[idx], y[idx], 1.0)), 0.0).sum(axis=1)
            if logged
            else 0.0
        )
        aicc = _aicc(spec, n[idx], sse * scale[idx] ** 2) + jacobian
        better = aicc < choice.aicc[idx]
        for j in np.flatnonzero(better):
            r = idx[j]
            choice.aicc[r] = aicc[j]
            choice.spec[r] = spec
            choice.log[r] = logged
            for name in choice.params:
                choice.params[name][r] = getattr(p, name)[j]
            choice.x0[r] = x0[j]
            choice.sse[r] = sse[j]
    return choice, scaled


def _aicc(spec: ets.Spec, n: np.ndarray, sse: np.ndarray) -> np.ndarray:
    """AICc up to a constant of the data (as forecast::ets: n·log SSE + 2k + 2k(k+1)/(n−k−1),
    k the smoothing parameters, initial states and σ²)."""
    k = spec.n_params + 1
    nn = n.astype(float)
    with np.errstate(all="ignore"):
        return nn * np.log(np.maximum(sse, 1e-300)) + 2 * k + 2 * k * (k + 1) / (nn - k - 1)


def _variance(
    errors: np.ndarray, obs: np.ndarray, n: np.ndarray, spec: ets.Spec, season: int
) -> np.ndarray:
    """σ² of the one-step errors, SSE / (n − parameters) as forecast::ets, over the last
    :func:`recent_window` observations only, so a series whose noise grew (or shrank) is
    forecast with the noise it has now; a series no longer than the window uses all of it."""
    window = recent_window(season)
    out = np.empty(len(errors))
    for i in range(len(errors)):
        e = errors[i][obs[i]][-window:]
        out[i] = (e**2).mean() * n[i] / (n[i] - spec.n_params)
    return out


def recent_window(season: int) -> int:
    """Observations whose one-step errors set σ²: four seasons, at least 24."""
    return max(RECENT_WINDOW, 4 * season)


def _quantiles(levels: Sequence[float], df: np.ndarray) -> dict[float, np.ndarray]:
    with np.errstate(all="ignore"):
        return {
            lv: np.where(df >= 1, sp.t.ppf(0.5 + lv / 2, np.maximum(df, 1)), np.nan)
            for lv in levels
        }


def forecast_batch(
    y: np.ndarray,
    horizon: int,
    *,
    season: int = 1,
    levels: Sequence[float] = LEVELS,
    log: bool | np.ndarray = True,
    sampling_variance: np.ndarray | None = None,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> BatchForecast:
    """Forecasts of each row of ``y`` (rows × periods, ``NaN`` missing) from its last column,
    ``horizon`` periods ahead. ``log``: whether a model of the logarithm may be chosen (per
    row or for all; only rows whose values are all positive); ``sampling_variance`` (same
    shape) the variance of each period's value where it is an estimate; ``bounds`` the range
    the values can take (forecasts and intervals are clipped to it). See the module docstring."""
    y = np.atleast_2d(np.asarray(y, dtype=float))
    rows, periods = y.shape
    if horizon < 1:
        raise ValueError("horizon must be at least 1")
    mask = _masks(y)
    obs = mask == ets.OBSERVED
    n = obs.sum(axis=1)
    positive = np.where(obs, y, 1.0).min(axis=1) > 0
    may_log = np.broadcast_to(np.asarray(log, dtype=bool), (rows,)) & positive
    choice, scaled = _select(y, mask, max(1, int(season)), may_log)

    mean = np.full((rows, horizon), np.nan)
    base = np.full(rows, np.nan)  # σ² on the scale fitted
    mult = np.ones((rows, horizon))  # the forecast variance is base · mult
    df = np.full(rows, np.nan)
    names = ["none"] * rows
    last = np.where(obs.any(axis=1), periods - 1 - np.argmax(obs[:, ::-1], axis=1), 0)
    lag = periods - 1 - last  # periods between the last observation and the forecast origin
    for logged, (z, centre, scale) in scaled.items():
        for spec in {s for s in choice.spec if s is not None}:
            idx = np.flatnonzero(
                np.array([s == spec for s in choice.spec]) & (choice.log == logged)
            )
            if not len(idx):
                continue
            p = ets.Params(**{k: v[idx] for k, v in choice.params.items()})
            x0 = np.stack([choice.x0[i] for i in idx])  # type: ignore[misc]
            errors, state = ets.run_filter(spec, z[idx], mask[idx], p, x0)
            means, m = ets.paths(spec, p, state, horizon + int(lag[idx].max()))
            take = lag[idx][:, None] + np.arange(horizon)[None, :]
            mean[idx] = means[:, :horizon] * scale[idx, None] + centre[idx, None]
            extra = ets.state_uncertainty(spec, z[idx], mask[idx], p, horizon)
            mult[idx] = np.take_along_axis(m, take, axis=1) + extra
            base[idx] = _variance(errors, obs[idx], n[idx], spec, season) * scale[idx] ** 2
            df[idx] = n[idx] - spec.n_params
            for i in idx:
                names[i] = spec.name + (" of log" if logged else "")
    # too short for a model: the mean, with the interval of a new observation
    for i in np.flatnonzero((choice.aicc == np.inf) & (n >= 1)):
        vals = y[i, obs[i]]
        mean[i] = vals.mean()
        names[i] = "mean" if len(vals) > 1 else "last value"
        if len(vals) > 1:
            base[i] = vals.var(ddof=1)
            mult[i] = 1 + 1 / len(vals)
            df[i] = len(vals) - 1
    sigma = np.sqrt(base)
    var = base[:, None] * mult
    if sampling_variance is not None:
        sv = np.where(obs, np.asarray(sampling_variance, dtype=float), np.nan)
        for i in np.flatnonzero(~choice.log & (n >= 1)):
            past = sv[i][np.isfinite(sv[i])]
            if not len(past):
                continue
            typical, recent = float(past.mean()), float(past[-RECENT:].mean())
            if np.isfinite(base[i]):  # σ² at least the mean sampling variance
                var[i] = max(base[i], typical) * mult[i] + max(0.0, recent - typical)
            else:  # one observation: its own sampling variance, normal quantiles
                var[i] = recent
                df[i] = np.inf
    q = _quantiles(levels, df)
    low, high = {}, {}
    lo_b, hi_b = bounds
    with np.errstate(all="ignore"):
        sd = np.sqrt(var)
        for lv in levels:
            lo = mean - q[lv][:, None] * sd
            hi = mean + q[lv][:, None] * sd
            if choice.log.any():
                lo = np.where(choice.log[:, None], np.exp(lo), lo)
                hi = np.where(choice.log[:, None], np.exp(hi), hi)
            low[lv] = np.clip(lo, lo_b, hi_b)
            high[lv] = np.clip(hi, lo_b, hi_b)
        point = np.where(choice.log[:, None], np.exp(mean), mean)
    aicc = np.where(np.isfinite(choice.aicc), choice.aicc, np.nan)
    return BatchForecast(np.clip(point, lo_b, hi_b), low, high, names, n, sigma, aicc)


def forecast_series(
    y: Sequence[float] | np.ndarray,
    horizon: int = 6,
    *,
    season: int = 1,
    levels: Sequence[float] = LEVELS,
    log: bool = True,
    sampling_variance: Sequence[float] | np.ndarray | None = None,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> SeriesForecast:
    """Forecast one series ``horizon`` periods ahead (see the module docstring): ``season``
    is the seasonal period (12 for months, 4 for quarters; 1 for none)."""
    sv = None if sampling_variance is None else np.asarray(sampling_variance, float)[None, :]
    b = forecast_batch(
        np.asarray(y, dtype=float)[None, :], horizon, season=season, levels=levels, log=log,
        sampling_variance=sv, bounds=bounds,
    )  # fmt: skip
    return SeriesForecast(
        b.mean[0], {k: v[0] for k, v in b.low.items()}, {k: v[0] for k, v in b.high.items()},
        b.model[0], int(b.n[0]), float(b.sigma[0]), float(b.aicc[0]),
    )  # fmt: skip


# -- backtests ------------------------------------------------------------------------------------
def _naive(train: np.ndarray, steps: int, season: int) -> tuple[np.ndarray, float]:
    """Seasonal naive forecasts of ``steps`` periods after ``train`` (naive without a full
    season) and the in-sample MAE of that method on ``train`` (the MASE scale)."""
    seen = np.flatnonzero(~np.isnan(train))
    lag = season if season > 1 and len(seen) and len(train) - seen[0] > season else 1
    diffs = np.abs(train[lag:] - train[:-lag])
    diffs = diffs[np.isfinite(diffs)]
    scale = float(diffs.mean()) if len(diffs) else np.nan
    out = np.full(steps, np.nan)
    filled = train.copy()
    for j in range(len(filled)):  # carry the last value over missing periods
        if np.isnan(filled[j]) and j > 0:
            filled[j] = filled[j - 1]
    hist = list(filled)
    for h in range(steps):
        hist.append(hist[-lag])
        out[h] = hist[-1]
    return out, scale


def backtest_batch(
    y: np.ndarray,
    horizon: int,
    *,
    origins: int = 12,
    min_train: int = 4,
    season: int = 1,
    levels: Sequence[float] = LEVELS,
    log: bool | np.ndarray = True,
    sampling_variance: np.ndarray | None = None,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> Backtest:
    """Rolling-origin evaluation of :func:`forecast_batch` on each row of ``y``: refit at each
    of the last ``origins`` periods that leave a later observation to score (and at least
    ``min_train`` observations to fit), forecast up to ``horizon`` ahead, score every observed
    period reached. See the module docstring for MASE and coverage."""
    y = np.atleast_2d(np.asarray(y, dtype=float))
    rows, periods = y.shape
    obs = ~np.isnan(y)
    counts = np.cumsum(obs, axis=1)
    members: list[tuple[int, int]] = []
    for r in range(rows):
        ends = [
            o for o in range(periods - 1)
            if counts[r, o] >= min_train and obs[r, o + 1 : o + 1 + horizon].any()
        ]  # fmt: skip
        members += [(r, o) for o in ends[-origins:]] if origins > 0 else []
    scaled: list[list[float]] = [[] for _ in range(rows)]
    naive_scaled: list[list[float]] = [[] for _ in range(rows)]
    hits: dict[float, list[list[float]]] = {lv: [[] for _ in range(rows)] for lv in levels}
    if members:
        train = np.full((len(members), periods), np.nan)
        sv = None if sampling_variance is None else np.full_like(train, np.nan)
        logs = np.broadcast_to(np.asarray(log, dtype=bool), (rows,))
        for j, (r, o) in enumerate(members):
            train[j, : o + 1] = y[r, : o + 1]
            if sv is not None and sampling_variance is not None:
                sv[j, : o + 1] = sampling_variance[r, : o + 1]
        # align every training window's end on the last column: the forecasts start after it
        shift = np.array([periods - 1 - o for _, o in members])
        aligned = np.full_like(train, np.nan)
        sv_aligned = None if sv is None else np.full_like(train, np.nan)
        for j, s in enumerate(shift):
            aligned[j, s:] = train[j, : periods - s]
            if sv_aligned is not None and sv is not None:
                sv_aligned[j, s:] = sv[j, : periods - s]
        fc = forecast_batch(
            aligned, horizon, season=season, levels=levels,
            log=np.array([logs[r] for r, _ in members]), sampling_variance=sv_aligned,
            bounds=bounds,
        )  # fmt: skip
        for j, (r, o) in enumerate(members):
            naive, scale = _naive(y[r, : o + 1], horizon, season)
            for h in range(horizon):
                t = o + 1 + h
                if t >= periods or not obs[r, t] or not np.isfinite(fc.mean[j, h]):
                    continue
                if np.isfinite(scale) and scale > 0:
                    scaled[r].append(abs(y[r, t] - fc.mean[j, h]) / scale)
                    naive_scaled[r].append(abs(y[r, t] - naive[h]) / scale)
                for lv in levels:
                    lo, hi = fc.low[lv][j, h], fc.high[lv][j, h]
                    if np.isfinite(lo) and np.isfinite(hi):
                        hits[lv][r].append(float(lo <= y[r, t] <= hi))
    arrays = [np.asarray(v) for v in scaled]
    naive_arrays = [np.asarray(v) for v in naive_scaled]
    hit_arrays = {lv: [np.asarray(v) for v in hits[lv]] for lv in levels}

    def mean_of(vs: list[np.ndarray]) -> np.ndarray:
        return np.array([v.mean() if len(v) else np.nan for v in vs])

    return Backtest(
        mase=mean_of(arrays),
        mase_naive=mean_of(naive_arrays),
        coverage={lv: mean_of(hit_arrays[lv]) for lv in levels},
        points=np.array([len(v) for v in hit_arrays[levels[0]]] if levels else []),
        scaled=arrays,
        naive_scaled=naive_arrays,
        hits=hit_arrays,
    )


def backtest_series(
    y: Sequence[float] | np.ndarray,
    horizon: int = 6,
    *,
    origins: int = 12,
    season: int = 1,
    levels: Sequence[float] = LEVELS,
    log: bool = True,
    sampling_variance: Sequence[float] | np.ndarray | None = None,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> Backtest:
    """:func:`backtest_batch` of one series."""
    sv = None if sampling_variance is None else np.asarray(sampling_variance, float)[None, :]
    return backtest_batch(
        np.asarray(y, dtype=float)[None, :], horizon, origins=origins, season=season,
        levels=levels, log=log, sampling_variance=sv, bounds=bounds,
    )  # fmt: skip


__all__ = [
    "LEVELS",
    "Backtest",
    "BatchForecast",
    "SeriesForecast",
    "backtest_batch",
    "backtest_series",
    "forecast_batch",
    "forecast_series",
]
