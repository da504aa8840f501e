"""Calibrating forecast intervals by a series' own out-of-sample errors: split conformal
prediction with a rolling origin (step 5 of :mod:`corridor.analytics.estimators.forecasting`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from corridor.analytics.estimators.forecast_fit import Fit, model_quantiles

#: backtest origins before a forecast origin whose out-of-sample errors calibrate its intervals
CALIBRATION = 12
#: the fewest calibration errors that may widen an interval (fewer: the model's interval): the
#: fewest for which the 95 % conformal rank exists, ⌈(n + 1)·0.95⌉ ≤ n; with n + 1 = 20 the
#: expected coverage of the conformal quantile, ⌈(n + 1)·level⌉ / (n + 1), is the level itself
#: at 80 % and 95 %, where fewer scores overshoot it (n = 12: 11/13 at 80 %)
MIN_SCORES = 19


def scaled_errors(fit: Fit, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def widths(
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


def calibrate(
    fit: Fit,
    y: np.ndarray,
    members: list[tuple[int, int]],
    ends: list[list[int]],
    calibrated: set[tuple[int, int]],
    calibration: int,
    levels: Sequence[float],
) -> tuple[dict[float, np.ndarray], dict[float, np.ndarray], np.ndarray]:
    """The quantile each level's interval of each fitted window (``members``: (row of ``y``,
    origin), in the order of ``fit``) is drawn with: the model's, or for a window in
    ``calibrated`` the :func:`widths` of the out-of-sample errors of the ``calibration`` origins
    of its row before its own (``ends``: per row, the origins a backtest may refit at), of
    periods up to its origin only. Also how many times the model's quantile that is, and how
    many errors calibrated each window."""
    periods = y.shape[1]
    at = {m: j for j, m in enumerate(members)}
    # the out-of-sample errors of every window, and the period each error is of
    target = np.array([o for _, o in members])[:, None] + 1 + np.arange(fit.point.shape[1])[None, :]
    row_of = np.array([r for r, _ in members])
    inside = target < periods
    actual = np.where(inside, y[row_of[:, None], np.minimum(target, periods - 1)], np.nan)
    on_values, on_log = scaled_errors(fit, actual)
    model_q = model_quantiles(levels, fit.df)
    k = {lv: model_q[lv].copy() for lv in levels}
    widened = {lv: np.ones(len(members)) for lv in levels}
    used = np.zeros(len(members), dtype=np.int64)
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
        ks = widths(levels, {lv: float(model_q[lv][j]) for lv in levels}, pool)
        for lv in levels:
            k[lv][j] = ks[lv]
            if np.isfinite(model_q[lv][j]) and model_q[lv][j] > 0:
                widened[lv][j] = ks[lv] / model_q[lv][j]
    return k, widened, used


__all__ = [
    "CALIBRATION",
    "MIN_SCORES",
    "calibrate",
    "conformal_quantile",
    "scaled_errors",
    "widths",
]
