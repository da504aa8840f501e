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
#: backtest origins before a forecast origin whose out-of-sample errors calibrate its intervals
CALIBRATION = 12
#: the fewest calibration errors that may widen an interval (fewer: the model's interval): the
#: fewest for which the 95 % conformal rank exists, ⌈(n + 1)·0.95⌉ ≤ n; with n + 1 = 20 the
#: expected coverage of the conformal quantile, ⌈(n + 1)·level⌉ / (n + 1), is the level itself
#: at 80 % and 95 %, where fewer scores overshoot it (n = 12: 11/13 at 80 %)
MIN_SCORES = 19
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


@dataclass(frozen=True)
class _Fit:
    """Forecasts of the rows of a matrix before their intervals: the point forecast on the
    data's scale (``point``, unclipped), the mean and the forecast standard deviation on the
    scale fitted (``centre``, ``sd``; the logarithm's for a model of the log), ``unit`` the
    standard deviation of one step after the last observation without the growth of the
    forecast variance (σ, with the sampling variance where it counts), the degrees of freedom
    of the model's quantiles, and what :class:`BatchForecast` reports."""

    point: np.ndarray
    centre: np.ndarray
    sd: np.ndarray
    unit: np.ndarray
    df: np.ndarray
    log: np.ndarray
    model: list[str]
    n: np.ndarray
    sigma: np.ndarray
    aicc: np.ndarray


def _fit(
    y: np.ndarray,
    horizon: int,
    season: int,
    log: np.ndarray,
    sampling_variance: np.ndarray | None,
) -> _Fit:
    """Steps 1–4 of the module docstring for each row of ``y``, forecast from its last column."""
    rows, periods = y.shape
    mask = _masks(y)
    obs = mask == ets.OBSERVED
    n = obs.sum(axis=1)
    positive = np.where(obs, y, 1.0).min(axis=1) > 0
    choice, scaled = _select(y, mask, max(1, int(season)), log & positive)

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
    unit = base.copy()
    if sampling_variance is not None:
        sv = np.where(obs, np.asarray(sampling_variance, dtype=float), np.nan)
        for i in np.flatnonzero(~choice.log & (n >= 1)):
            past = sv[i][np.isfinite(sv[i])]
            if not len(past):
                continue
            typical, recent = float(past.mean()), float(past[-RECENT:].mean())
            if np.isfinite(base[i]):  # σ² at least the mean sampling variance
                var[i] = max(base[i], typical) * mult[i] + max(0.0, recent - typical)
                unit[i] = max(base[i], typical) + max(0.0, recent - typical)
            else:  # one observation: its own sampling variance, normal quantiles
                var[i] = unit[i] = recent
                df[i] = np.inf
    with np.errstate(all="ignore"):
        point = np.where(choice.log[:, None], np.exp(mean), mean)
        sd = np.sqrt(var)
    aicc = np.where(np.isfinite(choice.aicc), choice.aicc, np.nan)
    return _Fit(point, mean, sd, np.sqrt(unit), df, choice.log.copy(), names, n, sigma, aicc)


def _errors(fit: _Fit, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each forecast's absolute out-of-sample errors divided by its model's growth of the
    forecast standard deviation over the steps since the last observation (``sd_h / unit``),
    so that the errors of every step are in units of a one-step error: on the values and on
    their logarithm (members × horizon; ``NaN`` where nothing was observed; on the log scale
    +∞ where the value or the forecast is not positive: no interval of a model of the log can
    hold it)."""
    with np.errstate(all="ignore"):
        growth = fit.sd / fit.unit[:, None]
        positive = (actual > 0) & (fit.point > 0)
        on_log = np.where(
            positive,
            np.log(np.where(positive, actual, 1.0)) - np.log(np.where(positive, fit.point, 1.0)),
            np.inf,
        )
        usable = np.isfinite(actual) & np.isfinite(fit.point) & np.isfinite(growth) & (growth > 0)
        value = np.where(usable, np.abs(actual - fit.point) / growth, np.nan)
        log = np.where(usable, np.abs(on_log) / growth, np.nan)
    return value, log


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ⌈(n + 1)·level⌉-th smallest of ``n`` scores: the split-conformal quantile (Vovk,
    Gammerman & Shafer 2005; Lei et al. 2018, §2.2), which a new exchangeable score stays under
    with probability at least ``level``. ``inf`` when ``n`` is too small for that rank."""
    s = np.sort(np.asarray(scores, dtype=float))
    rank = int(np.ceil((len(s) + 1) * level))
    return float(s[rank - 1]) if 1 <= rank <= len(s) else np.inf


def _widths(
    levels: Sequence[float], model: dict[float, float], scores: np.ndarray
) -> dict[float, float]:
    """The quantile each level's interval is drawn with, in forecast standard deviations: the
    model's, or the conformal quantile of the calibration ``scores`` where that is larger and
    there are at least :data:`MIN_SCORES` of them — never narrower than the model's interval,
    and never narrower at a level than at a lower one."""
    out: dict[float, float] = {}
    floor = 0.0
    for lv in sorted(levels):
        k = model[lv]
        if len(scores) >= MIN_SCORES and np.isfinite(k):
            q = conformal_quantile(scores, lv)
            if np.isfinite(q):
                k = max(k, q)
        if np.isfinite(k):
            k = max(k, floor)
            floor = k
        out[lv] = k
    return out


def _run(
    y: np.ndarray,
    horizon: int,
    *,
    final: bool,
    origins: int,
    calibration: int,
    min_train: int,
    season: int,
    levels: Sequence[float],
    log: bool | np.ndarray,
    sampling_variance: np.ndarray | None,
    bounds: tuple[float, float],
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
    if not members:  # nothing to fit (no origin to score): an empty backtest
        none = {lv: np.empty((0, horizon)) for lv in levels}
        return None, _score(y, horizon, season, levels, scored, at, np.empty((0, horizon)), none,
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
    fit = _fit(
        aligned, horizon, season, np.array([logs[r] for r, _ in members], dtype=bool), sv_aligned
    )

    # the out-of-sample errors of every window, and the period each error is of
    target = np.array([o for _, o in members])[:, None] + 1 + np.arange(horizon)[None, :]
    row_of = np.array([r for r, _ in members])
    inside = target < periods
    actual = np.where(inside, y[row_of[:, None], np.minimum(target, periods - 1)], np.nan)
    on_values, on_log = _errors(fit, actual)
    model_q = _quantiles(levels, fit.df)
    k = {lv: model_q[lv].copy() for lv in levels}
    widened = {lv: np.ones(len(members)) for lv in levels}
    used = np.zeros(len(members), dtype=np.int64)
    calibrated = {(r, o) for r in range(rows) for o in scored[r]}
    calibrated |= {(r, periods - 1) for r in range(rows)} if final else set()
    for j, (r, o) in enumerate(members):
        if (r, o) not in calibrated:
            continue
        before = ends[r][: np.searchsorted(ends[r], o)]  # the backtest origins before o
        cal = [at[(r, c)] for c in before[max(0, len(before) - calibration) :]]
        if cal and calibration:  # their errors of periods up to o, on o's scale, in its sd
            err, t = (on_log if fit.log[j] else on_values)[cal], target[cal]
            pool = err[(t <= o) & ~np.isnan(err)] / fit.unit[j]
        else:
            pool = np.empty(0)
        if not (np.isfinite(fit.unit[j]) and fit.unit[j] > 0):
            pool = np.empty(0)
        used[j] = len(pool)
        ks = _widths(levels, {lv: float(model_q[lv][j]) for lv in levels}, pool)
        for lv in levels:
            k[lv][j] = ks[lv]
            if np.isfinite(model_q[lv][j]) and model_q[lv][j] > 0:
                widened[lv][j] = ks[lv] / model_q[lv][j]

    lo_b, hi_b = bounds
    low, high = {}, {}
    with np.errstate(all="ignore"):
        for lv in levels:
            half = k[lv][:, None] * fit.sd
            lo, hi = fit.centre - half, fit.centre + half
            if fit.log.any():
                lo = np.where(fit.log[:, None], np.exp(lo), lo)
                hi = np.where(fit.log[:, None], np.exp(hi), hi)
            low[lv] = np.clip(lo, lo_b, hi_b)
            high[lv] = np.clip(hi, lo_b, hi_b)
    point = np.clip(fit.point, lo_b, hi_b)

    forecast = None
    if final:
        last = np.array([at[(r, periods - 1)] for r in range(rows)], dtype=np.int64)
        forecast = BatchForecast(
            point[last], {lv: v[last] for lv, v in low.items()},
            {lv: v[last] for lv, v in high.items()}, [fit.model[j] for j in last], fit.n[last],
            fit.sigma[last], fit.aicc[last], {lv: v[last] for lv, v in widened.items()},
            used[last],
        )  # fmt: skip
    return forecast, _score(y, horizon, season, levels, scored, at, point, low, high)


def forecast_batch(
    y: np.ndarray,
    horizon: int,
    *,
    season: int = 1,
    levels: Sequence[float] = LEVELS,
    log: bool | np.ndarray = True,
    sampling_variance: np.ndarray | None = None,
    bounds: tuple[float, float] = (-np.inf, np.inf),
    calibration: int = CALIBRATION,
    min_train: int = MIN_TRAIN,
) -> BatchForecast:
    """Forecasts of each row of ``y`` (rows × periods, ``NaN`` missing) from its last column,
    ``horizon`` periods ahead. ``log``: whether a model of the logarithm may be chosen (per
    row or for all; only rows whose values are all positive); ``sampling_variance`` (same
    shape) the variance of each period's value where it is an estimate; ``bounds`` the range
    the values can take (forecasts and intervals are clipped to it); ``calibration``: how many
    earlier origins (each with at least ``min_train`` observations) are refitted for the
    out-of-sample errors that calibrate the intervals (0: the model's intervals). See the
    module docstring."""
    fc, _ = _run(
        y, horizon, final=True, origins=0, calibration=calibration, min_train=min_train,
        season=season, levels=levels, log=log, sampling_variance=sampling_variance,
        bounds=bounds,
    )  # fmt: skip
    assert fc is not None
    return fc


def forecast_series(
    y: Sequence[float] | np.ndarray,
    horizon: int = 6,
    *,
    season: int = 1,
    levels: Sequence[float] = LEVELS,
    log: bool = True,
    sampling_variance: Sequence[float] | np.ndarray | None = None,
    bounds: tuple[float, float] = (-np.inf, np.inf),
    calibration: int = CALIBRATION,
) -> SeriesForecast:
    """Forecast one series ``horizon`` periods ahead (see the module docstring): ``season``
    is the seasonal period (12 for months, 4 for quarters; 1 for none)."""
    sv = None if sampling_variance is None else np.asarray(sampling_variance, float)[None, :]
    b = forecast_batch(
        np.asarray(y, dtype=float)[None, :], horizon, season=season, levels=levels, log=log,
        sampling_variance=sv, bounds=bounds, calibration=calibration,
    )  # fmt: skip
    return SeriesForecast(
        b.mean[0], {k: v[0] for k, v in b.low.items()}, {k: v[0] for k, v in b.high.items()},
        b.model[0], int(b.n[0]), float(b.sigma[0]), float(b.aicc[0]),
        {k: float(v[0]) for k, v in b.widening.items()}, int(b.calibration_n[0]),
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


def _score(
    y: np.ndarray,
    horizon: int,
    season: int,
    levels: Sequence[float],
    scored: list[list[int]],
    at: dict[tuple[int, int], int],
    point: np.ndarray,
    low: dict[float, np.ndarray],
    high: dict[float, np.ndarray],
) -> Backtest:
    """MASE, the seasonal naive's MASE and interval hits of the backtest's forecasts."""
    rows, periods = y.shape
    obs = ~np.isnan(y)
    scaled: list[list[float]] = [[] for _ in range(rows)]
    naive_scaled: list[list[float]] = [[] for _ in range(rows)]
    hits: dict[float, list[list[float]]] = {lv: [[] for _ in range(rows)] for lv in levels}
    for r in range(rows):
        for o in scored[r]:
            j = at[(r, o)]
            naive, scale = _naive(y[r, : o + 1], horizon, season)
            for h in range(horizon):
                t = o + 1 + h
                if t >= periods or not obs[r, t] or not np.isfinite(point[j, h]):
                    continue
                if np.isfinite(scale) and scale > 0:
                    scaled[r].append(abs(y[r, t] - point[j, h]) / scale)
                    naive_scaled[r].append(abs(y[r, t] - naive[h]) / scale)
                for lv in levels:
                    lo, hi = low[lv][j, h], high[lv][j, h]
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


def backtest_batch(
    y: np.ndarray,
    horizon: int,
    *,
    origins: int = 12,
    min_train: int = MIN_TRAIN,
    season: int = 1,
    levels: Sequence[float] = LEVELS,
    log: bool | np.ndarray = True,
    sampling_variance: np.ndarray | None = None,
    bounds: tuple[float, float] = (-np.inf, np.inf),
    calibration: int = CALIBRATION,
) -> Backtest:
    """Rolling-origin evaluation of :func:`forecast_batch` on each row of ``y``: refit at each
    of the last ``origins`` periods that leave a later observation to score (and at least
    ``min_train`` observations to fit), forecast up to ``horizon`` ahead, score every observed
    period reached. Each origin's intervals are calibrated as :func:`forecast_batch` calibrates
    them, from the ``calibration`` origins before it (refitted too) and only the errors of
    periods up to it. See the module docstring for MASE and coverage."""
    _, bt = _run(
        y, horizon, final=False, origins=origins, calibration=calibration, min_train=min_train,
        season=season, levels=levels, log=log, sampling_variance=sampling_variance,
        bounds=bounds,
    )  # fmt: skip
    return bt


def forecast_and_backtest(
    y: np.ndarray,
    horizon: int,
    *,
    origins: int = 12,
    min_train: int = MIN_TRAIN,
    season: int = 1,
    levels: Sequence[float] = LEVELS,
    log: bool | np.ndarray = True,
    sampling_variance: np.ndarray | None = None,
    bounds: tuple[float, float] = (-np.inf, np.inf),
    calibration: int = CALIBRATION,
) -> tuple[BatchForecast, Backtest]:
    """:func:`forecast_batch` and :func:`backtest_batch` of the same rows from one fit: the
    windows the backtest refits are the ones that calibrate the forecast's intervals."""
    fc, bt = _run(
        y, horizon, final=True, origins=origins, calibration=calibration, min_train=min_train,
        season=season, levels=levels, log=log, sampling_variance=sampling_variance,
        bounds=bounds,
    )  # fmt: skip
    assert fc is not None
    return fc, bt


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
    calibration: int = CALIBRATION,
) -> Backtest:
    """:func:`backtest_batch` of one series."""
    sv = None if sampling_variance is None else np.asarray(sampling_variance, float)[None, :]
    return backtest_batch(
        np.asarray(y, dtype=float)[None, :], horizon, origins=origins, season=season,
        levels=levels, log=log, sampling_variance=sv, bounds=bounds, calibration=calibration,
    )  # fmt: skip


__all__ = [
    "CALIBRATION",
    "LEVELS",
    "Backtest",
    "BatchForecast",
    "SeriesForecast",
    "backtest_batch",
    "backtest_series",
    "conformal_quantile",
    "forecast_and_backtest",
    "forecast_batch",
    "forecast_series",
]
