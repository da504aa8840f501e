"""Buy-till-you-die models on plain arrays: BG/NBD and Gamma-Gamma, fitted with scipy.

**BG/NBD** (Fader, Hardie & Lee 2005, "Counting your customers the easy way: an alternative to
the Pareto/NBD model", *Marketing Science* 24(2), 275–284). While alive, a customer buys as a
Poisson process with rate λ ~ Gamma(r, α); after each purchase they drop out with probability
p ~ Beta(a, b). For a customer with ``x`` repeat purchases, the last at ``t_x``, observed for
``T`` (all since the first purchase), the likelihood (FHL eq. 6) is::

    L = B(a, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
      + [x > 0] · B(a+1, b+x−1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x))

computed in log space (``gammaln``, ``betaln``, ``logaddexp``) and maximised by L-BFGS over
the log-parameters. Then (FHL eqs. 10 and 13)::

    P(alive) = 1 / (1 + [x > 0] · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x))
    E[Y(t)]  = (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) · ₂F₁(r+x, b+x; a+b+x−1; t/(α+T+t))]
               · P(alive)

**Gamma-Gamma** (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value curves for customer
base analysis", *Journal of Marketing Research* 42(4), 415–430): a customer's transaction
values are Gamma(p, ν) with ν ~ Gamma(q, γ); fitted on repeat buyers' mean value ``m`` over
``x`` transactions; the expected mean value given (x, m) is ``(γ + x·m)·p / (p·x + q − 1)``.
Given (x, m) the posterior of ν is Gamma(p·x + q, γ + x·m), so that mean exists only where
p·x + q > 1; the population mean p·γ/(q − 1) (a customer without repeat purchases, x = 0)
only where q > 1 (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value"). Spend so
heavy-tailed that the fit gives q ≤ 1 has no finite mean: there the expected value (and the
CLV built on it) is NaN and :meth:`GammaGamma.value_reasons` says why, never the negative
number the formula would give. A constrained fit (q > 1 forced) is not used: its optimum sits
on the bound, and p·γ/(q − 1) there is a huge number set by where the bound was put.

A fit that did not converge has ``reason_`` set and gives NaN for every figure.

Parameter intervals are Wald intervals on the log scale from the numerical Hessian of the
log-likelihood; per-person intervals come from the delta method on those log-parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.lazy import lazy

optimize = lazy("scipy.optimize")
sps = lazy("scipy.stats")
special = lazy("scipy.special")

if TYPE_CHECKING:
    from scipy.optimize import OptimizeResult


def _hessian(f: Any, x: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian of a scalar function."""
    k = len(x)
    h = np.zeros((k, k))
    e = np.eye(k) * step
    for i in range(k):
        for j in range(i, k):
            v = (
                f(x + e[i] + e[j]) - f(x + e[i] - e[j]) - f(x - e[i] + e[j]) + f(x - e[i] - e[j])
            ) / (4 * step * step)
            h[i, j] = h[j, i] = v
    return h


def _compress(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows and how many times each occurs: the likelihood is a weighted sum."""
    stacked = np.column_stack(cols)
    uniq, counts = np.unique(stacked, axis=0, return_counts=True)
    return [uniq[:, i] for i in range(uniq.shape[1])], counts.astype(float)


def _convergence_problem(res: OptimizeResult, n: int) -> str | None:
    """Why an optimiser's answer is not a maximum of the likelihood, or None. L-BFGS-B may stop
    on "precision loss" at the optimum: a gradient of at most 1e-3 per customer counts as
    converged."""
    if not np.all(np.isfinite(res.x)):
        return "its parameters are not finite"
    if res.success:
        return None
    jac = np.asarray(getattr(res, "jac", np.nan), float)
    if np.all(np.isfinite(jac)) and float(np.max(np.abs(jac))) <= 1e-3 * max(n, 1):
        return None
    return f"it did not converge ({res.message})"


class _Fitter:
    names: tuple[str, ...] = ()
    confidence: float
    #: why the fit cannot be used (figures from it are NaN), else None
    reason_: str | None = None

    def _finish(self, nll: Any, w: np.ndarray, n: int, grad: Any = None) -> None:
        self.log_params_ = w
        self.params_ = pd.Series(np.exp(w), index=list(self.names))
        self.log_likelihood_ = -float(nll(w))
        if grad is None:
            hess = _hessian(nll, w)
        else:  # central differences of the analytic gradient
            step = 1e-5
            cols = [(grad(w + e)[1] - grad(w - e)[1]) / (2 * step) for e in np.eye(len(w)) * step]
            hess = np.column_stack(cols)
            hess = (hess + hess.T) / 2
        try:
            cov = np.linalg.inv(hess)
        except np.linalg.LinAlgError:
            cov = np.full_like(hess, np.nan)
        if not np.all(np.isfinite(np.diag(cov))) or np.any(np.diag(cov) < 0):
            cov = np.full_like(hess, np.nan)
        self.log_cov_ = cov
        self.n_ = n

    @property
    def summary(self) -> pd.DataFrame:
        """One row per parameter: estimate, standard error (delta method) and the Wald
        interval on the log scale, exponentiated."""
        z = sps.norm.ppf(0.5 + self.confidence / 2)
        se_log = np.sqrt(np.diag(self.log_cov_))
        est = self.params_.to_numpy()
        return pd.DataFrame(
            {
                "parameter": list(self.names),
                "estimate": est,
                "se": est * se_log,
                "low": np.exp(self.log_params_ - z * se_log),
                "high": np.exp(self.log_params_ + z * se_log),
            }
        )

    def _delta(self, fn: Any, transform: str = "log") -> tuple[np.ndarray, np.ndarray]:
        """Per-person standard errors of ``transform(fn(params))`` by the delta method."""
        base = np.asarray(fn(self.log_params_), float)
        k = len(self.log_params_)
        step = 1e-5
        grads = []
        for i in range(k):
            e = np.zeros(k)
            e[i] = step
            up = np.asarray(fn(self.log_params_ + e), float)
            dn = np.asarray(fn(self.log_params_ - e), float)
            tf = _TRANSFORMS[transform]
            grads.append((tf(up) - tf(dn)) / (2 * step))
        g = np.column_stack(grads)
        var = np.einsum("ij,jk,ik->i", g, self.log_cov_, g)
        return base, np.sqrt(np.maximum(var, 0.0))


def _hyp2f1(a: Any, b: Any, c: Any, z: Any) -> np.ndarray:
    """Gauss's ₂F₁ from scipy; where scipy gives no finite value (huge ``a`` at tiny ``z``,
    as when a BG/NBD fit tends to its Poisson limit) the power series is summed directly."""
    a, b, c, z = np.broadcast_arrays(*(np.asarray(v, float) for v in (a, b, c, z)))
    with np.errstate(all="ignore"):
        out = np.asarray(special.hyp2f1(a, b, c, z), float)
    bad = ~np.isfinite(out)
    if bad.any():
        aa, bb, cc, zz = a[bad], b[bad], c[bad], z[bad]
        term = np.ones_like(zz)
        total = np.ones_like(zz)
        for n in range(20000):
            term = term * (aa + n) * (bb + n) / ((cc + n) * (n + 1)) * zz
            total = total + term
            if np.all(np.abs(term) <= 1e-15 * np.abs(total)):
                break
        out[bad] = total
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return np.asarray(np.log(q) - np.log1p(-q))


def _log(v: np.ndarray) -> np.ndarray:
    return np.asarray(np.log(np.maximum(v, 1e-300)))


_TRANSFORMS = {"log": _log, "logit": _logit}


def _check_rfm(frequency: Any, recency: Any, T: Any) -> tuple[np.ndarray, ...]:
    x = np.asarray(frequency, float)
    tx = np.asarray(recency, float)
    t = np.asarray(T, float)
    if not (x.shape == tx.shape == t.shape) or x.ndim != 1 or len(x) == 0:
        raise AnalyticsQueryError("frequency, recency and T must be 1-d arrays of one length")
    if (x < 0).any() or (tx < 0).any() or (tx > t + 1e-9).any() or ((x == 0) & (tx > 0)).any():
        raise AnalyticsQueryError(
            "need frequency >= 0, 0 <= recency <= T, and recency 0 when frequency is 0"
        )
    return x, tx, t


#: bounds of the log-parameters (r, α, a, b): a and b stay away from 0, where E[Y(t)]'s
#: hypergeometric function has a pole (data without drop-outs push the fit there)
BOUNDS = [
    (np.log(1e-4), np.log(1e6)),
    (np.log(1e-4), np.log(1e7)),
    (np.log(1e-2), np.log(1e4)),
    (np.log(1e-2), np.log(1e4)),
]


class BetaGeo(_Fitter):
    """BG/NBD. ``BetaGeo(confidence=0.95).fit(frequency, recency, T)``; fitted ``params_``
    (r, alpha, a, b), ``log_likelihood_``, ``log_cov_``, ``summary``."""

    names = ("r", "alpha", "a", "b")

    def __init__(self, confidence: float = 0.95) -> None:
        self.confidence = confidence

    @staticmethod
    def _terms(
        w: np.ndarray, x: np.ndarray, tx: np.ndarray, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The log of the likelihood's two terms after the common factor (Fader, Hardie & Lee
        2005, eq. 6): ``A₂`` (alive at T) and ``A₃`` (dropped out after the last purchase;
        −∞ for a customer without repeat purchases)."""
        r, alpha, a, b = np.exp(w)
        a2 = special.betaln(a, b + x) - special.betaln(a, b) - (r + x) * np.log(alpha + t)
        with np.errstate(all="ignore"):
            a3 = (
                special.betaln(a + 1, b + x - 1)
                - special.betaln(a, b)
                - (r + x) * np.log(alpha + tx)
            )
        return a2, np.where(x > 0, a3, -np.inf)

    @staticmethod
    def log_likelihood(w: np.ndarray, x: np.ndarray, tx: np.ndarray, t: np.ndarray) -> Any:
        r, alpha, _, _ = np.exp(w)
        a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
        a2, a3 = BetaGeo._terms(w, x, tx, t)
        return a1 + np.where(x > 0, np.logaddexp(a2, a3), a2)

    @staticmethod
    def gradient(w: np.ndarray, x: np.ndarray, tx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """d log-likelihood / d log-parameters, one row per customer (digamma terms)."""
        r, alpha, a, b = np.exp(w)
        la2, la3 = BetaGeo._terms(w, x, tx, t)
        tot = np.logaddexp(la2, la3)
        w2, w3 = np.exp(la2 - tot), np.exp(la3 - tot)
        ab, abx = special.digamma(a + b), special.digamma(a + b + x)
        d_r = special.digamma(r + x) - special.digamma(r) + np.log(alpha)
        d_r = d_r - w2 * np.log(alpha + t) - w3 * np.log(alpha + tx)
        d_alpha = r / alpha - w2 * (r + x) / (alpha + t) - w3 * (r + x) / (alpha + tx)
        d_a = w2 * (ab - abx) + w3 * (special.digamma(a + 1) - special.digamma(a) + ab - abx)
        with np.errstate(all="ignore"):
            b3 = np.where(x > 0, special.digamma(np.where(x > 0, b + x - 1, 1.0)), 0.0)
        d_b = w2 * (special.digamma(b + x) - abx - special.digamma(b) + ab) + w3 * (
            b3 - abx - special.digamma(b) + ab
        )
        return np.column_stack([d_r * r, d_alpha * alpha, d_a * a, d_b * b])

    def fit(self, frequency: Any, recency: Any, T: Any) -> BetaGeo:
        x, tx, t = _check_rfm(frequency, recency, T)
        (ux, utx, ut), wts = _compress(x, tx, t)

        def nll(w: np.ndarray) -> float:
            if np.any(np.abs(w) > 30):
                return 1e300
            return -float(np.sum(wts * self.log_likelihood(w, ux, utx, ut)))

        def nll_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
            if np.any(np.abs(w) > 30):
                return 1e300, -np.sign(w) * 1e3
            f = -float(np.sum(wts * self.log_likelihood(w, ux, utx, ut)))
            return f, -(wts @ self.gradient(w, ux, utx, ut))

        w0 = np.log([1.0, max(float(np.mean(t)), 1e-3), 1.0, 1.0])
        res = optimize.minimize(
            nll_grad,
            w0,
            jac=True,
            method="L-BFGS-B",
            bounds=BOUNDS,
            options={"ftol": 1e-14, "gtol": 1e-8, "maxiter": 5000},
        )
        if not np.all(np.isfinite(res.x)):
            raise AnalyticsQueryError("the BG/NBD fit failed: too few purchases to estimate it")
        self._finish(nll, res.x, len(x), nll_grad)
        problem = _convergence_problem(res, len(x))
        self.reason_ = None if problem is None else f"the purchase model (BG/NBD) fit: {problem}"
        return self

    @staticmethod
    def _p_alive(w: np.ndarray, x: np.ndarray, tx: np.ndarray, t: np.ndarray) -> np.ndarray:
        r, alpha, a, b = np.exp(w)
        with np.errstate(all="ignore"):
            log_ratio = (
                np.log(a) - np.log(b + x - 1) + (r + x) * (np.log(alpha + t) - np.log(alpha + tx))
            )
        return np.where(x > 0, 1.0 / (1.0 + np.exp(np.where(x > 0, log_ratio, 0.0))), 1.0)

    @staticmethod
    def _expected(
        w: np.ndarray, x: np.ndarray, tx: np.ndarray, t: np.ndarray, horizon: float
    ) -> np.ndarray:
        r, alpha, a, b = np.exp(w)
        if abs(a - 1) < 1e-7:  # (a+b+x−1)/(a−1) · [...] is 0/0 at a = 1: the limit, both sides
            lo, hi = w.copy(), w.copy()
            lo[2], hi[2] = np.log1p(-1e-6), np.log1p(1e-6)
            both = BetaGeo._expected(lo, x, tx, t, horizon) + BetaGeo._expected(
                hi, x, tx, t, horizon
            )
            return np.asarray(both / 2)
        z = horizon / (alpha + t + horizon)
        hyp = _hyp2f1(r + x, b + x, a + b + x - 1, z)
        first = (a + b + x - 1) / (a - 1)
        second = 1 - ((alpha + t) / (alpha + t + horizon)) ** (r + x) * hyp
        return np.asarray(first * second * BetaGeo._p_alive(w, x, tx, t))

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> tuple[np.ndarray, np.ndarray]:
        """P(alive) per customer and its standard error on the logit scale (NaN when the fit
        is unusable: ``reason_``)."""
        x, tx, t = _check_rfm(frequency, recency, T)
        if self.reason_ is not None:
            return np.full(len(x), np.nan), np.full(len(x), np.nan)
        return self._delta(lambda w: self._p_alive(w, x, tx, t), "logit")

    def expected_purchases(
        self, horizon: float, frequency: Any, recency: Any, T: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """E[purchases in the next ``horizon`` time units] per customer, and its standard
        error on the log scale (NaN when the fit is unusable: ``reason_``)."""
        x, tx, t = _check_rfm(frequency, recency, T)
        if self.reason_ is not None:
            return np.full(len(x), np.nan), np.full(len(x), np.nan)
        return self._delta(lambda w: self._expected(w, x, tx, t, horizon), "log")

    def expected_curve(
        self, horizons: Any, frequency: Any, recency: Any, T: Any, w: np.ndarray | None = None
    ) -> np.ndarray:
        """E[purchases by each horizon] per customer: shape (customers, horizons)."""
        x, tx, t = _check_rfm(frequency, recency, T)
        ww = self.log_params_ if w is None else w
        return np.column_stack([self._expected(ww, x, tx, t, float(h)) for h in horizons])


class GammaGamma(_Fitter):
    """Gamma-Gamma spend model. ``GammaGamma().fit(frequency, monetary)`` on customers with
    at least one repeat purchase and a positive mean value; fitted ``params_`` (p, q, gamma).
    ``note_`` says when the population mean spend is infinite (q ≤ 1)."""

    names = ("p", "q", "gamma")

    def __init__(self, confidence: float = 0.95) -> None:
        self.confidence = confidence

    @staticmethod
    def log_likelihood(w: np.ndarray, x: np.ndarray, m: np.ndarray) -> Any:
        p, q, g = np.exp(w)
        return (
            special.gammaln(p * x + q)
            - special.gammaln(p * x)
            - special.gammaln(q)
            + q * np.log(g)
            + (p * x - 1) * np.log(m)
            + p * x * np.log(x)
            - (p * x + q) * np.log(x * m + g)
        )

    def fit(self, frequency: Any, monetary: Any) -> GammaGamma:
        x = np.asarray(frequency, float)
        m = np.asarray(monetary, float)
        if x.shape != m.shape or len(x) == 0:
            raise AnalyticsQueryError("frequency and monetary must be 1-d arrays of one length")
        if (x <= 0).any() or (m <= 0).any():
            raise AnalyticsQueryError(
                "Gamma-Gamma needs repeat buyers only: frequency > 0 and monetary value > 0"
            )
        if len(x) < 3:
            raise AnalyticsQueryError("Gamma-Gamma needs at least 3 repeat buyers")

        def nll(w: np.ndarray) -> float:
            if np.any(np.abs(w) > 30):
                return 1e300
            return -float(np.sum(self.log_likelihood(w, x, m)))

        w0 = np.log([1.0, 1.0, max(float(np.mean(m)), 1e-3)])

        def nll_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
            if np.any(np.abs(w) > 30):
                return 1e300, -np.sign(w) * 1e3
            p, q, g = np.exp(w)
            px = p * x
            both = special.digamma(px + q)
            lxg = np.log(x * m + g)
            d_p = np.sum(x * (both - special.digamma(px) + np.log(m) + np.log(x) - lxg))
            d_q = np.sum(both - special.digamma(q) + np.log(g) - lxg)
            d_g = np.sum(q / g - (px + q) / (x * m + g))
            return nll(w), -np.array([d_p * p, d_q * q, d_g * g])

        res = optimize.minimize(
            nll_grad,
            w0,
            jac=True,
            method="L-BFGS-B",
            options={"ftol": 1e-14, "gtol": 1e-8, "maxiter": 5000},
        )
        if not np.all(np.isfinite(res.x)):
            res.x = w0  # kept only to have parameters; the reason below withholds every figure
        self._finish(nll, res.x, len(x), nll_grad)
        problem = _convergence_problem(res, len(x))
        self.reason_ = None if problem is None else f"the spend model (Gamma-Gamma) fit: {problem}"
        return self

    @property
    def note_(self) -> str | None:
        """Why a customer without repeat purchases has no expected spend (q ≤ 1), else None."""
        q = float(np.exp(self.log_params_[1]))
        if q > 1:
            return None
        return (
            f"the spend model (Gamma-Gamma) fitted q = {q:.3g} ≤ 1: spend is so heavy-tailed "
            "that the expected spend of a buyer without a repeat purchase, p·γ/(q − 1), is "
            "infinite"
        )

    @staticmethod
    def _mean_value(w: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        p, q, g = np.exp(w)
        den = p * x + q - 1  # the posterior Gamma(p·x + q, γ + x·m) of ν has a mean of 1/ν
        with np.errstate(divide="ignore", invalid="ignore"):  # only where p·x + q > 1
            return np.asarray(
                np.where(den > 0, (g + x * m) * p / np.where(den > 0, den, 1), np.nan)
            )

    def value_reasons(self, frequency: Any) -> np.ndarray:
        """Per customer (``frequency`` as given to :meth:`expected_value`), why the expected
        value is NaN (an object array of str), None where it is defined."""
        x = np.asarray(frequency, float)
        out = np.full(len(x), None, dtype=object)
        if self.reason_ is not None:
            out[:] = self.reason_
            return out
        p, q, _ = np.exp(self.log_params_)
        none = (x <= 0) & (q <= 1)
        out[none] = self.note_
        few = (x > 0) & (p * x + q <= 1)
        for xi in np.unique(x[few]):
            out[few & (x == xi)] = (
                f"the spend model (Gamma-Gamma) fitted p = {p:.3g}, q = {q:.3g}: after "
                f"{xi:g} repeat purchase(s) p·x + q = {p * xi + q:.3g} ≤ 1, so the expected "
                "spend is infinite"
            )
        return out

    def expected_value(self, frequency: Any, monetary: Any) -> tuple[np.ndarray, np.ndarray]:
        """E[mean transaction value | x, m] per customer (a customer without repeat purchases
        gets the population mean p·γ/(q − 1)), and its standard error on the log scale. NaN
        where that mean is infinite (q ≤ 1, or p·x + q ≤ 1) or the fit is unusable:
        :meth:`value_reasons` says which."""
        x = np.asarray(frequency, float)
        m = np.where(x > 0, np.asarray(monetary, float), 0.0)
        if self.reason_ is not None:
            return np.full(len(x), np.nan), np.full(len(x), np.nan)
        return self._delta(lambda w: self._mean_value(w, x, m), "log")


def clv(
    bgnbd: BetaGeo,
    gg: GammaGamma,
    frequency: Any,
    recency: Any,
    T: Any,
    monetary: Any,
    months: int,
    unit_per_month: float,
    discount_monthly: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Discounted customer lifetime value over ``months``: Σᵢ (E[Y(i)] − E[Y(i−1)]) ·
    E[value] / (1 + d)ⁱ for months i = 1..``months`` (E[Y] from BG/NBD in the models' time
    unit, ``unit_per_month`` units a month; E[value] from Gamma-Gamma, the population mean for
    a customer whose ``monetary`` is 0 or missing). Returns the CLV and its standard error on
    the log scale (delta method over both models' parameters, taken as independent); NaN where
    either model has no finite answer (:meth:`GammaGamma.value_reasons`, ``reason_``)."""
    x, tx, t = _check_rfm(frequency, recency, T)
    m = np.nan_to_num(np.asarray(monetary, float))
    valued = (x > 0) & (m > 0)
    steps = np.arange(1, months + 1) * unit_per_month
    disc = (1 + discount_monthly) ** -np.arange(1, months + 1)

    def purchases(w: np.ndarray) -> np.ndarray:
        cum = bgnbd.expected_curve(steps, x, tx, t, w)
        inc = np.diff(np.c_[np.zeros(len(x)), cum], axis=1)
        return np.asarray(inc @ disc)

    n, se_n = bgnbd._delta(purchases, "log")
    v, se_v = gg.expected_value(np.where(valued, x, 0.0), np.where(valued, m, 0.0))
    return n * v, np.sqrt(se_n**2 + se_v**2)


__all__ = ["BetaGeo", "GammaGamma", "clv"]
