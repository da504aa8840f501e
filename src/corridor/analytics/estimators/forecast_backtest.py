"""Scoring rolling-origin backtests of forecasts: MASE against the seasonal naive forecast
and the coverage of the intervals (see :mod:`corridor.analytics.estimators.forecasting`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


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


def seasonal_naive(train: np.ndarray, steps: int, season: int) -> tuple[np.ndarray, float]:
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


def score(
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
            naive, scale = seasonal_naive(y[r, : o + 1], horizon, season)
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


__all__ = ["Backtest", "score", "seasonal_naive"]
