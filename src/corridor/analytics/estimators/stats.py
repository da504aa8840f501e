"""Interval estimates and tests from sufficient statistics, vectorised over groups.

Every function here is pure and works on *sufficient statistics* — counts ``n``, sums
``Σx`` and sums of squares ``Σx²`` for means; event counts for shares — never on raw rows.
Those statistics are additive, so they can come straight from a ``GROUP BY`` in the engine or
from a rollup table that keeps them per day × touch point × …, and the intervals stay exact.
Inputs are scalars, numpy arrays or pandas Series (nullable integer Series are accepted); the
outputs are numpy arrays of the broadcast shape (numpy scalars for scalar input), so a result with
a thousand groups is computed in one call. Undefined results (too few observations, a zero
variance in a denominator) are ``NaN``, never an exception or a warning.

Conventions: ``confidence`` is the two-sided coverage, e.g. 0.95. Two-sample functions take the
groups as ``(…1, …2)`` and report ``delta = estimate1 − estimate2``, as scipy does; callers
comparing a period with the one before pass the current period first.

References
----------
* Student (1908), "The probable error of a mean", *Biometrika* 6(1) — t interval of a mean.
* Welch, B. L. (1947), "The generalization of 'Student's' problem when several different
  population variances are involved", *Biometrika* 34(1/2) — unequal-variance t-test and the
  Welch–Satterthwaite degrees of freedom.
* Wilson, E. B. (1927), "Probable inference, the law of succession, and statistical inference",
  *JASA* 22(158) — score interval for a proportion.
* Newcombe, R. G. (1998), "Interval estimation for the difference between independent
  proportions: comparison of eleven methods", *Statistics in Medicine* 17(8) — method 10, the
  hybrid score interval built from two Wilson intervals.
* Agresti, A. & Coull, B. A. (1998), "Approximate is better than 'exact' for interval estimation
  of binomial proportions", *The American Statistician* 52(2) — why Wilson, not Wald.
* Reichheld, F. F. (2003), "The one number you need to grow", *Harvard Business Review* 81(12)
  — the Net Promoter Score.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from corridor.lazy import lazy

_sp = lazy("scipy.stats")

#: a scalar, sequence, numpy array or pandas Series of numbers
ArrayLike = Any


def _arr(x: ArrayLike) -> np.ndarray:
    """``x`` as a float array; pandas missing values (``NA``) become ``NaN``."""
    if isinstance(x, pd.Series | pd.Index):
        return x.to_numpy(dtype=float, na_value=np.nan)
    return np.asarray(x, dtype=float)


def _out(a: np.ndarray) -> Any:
    """A numpy scalar for 0-d results, else the array."""
    return a[()] if a.ndim == 0 else a


def _check_confidence(confidence: float) -> float:
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return c


def z_critical(confidence: float = 0.95) -> float:
    """The standard normal quantile ``z`` with ``P(|Z| ≤ z) = confidence`` (1.959964 for 0.95)."""
    c = _check_confidence(confidence)
    return float(_sp.norm.ppf(0.5 + c / 2.0))


def t_critical(confidence: float, df: ArrayLike) -> Any:
    """Student-t quantile ``t`` with ``P(|T_df| ≤ t) = confidence``; ``NaN`` where ``df ≤ 0``."""
    c = _check_confidence(confidence)
    d = _arr(df)
    with np.errstate(all="ignore"):
        q = _sp.t.ppf(0.5 + c / 2.0, np.where(d > 0, d, np.nan))
    return _out(np.asarray(q, dtype=float))


# -- means ---------------------------------------------------------------------------------------


class Moments(NamedTuple):
    """Mean and sample variance (``ddof = 1``) recovered from ``n``, ``Σx``, ``Σx²``."""

    n: Any
    mean: Any
    var: Any


def moments(n: ArrayLike, total: ArrayLike, total_sq: ArrayLike) -> Moments:
    """``mean = Σx / n`` and ``var = (Σx² − (Σx)²/n) / (n − 1)``.

    The mean is ``NaN`` when ``n = 0`` and the variance when ``n < 2``. The one-pass formula
    loses precision only when the variance is tiny next to the squared mean (relative error
    about ``ε · Σx² / ((n − 1)·var)``, ``ε ≈ 2.2e-16``); on 0–10 rating scales that is below
    1e-9 even for a billion rows. Negative round-off is clipped to 0.
    """
    n_, s, ss = np.broadcast_arrays(_arr(n), _arr(total), _arr(total_sq))
    with np.errstate(all="ignore"):
        mean = np.where(n_ > 0, s / n_, np.nan)
        var = np.where(n_ > 1, (ss - s * s / n_) / (n_ - 1.0), np.nan)
    var = np.where(var < 0.0, 0.0, var)
    return Moments(_out(n_), _out(mean), _out(var))


class MeanEstimate(NamedTuple):
    """A mean with its standard deviation, standard error and interval."""

    mean: Any
    sd: Any
    se: Any
    low: Any
    high: Any


def mean_interval(
    n: ArrayLike, total: ArrayLike, total_sq: ArrayLike, confidence: float = 0.95
) -> MeanEstimate:
    """The mean with a Student-t interval (Student 1908).

    ``mean ± t(1 − α/2; n − 1) · s / √n`` with ``s² = (Σx² − (Σx)²/n) / (n − 1)``. Needs
    ``n ≥ 2`` for ``sd``, ``se`` and the interval (``NaN`` otherwise). Equals
    ``scipy.stats.t.interval(confidence, n − 1, loc=mean, scale=scipy.stats.sem(x))``.
    """
    m = moments(n, total, total_sq)
    n_ = _arr(m.n)
    with np.errstate(all="ignore"):
        sd = np.sqrt(_arr(m.var))
        se = sd / np.sqrt(n_)
        half = _arr(t_critical(confidence, n_ - 1.0)) * se
    mean = _arr(m.mean)
    return MeanEstimate(m.mean, _out(sd), _out(se), _out(mean - half), _out(mean + half))


class Significance(NamedTuple):
    """A test statistic, its two-sided p-value and, for t-tests, the degrees of freedom."""

    statistic: Any
    p_value: Any
    df: Any


def welch_t_test(
    mean1: ArrayLike,
    var1: ArrayLike,
    n1: ArrayLike,
    mean2: ArrayLike,
    var2: ArrayLike,
    n2: ArrayLike,
) -> Significance:
    """Welch's unequal-variance t-test of ``mean1 = mean2`` from summary statistics (Welch 1947).

    ``t = (m₁ − m₂) / √(v₁/n₁ + v₂/n₂)`` with sample variances ``vᵢ`` (``ddof = 1``) and the
    Welch–Satterthwaite degrees of freedom
    ``df = (v₁/n₁ + v₂/n₂)² / ((v₁/n₁)²/(n₁ − 1) + (v₂/n₂)²/(n₂ − 1))``; two-sided
    ``p = 2 · P(T_df > |t|)``. Matches
    ``scipy.stats.ttest_ind_from_stats(m₁, √v₁, n₁, m₂, √v₂, n₂, equal_var=False)``.
    ``NaN`` where a group has fewer than two observations. When both variances are zero the
    test is decided by the means alone, as in scipy: ``p = 0`` if they differ, ``NaN`` if not.
    """
    return _welch(mean1, var1, n1, mean2, var2, n2)[2]


def _welch(*summaries: ArrayLike) -> tuple[np.ndarray, np.ndarray, Significance]:
    """From ``mean1, var1, n1, mean2, var2, n2`` (as :func:`welch_t_test` takes them):
    ``m₁ − m₂``, its standard error ``√(v₁/n₁ + v₂/n₂)`` and the test."""
    m1, v1, k1, m2, v2, k2 = np.broadcast_arrays(*map(_arr, summaries))
    with np.errstate(all="ignore"):
        a = np.where(k1 > 1, v1 / k1, np.nan)
        b = np.where(k2 > 1, v2 / k2, np.nan)
        se2 = a + b
        delta = m1 - m2
        se = np.sqrt(se2)
        t = delta / se
        df = se2 * se2 / (a * a / (k1 - 1.0) + b * b / (k2 - 1.0))
        # Both variances zero: df is 0/0, but any df gives the same answer (t is ±inf, or NaN
        # when the means are equal too); scipy uses 1, and so do we.
        df = np.where(se2 == 0.0, 1.0, df)
        p = 2.0 * _sp.t.sf(np.abs(t), df)
    p = np.where(np.isnan(t) | np.isnan(df), np.nan, p)
    return delta, se, Significance(_out(t), _out(np.asarray(p, dtype=float)), _out(df))


class Difference(NamedTuple):
    """A difference ``delta = estimate1 − estimate2`` with its standard error, interval and
    test of ``delta = 0``."""

    delta: Any
    se: Any
    low: Any
    high: Any
    statistic: Any
    p_value: Any


def welch_difference(
    mean1: ArrayLike,
    var1: ArrayLike,
    n1: ArrayLike,
    mean2: ArrayLike,
    var2: ArrayLike,
    n2: ArrayLike,
    confidence: float = 0.95,
) -> Difference:
    """``m₁ − m₂`` with the Welch interval ``± t(1 − α/2; df_W) · √(v₁/n₁ + v₂/n₂)`` and the
    Welch t-test (see :func:`welch_t_test`)."""
    delta, se, test = _welch(mean1, var1, n1, mean2, var2, n2)
    with np.errstate(all="ignore"):
        half = _arr(t_critical(confidence, test.df)) * se
    return Difference(
        _out(delta), _out(se), _out(delta - half), _out(delta + half), test.statistic, test.p_value
    )


# -- proportions ---------------------------------------------------------------------------------


class Proportion(NamedTuple):
    """A share ``count / n`` with its interval."""

    share: Any
    low: Any
    high: Any


def wilson_interval(count: ArrayLike, n: ArrayLike, confidence: float = 0.95) -> tuple[Any, Any]:
    """Wilson (1927) score interval for a binomial proportion.

    With ``p̂ = x/n`` and ``z = z(1 − α/2)``::

        centre = (p̂ + z²/(2n)) / (1 + z²/n)
        half   = z / (1 + z²/n) · √(p̂(1 − p̂)/n + z²/(4n²))

    Chosen over the Wald interval ``p̂ ± z√(p̂(1−p̂)/n)`` because it keeps close to its nominal
    coverage for small ``n`` and for shares near 0 or 1, never leaves [0, 1] and never has zero
    width (Agresti & Coull 1998; Newcombe 1998). Matches
    ``statsmodels.stats.proportion.proportion_confint(x, n, alpha, method="wilson")``.
    ``NaN`` where ``n = 0``.
    """
    x, k = np.broadcast_arrays(_arr(count), _arr(n))
    z = z_critical(confidence)
    with np.errstate(all="ignore"):
        p = x / k
        denom = 1.0 + z * z / k
        centre = (p + z * z / (2.0 * k)) / denom
        half = z / denom * np.sqrt(p * (1.0 - p) / k + z * z / (4.0 * k * k))
        low = np.where(k > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        high = np.where(k > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return _out(low), _out(high)


def proportion(count: ArrayLike, n: ArrayLike, confidence: float = 0.95) -> Proportion:
    """``count / n`` with its Wilson score interval (:func:`wilson_interval`)."""
    x, k = np.broadcast_arrays(_arr(count), _arr(n))
    with np.errstate(all="ignore"):
        share = np.where(k > 0, x / k, np.nan)
    low, high = wilson_interval(x, k, confidence)
    return Proportion(_out(share), low, high)


def two_proportion_z_test(
    count1: ArrayLike, n1: ArrayLike, count2: ArrayLike, n2: ArrayLike
) -> Significance:
    """Two-sided z-test of ``p₁ = p₂`` with the pooled variance.

    ``p̄ = (x₁ + x₂)/(n₁ + n₂)``, ``z = (p̂₁ − p̂₂) / √(p̄(1 − p̄)(1/n₁ + 1/n₂))``,
    ``p = 2·(1 − Φ(|z|))``. Matches ``statsmodels.stats.proportion.proportions_ztest([x₁, x₂],
    [n₁, n₂])`` (its defaults: pooled, two-sided). ``NaN`` where a group is empty or the pooled
    share is 0 or 1 (no variation to test against).
    """
    x1, k1, x2, k2 = np.broadcast_arrays(_arr(count1), _arr(n1), _arr(count2), _arr(n2))
    with np.errstate(all="ignore"):
        pooled = (x1 + x2) / (k1 + k2)
        se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / k1 + 1.0 / k2))
        z = np.where((k1 > 0) & (k2 > 0) & (se > 0), (x1 / k1 - x2 / k2) / se, np.nan)
        p = 2.0 * _sp.norm.sf(np.abs(z))
    return Significance(_out(z), _out(np.asarray(p, dtype=float)), _out(np.full_like(z, np.nan)))


def newcombe_interval(
    count1: ArrayLike,
    n1: ArrayLike,
    count2: ArrayLike,
    n2: ArrayLike,
    confidence: float = 0.95,
) -> tuple[Any, Any]:
    """Newcombe's (1998, method 10) hybrid score interval for ``p₁ − p₂``.

    With Wilson intervals ``(l₁, u₁)`` and ``(l₂, u₂)`` and ``d = p̂₁ − p̂₂``::

        low  = d − √((p̂₁ − l₁)² + (u₂ − p̂₂)²)
        high = d + √((u₁ − p̂₁)² + (p̂₂ − l₂)²)

    Matches ``statsmodels.stats.proportion.confint_proportions_2indep(x₁, n₁, x₂, n₂,
    method="newcomb", compare="diff")``.
    """
    p1 = proportion(count1, n1, confidence)
    p2 = proportion(count2, n2, confidence)
    s1, l1, u1 = (_arr(v) for v in p1)
    s2, l2, u2 = (_arr(v) for v in p2)
    d = s1 - s2
    low = d - np.sqrt((s1 - l1) ** 2 + (u2 - s2) ** 2)
    high = d + np.sqrt((u1 - s1) ** 2 + (s2 - l2) ** 2)
    return _out(low), _out(high)


def proportion_difference(
    count1: ArrayLike,
    n1: ArrayLike,
    count2: ArrayLike,
    n2: ArrayLike,
    confidence: float = 0.95,
) -> Difference:
    """``p̂₁ − p̂₂`` with the Newcombe interval (:func:`newcombe_interval`), the unpooled standard
    error ``√(p̂₁(1−p̂₁)/n₁ + p̂₂(1−p̂₂)/n₂)`` and the pooled z-test
    (:func:`two_proportion_z_test`)."""
    x1, k1, x2, k2 = np.broadcast_arrays(_arr(count1), _arr(n1), _arr(count2), _arr(n2))
    with np.errstate(all="ignore"):
        s1 = np.where(k1 > 0, x1 / k1, np.nan)
        s2 = np.where(k2 > 0, x2 / k2, np.nan)
        se = np.sqrt(s1 * (1.0 - s1) / k1 + s2 * (1.0 - s2) / k2)
    low, high = newcombe_interval(x1, k1, x2, k2, confidence)
    test = two_proportion_z_test(x1, k1, x2, k2)
    return Difference(_out(s1 - s2), _out(se), low, high, test.statistic, test.p_value)


# -- Net Promoter Score --------------------------------------------------------------------------


class NpsEstimate(NamedTuple):
    """NPS in points (−100…100) with its standard error (points) and interval."""

    nps: Any
    se: Any
    low: Any
    high: Any


def _nps_parts(
    promoters: ArrayLike, detractors: ArrayLike, n: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NPS and its variance per response, both on the −1…1 scale, and ``n``."""
    p_, d_, k = np.broadcast_arrays(_arr(promoters), _arr(detractors), _arr(n))
    with np.errstate(all="ignore"):
        p = np.where(k > 0, p_ / k, np.nan)
        d = np.where(k > 0, d_ / k, np.nan)
        score = p - d
        var = np.maximum(p + d - score * score, 0.0)
    return score, var, k


def nps(
    promoters: ArrayLike, detractors: ArrayLike, n: ArrayLike, confidence: float = 0.95
) -> NpsEstimate:
    """Net Promoter Score (Reichheld 2003) with its standard error and Wald interval.

    Of ``n`` answers to "how likely are you to recommend …" on 0–10, promoters answer 9–10 and
    detractors 0–6; with ``p`` and ``d`` their shares, ``NPS = 100 · (p − d)``.

    Each answer scores ``+1`` (promoter), ``0`` (passive) or ``−1`` (detractor), so NPS is 100
    times the mean score of a multinomial sample, and ``Var(score) = E[s²] − E[s]² =
    p + d − (p − d)²``. Hence the standard error of the difference of the two multinomial
    proportions (they are negatively correlated, ``Cov(p̂, d̂) = −pd/n``)::

        SE(NPS) = 100 · √((p + d − (p − d)²) / n)

    and the interval ``NPS ± z(1 − α/2) · SE``, clipped to [−100, 100]. This Wald interval is the
    standard one; it is too narrow for small ``n`` or when nearly everyone is a promoter (it has
    zero width at NPS = ±100), so read it together with ``n``. ``NaN`` where ``n = 0``.
    """
    score, var, k = _nps_parts(promoters, detractors, n)
    z = z_critical(confidence)
    with np.errstate(all="ignore"):
        se = np.where(k > 0, np.sqrt(var / k), np.nan)
    low = np.clip(score - z * se, -1.0, 1.0)
    high = np.clip(score + z * se, -1.0, 1.0)
    return NpsEstimate(_out(100.0 * score), _out(100.0 * se), _out(100.0 * low), _out(100.0 * high))


def nps_difference(
    promoters1: ArrayLike,
    detractors1: ArrayLike,
    n1: ArrayLike,
    promoters2: ArrayLike,
    detractors2: ArrayLike,
    n2: ArrayLike,
    confidence: float = 0.95,
) -> Difference:
    """``NPS₁ − NPS₂`` (points) for two independent samples, with a z-test and Wald interval.

    ``SE(Δ) = √(SE₁² + SE₂²)`` with each ``SE`` from :func:`nps`; ``z = Δ / SE(Δ)``,
    ``p = 2·(1 − Φ(|z|))``, interval ``Δ ± z(1 − α/2)·SE(Δ)``. ``NaN`` where a sample is empty
    or both standard errors are zero.
    """
    s1, v1, k1 = _nps_parts(promoters1, detractors1, n1)
    s2, v2, k2 = _nps_parts(promoters2, detractors2, n2)
    zc = z_critical(confidence)
    with np.errstate(all="ignore"):
        se = np.sqrt(v1 / k1 + v2 / k2)
        delta = s1 - s2
        stat = np.where(se > 0, delta / se, np.nan)
        p = 2.0 * _sp.norm.sf(np.abs(stat))
    return Difference(
        _out(100.0 * delta),
        _out(100.0 * se),
        _out(100.0 * (delta - zc * se)),
        _out(100.0 * (delta + zc * se)),
        _out(stat),
        _out(np.asarray(p, dtype=float)),
    )


def median_interval(values: np.ndarray, conf: float) -> tuple[float, float, float]:
    """Median and its distribution-free interval from order statistics (Conover 1999):
    ranks ``j = b − 1`` and ``k = n − b`` (0-based) with ``b`` the binomial(n, ½) quantile
    at (1 − confidence)/2; NaN bounds when n is too small for the confidence."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0:
        return np.nan, np.nan, np.nan
    med = float(np.median(x))
    b = int(_sp.binom.ppf((1.0 - conf) / 2.0, n, 0.5))
    if b < 1:
        return med, np.nan, np.nan
    return med, float(x[b - 1]), float(x[n - b])


__all__ = [
    "Difference",
    "MeanEstimate",
    "Moments",
    "NpsEstimate",
    "Proportion",
    "Significance",
    "mean_interval",
    "median_interval",
    "moments",
    "newcombe_interval",
    "nps",
    "nps_difference",
    "proportion",
    "proportion_difference",
    "t_critical",
    "two_proportion_z_test",
    "welch_difference",
    "welch_t_test",
    "wilson_interval",
    "z_critical",
]
