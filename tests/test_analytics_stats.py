"""The estimators on sufficient statistics, against scipy/statsmodels and published numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from corridor.analytics.estimators import stats

RNG = np.random.default_rng(1947)


def _sums(x: np.ndarray) -> tuple[int, float, float]:
    return len(x), float(x.sum()), float((x * x).sum())


# -- means -----------------------------------------------------------------------------------------


def test_mean_interval_matches_scipy_t_interval():
    """Reference: ``scipy.stats.t.interval(0.95, n − 1, loc=mean, scale=scipy.stats.sem(x))``
    and ``numpy.std(x, ddof=1)`` on the raw values."""
    for n in (2, 3, 10, 250):
        x = RNG.integers(0, 11, n).astype(float) + RNG.choice([0.0, 0.5], n)
        est = stats.mean_interval(*_sums(x), confidence=0.95)
        low, high = sp.t.interval(0.95, n - 1, loc=x.mean(), scale=sp.sem(x))
        assert est.mean == pytest.approx(x.mean(), rel=1e-12)
        assert est.sd == pytest.approx(np.std(x, ddof=1), rel=1e-10)
        assert est.se == pytest.approx(sp.sem(x), rel=1e-10)
        assert (est.low, est.high) == pytest.approx((low, high), rel=1e-10, abs=1e-12)


def test_mean_interval_other_confidence_and_degenerate_groups():
    x = np.array([3.0, 5.0, 9.0, 4.0])
    est = stats.mean_interval(*_sums(x), confidence=0.99)
    assert (est.low, est.high) == pytest.approx(
        sp.t.interval(0.99, 3, loc=x.mean(), scale=sp.sem(x)), rel=1e-10
    )
    # n = 0: nothing; n = 1: a mean but no spread; constant values: zero-width interval
    out = stats.mean_interval([0, 1, 3], [0.0, 7.0, 21.0], [0.0, 49.0, 147.0])
    assert np.isnan(out.mean[0]) and out.mean[1] == 7.0 and out.mean[2] == 7.0
    assert np.isnan(out.sd[1]) and np.isnan(out.low[1]) and np.isnan(out.high[1])
    assert out.sd[2] == 0.0 and out.low[2] == out.high[2] == 7.0


def test_moments_are_stable_on_large_sums():
    """Σx² − (Σx)²/n loses nothing that matters on rating scales, even at 10⁶ rows."""
    x = RNG.integers(0, 11, 1_000_000).astype(float)
    m = stats.moments(*_sums(x))
    assert m.var == pytest.approx(np.var(x, ddof=1), rel=1e-9)


def test_welch_matches_scipy_ttest_ind_from_stats():
    """Reference: ``scipy.stats.ttest_ind_from_stats(..., equal_var=False)`` (Welch 1947)."""
    m1, s1, n1 = RNG.uniform(-3, 3, 200), RNG.uniform(0.5, 3, 200), RNG.integers(2, 400, 200)
    m2, s2, n2 = RNG.uniform(-3, 3, 200), RNG.uniform(0.5, 3, 200), RNG.integers(2, 400, 200)
    ours = stats.welch_t_test(m1, s1**2, n1, m2, s2**2, n2)
    ref = sp.ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, equal_var=False)
    np.testing.assert_allclose(ours.statistic, ref.statistic, rtol=1e-10)
    np.testing.assert_allclose(ours.p_value, ref.pvalue, rtol=1e-9, atol=1e-300)
    # the Welch–Satterthwaite df, as scipy's own raw-data test reports it
    a, b = RNG.normal(0, 1, 12), RNG.normal(0.8, 2, 30)
    raw = sp.ttest_ind(a, b, equal_var=False)
    ma, mb = stats.moments(*_sums(a)), stats.moments(*_sums(b))
    t = stats.welch_t_test(ma.mean, ma.var, 12, mb.mean, mb.var, 30)
    assert (t.statistic, t.p_value, t.df) == pytest.approx((raw.statistic, raw.pvalue, raw.df))


def test_welch_difference_interval_matches_scipy_confidence_interval():
    """Reference: ``scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.9)``."""
    a, b = RNG.normal(5, 1.5, 40), RNG.normal(4.2, 2.5, 25)
    ma, mb = stats.moments(*_sums(a)), stats.moments(*_sums(b))
    d = stats.welch_difference(ma.mean, ma.var, 40, mb.mean, mb.var, 25, confidence=0.9)
    ref = sp.ttest_ind(a, b, equal_var=False).confidence_interval(0.9)
    assert d.delta == pytest.approx(a.mean() - b.mean())
    assert (d.low, d.high) == pytest.approx((ref.low, ref.high), rel=1e-9)


def test_welch_without_enough_data():
    """A group of one has no variance: NaN. Zero variances behave as in scipy: one zero, the
    test rests on the other group; both zero, the means decide (p = 0, or NaN when equal)."""
    m1, v1 = np.array([1.0, 1.0, 2.0, 2.0, 3.0]), np.array([np.nan, 1.0, 0.0, 0.0, 0.0])
    m2, v2 = np.array([0.0, 0.0, 0.0, 0.0, 3.0]), np.array([1.0, 1.0, 0.0, 1.0, 0.0])
    n1, n2 = np.array([1, 5, 4, 4, 3]), np.array([5, 5, 5, 5, 6])
    t = stats.welch_t_test(m1, v1, n1, m2, v2, n2)
    assert np.isnan(t.p_value[0]) and np.isnan(t.p_value[4])
    assert t.p_value[2] == 0.0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sp.ttest_ind_from_stats(
            m1[1:], np.sqrt(v1[1:]), n1[1:], m2[1:], np.sqrt(v2[1:]), n2[1:], equal_var=False
        )
    np.testing.assert_allclose(t.statistic[1:], ref.statistic)
    np.testing.assert_allclose(t.p_value[1:], ref.pvalue)


# -- proportions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "n", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_published_values(x, n, low, high):
    """Newcombe, R. G. (1998), "Two-sided confidence intervals for the single proportion:
    comparison of seven methods", Statistics in Medicine 17, 857–872, Table II, method 3
    (Wilson score interval without continuity correction)."""
    assert stats.wilson_interval(x, n) == pytest.approx((low, high), abs=5e-5)


def test_wilson_matches_statsmodels_vectorised():
    """Reference: ``statsmodels.stats.proportion.proportion_confint(method="wilson")``."""
    n = RNG.integers(1, 500, 1000)
    x = RNG.integers(0, n + 1)
    for conf in (0.9, 0.95, 0.99):
        low, high = stats.wilson_interval(x, n, conf)
        ref_low, ref_high = proportion_confint(x, n, alpha=1 - conf, method="wilson")
        np.testing.assert_allclose(low, ref_low, atol=1e-12)
        np.testing.assert_allclose(high, ref_high, atol=1e-12)
    p = stats.proportion(pd.Series([3, 0], dtype="Int64"), pd.Series([10, 0], dtype="Int64"))
    assert p.share[0] == 0.3 and np.isnan(p.share[1]) and np.isnan(p.low[1])


def test_two_proportion_z_matches_statsmodels():
    """Reference: ``statsmodels.stats.proportion.proportions_ztest([x1, x2], [n1, n2])``."""
    n1, n2 = RNG.integers(5, 300, 300), RNG.integers(5, 300, 300)
    x1, x2 = RNG.integers(1, n1), RNG.integers(1, n2)
    ours = stats.two_proportion_z_test(x1, n1, x2, n2)
    for i in range(300):
        z, p = proportions_ztest([x1[i], x2[i]], [n1[i], n2[i]])
        assert ours.statistic[i] == pytest.approx(z, rel=1e-10)
        assert ours.p_value[i] == pytest.approx(p, rel=1e-9, abs=1e-300)
    # no variation at all (pooled share 0 or 1) or an empty group: no test
    none = stats.two_proportion_z_test([0, 5, 1], [10, 5, 0], [0, 7, 1], [12, 7, 3])
    assert np.isnan(none.p_value).all()


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "low", "high"),
    [
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (0, 10, 0, 10, -0.2775, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0),
        (10, 10, 0, 10, 0.6075, 1.0),
    ],
)
def test_newcombe_published_values(x1, n1, x2, n2, low, high):
    """Newcombe, R. G. (1998), "Interval estimation for the difference between independent
    proportions: comparison of eleven methods", Statistics in Medicine 17, 873–890, Table II,
    method 10 (hybrid score interval)."""
    assert stats.newcombe_interval(x1, n1, x2, n2) == pytest.approx((low, high), abs=5e-5)


def test_newcombe_matches_statsmodels():
    """Reference: ``statsmodels.stats.proportion.confint_proportions_2indep(method="newcomb")``."""
    for x1, n1, x2, n2 in [(56, 70, 48, 80), (3, 40, 11, 35), (120, 400, 98, 410)]:
        ref = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff")
        d = stats.proportion_difference(x1, n1, x2, n2)
        assert (d.low, d.high) == pytest.approx(ref, abs=1e-12)
        assert d.delta == pytest.approx(x1 / n1 - x2 / n2)
        assert d.p_value == pytest.approx(proportions_ztest([x1, x2], [n1, n2])[1])


# -- NPS -------------------------------------------------------------------------------------------


def test_nps_hand_computed():
    """100 answers: 50 promoters, 30 passives, 20 detractors. NPS = 50 − 20 = 30 points;
    SE = 100·√((p + d − (p − d)²)/n) = 100·√((0.5 + 0.2 − 0.09)/100) = 100·√0.0061 ≈ 7.8102;
    95% interval 30 ± 1.959964 × 7.81025 = [14.6922, 45.3078]."""
    est = stats.nps(50, 20, 100)
    assert est.nps == pytest.approx(30.0)
    assert est.se == pytest.approx(100 * np.sqrt(0.0061))
    assert est.se == pytest.approx(7.8102, abs=5e-5)
    assert (est.low, est.high) == pytest.approx((14.6922, 45.3078), abs=5e-5)


def test_nps_se_is_that_of_a_difference_of_multinomial_proportions():
    """The same SE three ways: the mean of +1/0/−1 scores (population variance / n, the
    formula above), and Var(p̂ − d̂) = (p(1−p) + d(1−d) + 2pd)/n from the multinomial
    covariance Cov(p̂, d̂) = −pd/n."""
    scores = RNG.choice([1, 0, -1], size=437, p=[0.35, 0.4, 0.25])
    promoters, detractors, n = int((scores == 1).sum()), int((scores == -1).sum()), len(scores)
    p, d = promoters / n, detractors / n
    est = stats.nps(promoters, detractors, n, confidence=0.9)
    assert est.nps == pytest.approx(100 * scores.mean())
    assert est.se == pytest.approx(100 * np.sqrt(np.var(scores) / n))
    assert est.se == pytest.approx(100 * np.sqrt((p * (1 - p) + d * (1 - d) + 2 * p * d) / n))
    z = sp.norm.ppf(0.95)
    assert (est.low, est.high) == pytest.approx((est.nps - z * est.se, est.nps + z * est.se))


def test_nps_edges():
    est = stats.nps([10, 0, 0], [0, 0, 0], [10, 0, 5])
    assert est.nps[0] == 100.0 and est.se[0] == 0.0 and est.high[0] == 100.0  # all promoters
    assert np.isnan(est.nps[1]) and np.isnan(est.low[1])  # nobody answered
    assert est.nps[2] == 0.0 and est.se[2] == 0.0  # all passives
    clipped = stats.nps(2, 0, 3)
    assert clipped.high == 100.0 and clipped.low < clipped.nps


def test_nps_difference_hand_computed():
    """A: 50/30/20 of 100 (NPS 30, SE² = 61); B: 30/30/40 of 200 (NPS −10,
    SE² = 100²·(0.3 + 0.4 − 0.01)/200 = 34.5). Δ = A − B = 40, SE = √95.5 ≈ 9.7724,
    z ≈ 4.0932, p = 2(1 − Φ(z))."""
    d = stats.nps_difference(50, 20, 100, 60, 80, 200)
    assert d.delta == pytest.approx(40.0)
    assert d.se == pytest.approx(np.sqrt(95.5))
    assert d.statistic == pytest.approx(40 / np.sqrt(95.5))
    assert d.p_value == pytest.approx(2 * sp.norm.sf(40 / np.sqrt(95.5)))
    z = sp.norm.ppf(0.975)
    assert (d.low, d.high) == pytest.approx((40 - z * np.sqrt(95.5), 40 + z * np.sqrt(95.5)))


# -- vectorised, quiet -----------------------------------------------------------------------------


def test_a_thousand_groups_at_once_equal_one_at_a_time():
    k = 1000
    n = RNG.integers(0, 60, k)
    s = RNG.uniform(0, 10, k) * n
    ss = s * s / np.maximum(n, 1) + RNG.uniform(0, 4, k) * np.maximum(n - 1, 0)
    promoters = RNG.integers(0, n + 1)
    detractors = RNG.integers(0, n - promoters + 1)
    many = stats.mean_interval(pd.Series(n), pd.Series(s), pd.Series(ss))
    scores = stats.nps(promoters, detractors, n)
    for i in range(0, k, 37):
        one = stats.mean_interval(n[i], s[i], ss[i])
        np.testing.assert_array_equal(np.array(one), np.array(many)[:, i])
        np.testing.assert_array_equal(
            np.array(stats.nps(promoters[i], detractors[i], n[i])), np.array(scores)[:, i]
        )


def test_undefined_results_are_nan_and_silent(recwarn):
    """Empty groups give NaN without a RuntimeWarning (pytest turns warnings into errors)."""
    zeros = np.zeros(3)
    stats.mean_interval(zeros, zeros, zeros)
    stats.welch_difference(zeros, zeros, zeros, zeros, zeros, zeros)
    stats.proportion_difference(zeros, zeros, zeros, zeros)
    stats.nps_difference(zeros, zeros, zeros, zeros, zeros, zeros)
    assert not recwarn.list


def test_confidence_must_be_a_probability():
    with pytest.raises(ValueError, match="between 0 and 1"):
        stats.z_critical(95)
