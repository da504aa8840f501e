"""Fitting forecasts: the candidate exponential smoothing models of each row, their selection
by AICc, point forecasts and forecast standard deviations (steps 1–4 of
:mod:`corridor.analytics.estimators.forecasting`), and the intervals drawn from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from corridor.analytics.estimators import ets
from corridor.lazy import lazy

sp = lazy("scipy.stats")

#: fewer observations than this: the series' mean instead of a model (ETS(A,N,N) needs 6)
MIN_MODEL = ets.Spec("N", "N").min_obs()
#: periods whose sampling variance sets the expected variance of the next period's estimate
RECENT = 3
#: candidates whose first-grid AICc is within this of the best are refined
SHORTLIST = 6.0
#: the fewest recent one-step errors that set σ² (see :func:`recent_window`)
RECENT_WINDOW = 24


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


def model_quantiles(levels: Sequence[float], df: np.ndarray) -> dict[float, np.ndarray]:
    with np.errstate(all="ignore"):
        return {
            lv: np.where(df >= 1, sp.t.ppf(0.5 + lv / 2, np.maximum(df, 1)), np.nan)
            for lv in levels
        }


@dataclass(frozen=True)
class Fit:
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


def fit_rows(
    y: np.ndarray,
    horizon: int,
    season: int,
    log: np.ndarray,
    sampling_variance: np.ndarray | None,
) -> Fit:
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
    return Fit(point, mean, sd, np.sqrt(unit), df, choice.log.copy(), names, n, sigma, aicc)


def intervals(
    fit: Fit, k: dict[float, np.ndarray], levels: Sequence[float], bounds: tuple[float, float]
) -> tuple[np.ndarray, dict[float, np.ndarray], dict[float, np.ndarray]]:
    """The point forecasts and each level's interval, drawn ``k[level]`` forecast standard
    deviations either side of the centre (taken back by ``exp`` for a model of the log), all
    clipped to ``bounds``."""
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
    return np.clip(fit.point, lo_b, hi_b), low, high


__all__ = ["MIN_MODEL", "Fit", "fit_rows", "intervals", "model_quantiles", "recent_window"]
