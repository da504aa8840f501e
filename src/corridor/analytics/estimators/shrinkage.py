"""Empirical-Bayes shrinkage: small samples are pulled towards the crowd, large ones keep their own.

Two models, both fitted to the groups themselves (the "empirical" in empirical Bayes):

**Normal–normal** (:func:`normal_shrinkage`), for means and scores with a standard error. Each
group's estimate ``yᵢ`` with standard error ``sᵢ`` is read as ``yᵢ ~ N(θᵢ, sᵢ²)`` around its true
value, and the true values as ``θᵢ ~ N(μ, τ²)``. With ``wᵢ = 1/(sᵢ² + τ²)``,
``μ̂ = Σwᵢyᵢ / Σwᵢ`` and the shrinkage factor ``Bᵢ = sᵢ²/(sᵢ² + τ²)``::

    θ̂ᵢ = μ̂ + (1 − Bᵢ)(yᵢ − μ̂)
    Var(θᵢ | y) ≈ sᵢ²(1 − Bᵢ) + Bᵢ² / Σwⱼ

(the second term carries the uncertainty of ``μ̂``; Morris 1983). ``τ²`` is estimated by

* ``"reml"`` (default) — restricted maximum likelihood, the fixed-point iteration
  ``τ² ← Σwᵢ²((yᵢ − μ̂)² − sᵢ²)/Σwᵢ² + 1/Σwᵢ`` (Viechtbauer 2005), floored at 0;
* ``"moments"`` — DerSimonian & Laird (1986): ``τ² = max(0, (Q − (k − 1)) / (Σvᵢ − Σvᵢ²/Σvᵢ))``
  with ``vᵢ = 1/sᵢ²`` and Cochran's ``Q = Σvᵢ(yᵢ − ȳᵥ)²``;
* ``"james-stein"`` — equal standard errors (their mean square is used): the positive-part
  James–Stein estimator with unknown mean of Efron & Morris (1975), ``B = (k − 3)σ²/Σ(yᵢ − ȳ)²``
  capped at 1, ``μ̂ = ȳ``, with Morris's (1983) variance
  ``σ²(1 − (k − 1)B/k) + 2B²(yᵢ − ȳ)²/(k − 3)``.

**Beta–binomial** (:func:`beta_binomial_shrinkage`), for shares (promise-kept rate, complaint
share): ``xᵢ ~ Binomial(nᵢ, pᵢ)``, ``pᵢ ~ Beta(α, β)``; ``α, β`` maximise the marginal
(beta-binomial) likelihood ``Σ [ln B(xᵢ + α, nᵢ − xᵢ + β) − ln B(α, β)]``; each group's posterior is
``Beta(α + xᵢ, β + nᵢ − xᵢ)`` with mean ``(α + xᵢ)/(α + β + nᵢ)`` and an equal-tailed interval.
Groups that vary no more than sampling explains get ``α + β`` at its cap (every share shrinks to
the pooled one).

Intervals are empirical-Bayes posterior intervals: they treat the fitted prior as known, which
makes them slightly too narrow with few groups (Morris 1983). Groups without data (``s`` missing
or infinite, ``n = 0``) get the prior: mean ``μ̂`` (or ``α/(α+β)``) and the prior's spread.

References: Efron, B. & Morris, C. (1975), "Data analysis using Stein's estimator and its
generalizations", *JASA* 70(350); Morris, C. N. (1983), "Parametric empirical Bayes inference:
theory and applications", *JASA* 78(381); DerSimonian, R. & Laird, N. (1986), "Meta-analysis in
clinical trials", *Controlled Clinical Trials* 7(3); Viechtbauer, W. (2005), "Bias and
efficiency of meta-analytic variance estimators in the random-effects model", *J. Educational
and Behavioral Statistics* 30(3).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from corridor.analytics.estimators import stats
from corridor.lazy import lazy

optimize = lazy("scipy.optimize")
special = lazy("scipy.special")
_sp = lazy("scipy.stats")

METHODS: tuple[str, ...] = ("reml", "moments", "james-stein")
#: the largest α + β a beta prior may reach (no overdispersion: complete pooling)
MAX_PRIOR_SIZE = 1e7


class NormalShrinkage(NamedTuple):
    """Posterior means (``estimate``), standard deviations and intervals per group; ``weight`` is
    ``1 − Bᵢ``, the weight of the group's own data; ``mu`` and ``tau2`` the fitted prior."""

    estimate: np.ndarray
    sd: np.ndarray
    low: np.ndarray
    high: np.ndarray
    weight: np.ndarray
    mu: float
    tau2: float
    method: str


def _reml_tau2(y: np.ndarray, v: np.ndarray, tol: float = 1e-10, max_iter: int = 500) -> float:
    tau2 = max(float(np.var(y, ddof=1) - v.mean()), 0.0) if len(y) > 1 else 0.0
    for _ in range(max_iter):
        w = 1.0 / (v + tau2)
        mu = float((w * y).sum() / w.sum())
        new = float((w * w * ((y - mu) ** 2 - v)).sum() / (w * w).sum() + 1.0 / w.sum())
        new = max(new, 0.0)
        if abs(new - tau2) <= tol * max(1.0, tau2):
            return new
        tau2 = new
    return tau2


def _dl_tau2(y: np.ndarray, v: np.ndarray) -> float:
    w = 1.0 / v
    ybar = float((w * y).sum() / w.sum())
    q = float((w * (y - ybar) ** 2).sum())
    denom = float(w.sum() - (w * w).sum() / w.sum())
    return max(0.0, (q - (len(y) - 1)) / denom) if denom > 0 else 0.0


def normal_shrinkage(
    estimate: Any, se: Any, *, method: str = "reml", confidence: float = 0.95
) -> NormalShrinkage:
    """Shrink ``estimate`` (one per group) with standard errors ``se`` (see the module notes).
    Needs at least 3 groups with a positive, finite standard error (4 for James–Stein);
    otherwise nothing is shrunk (``weight`` 1, ``tau2`` NaN)."""
    if method not in METHODS:
        raise ValueError(f"unknown shrinkage method {method!r}; use one of {', '.join(METHODS)}")
    y = np.asarray(estimate, dtype=float)
    s = np.asarray(se, dtype=float)
    ok = np.isfinite(y) & np.isfinite(s) & (s > 0)
    z = stats.z_critical(confidence)
    k = int(ok.sum())
    need = 4 if method == "james-stein" else 3
    if k < need:
        sd = np.where(ok, s, np.nan)
        return NormalShrinkage(
            np.where(ok, y, np.nan), sd, y - z * sd, y + z * sd, np.ones_like(y), np.nan, np.nan,
            method,
        )  # fmt: skip
    yk, vk = y[ok], s[ok] ** 2
    if method == "james-stein":
        sigma2 = float(vk.mean())
        mu = float(yk.mean())
        spread = float(((yk - mu) ** 2).sum())
        big_b = min(1.0, (k - 3) * sigma2 / spread) if spread > 0 else 1.0
        tau2 = sigma2 * (1.0 - big_b) / big_b if big_b > 0 else np.inf
        post = mu + (1.0 - big_b) * (y - mu)
        var = sigma2 * (1.0 - (k - 1) * big_b / k) + 2.0 * big_b**2 * (y - mu) ** 2 / (k - 3)
        weight = np.full_like(y, 1.0 - big_b)
    else:
        tau2 = _reml_tau2(yk, vk) if method == "reml" else _dl_tau2(yk, vk)
        w = 1.0 / (vk + tau2)
        mu = float((w * yk).sum() / w.sum())
        v = s**2
        with np.errstate(all="ignore"):
            b = np.where(ok, v / (v + tau2), 1.0)
            post = np.where(ok, mu + (1.0 - b) * (y - mu), mu)
            var = np.where(ok, v * (1.0 - b) + b * b / w.sum(), tau2 + 1.0 / w.sum())
        weight = 1.0 - b
    sd = np.sqrt(np.maximum(var, 0.0))
    return NormalShrinkage(post, sd, post - z * sd, post + z * sd, weight, mu, float(tau2), method)


class BetaBinomialShrinkage(NamedTuple):
    """Posterior mean shares and equal-tailed intervals per group, the prior ``alpha`` and
    ``beta`` and the weight ``nᵢ/(α + β + nᵢ)`` of each group's own data."""

    share: np.ndarray
    low: np.ndarray
    high: np.ndarray
    weight: np.ndarray
    alpha: float
    beta: float


def beta_binomial_fit(successes: Any, trials: Any) -> tuple[float, float]:
    """Marginal maximum-likelihood ``(α, β)`` of a beta-binomial model (see the module notes),
    started from the method of moments; groups with ``n = 0`` are ignored."""
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    keep = n > 0
    x, n = x[keep], n[keep]
    if len(n) == 0:
        return np.nan, np.nan
    pooled = float(np.clip(x.sum() / n.sum(), 1e-6, 1 - 1e-6))
    if len(n) < 2 or x.sum() in (0.0, n.sum()):
        return pooled * MAX_PRIOR_SIZE, (1 - pooled) * MAX_PRIOR_SIZE
    p = x / n
    var = float(np.var(p, ddof=1))
    binom = pooled * (1 - pooled) * float(np.mean(1.0 / n))
    size0 = pooled * (1 - pooled) / (var - binom) - 1.0 if var > binom else 1e4
    size0 = float(np.clip(size0, 0.5, MAX_PRIOR_SIZE))

    def nll(theta: np.ndarray) -> float:  # theta = (logit of prior mean, log of α + β)
        size = np.exp(theta[1])
        a = float(special.expit(theta[0])) * size
        b = size - a
        return -float((special.betaln(x + a, n - x + b) - special.betaln(a, b)).sum())

    start = np.array([special.logit(pooled), np.log(size0)])
    res = optimize.minimize(
        nll,
        start,
        method="L-BFGS-B",
        bounds=[(-20.0, 20.0), (np.log(1e-3), np.log(MAX_PRIOR_SIZE))],
    )
    m = float(special.expit(res.x[0]))
    size = float(np.exp(res.x[1]))
    return m * size, (1 - m) * size


def beta_binomial_shrinkage(
    successes: Any, trials: Any, *, confidence: float = 0.95
) -> BetaBinomialShrinkage:
    """Posterior shares under the fitted beta prior (see the module notes)."""
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    a, b = beta_binomial_fit(x, n)
    if not np.isfinite(a):
        nan = np.full_like(x, np.nan)
        return BetaBinomialShrinkage(nan, nan, nan, nan, np.nan, np.nan)
    pa, pb = a + x, b + n - x
    tail = (1.0 - stats._check_confidence(confidence)) / 2.0
    return BetaBinomialShrinkage(
        pa / (pa + pb),
        _sp.beta.ppf(tail, pa, pb),
        _sp.beta.ppf(1.0 - tail, pa, pb),
        n / (a + b + n),
        float(a),
        float(b),
    )


__all__ = [
    "METHODS",
    "BetaBinomialShrinkage",
    "NormalShrinkage",
    "beta_binomial_fit",
    "beta_binomial_shrinkage",
    "normal_shrinkage",
]
