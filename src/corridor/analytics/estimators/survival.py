"""Survival estimators on plain arrays: Kaplan–Meier, the log-rank test, Cox regression.

No store here: these take durations, event flags and covariates and are tested against published
reference fits. :mod:`corridor.analytics.customers.churn` builds those arrays from the store.

* :func:`kaplan_meier` — the product-limit estimate (Kaplan & Meier 1958) with Greenwood's
  variance (Greenwood 1926) and the log-log ("exponential Greenwood") pointwise interval
  (Kalbfleisch & Prentice 1980), which stays inside (0, 1); delayed entry (left truncation)
  is supported. The estimates come from :class:`statsmodels.duration.survfunc.SurvfuncRight`.
* :func:`log_rank` — the Mantel–Haenszel log-rank test of equal survival across groups
  (Mantel 1966; Peto & Peto 1972), from :func:`statsmodels.duration.survfunc.survdiff`.
* :class:`CoxPH` — Cox proportional hazards (Cox 1972) by partial likelihood with Efron's
  handling of ties (Efron 1977), fitted as :class:`statsmodels.duration.hazard_regression.PHReg`
  fits it but vectorised (:mod:`corridor.analytics.estimators.cox_efron`);
  adds hazard ratios with Wald intervals, Harrell's concordance (Harrell et al. 1982), the
  Breslow baseline cumulative hazard, and the Grambsch–Therneau test of proportional hazards
  on scaled Schoenfeld residuals (Grambsch & Therneau 1994).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.estimators.cox_efron import fit_efron
from corridor.lazy import lazy

sps = lazy("scipy.stats")


def _arrays(
    time: Any, event: Any, entry: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    if t.ndim != 1 or t.shape != e.shape:
        raise AnalyticsQueryError("durations and event flags must be 1-d arrays of one length")
    if len(t) == 0:
        raise AnalyticsQueryError("no one to analyse: the selection has no customers")
    if not np.isfinite(t).all() or (t < 0).any():
        raise AnalyticsQueryError("durations must be finite and not negative")
    if not np.isin(e, (0.0, 1.0)).all():
        raise AnalyticsQueryError("event flags must be 0 (censored) or 1 (event)")
    en = None
    if entry is not None:
        en = np.asarray(entry, dtype=float)
        if en.shape != t.shape or (en < 0).any() or (en > t).any():
            raise AnalyticsQueryError("entry times must be >= 0 and not after the durations")
    return t, e, en


def kaplan_meier(
    time: Any, event: Any, entry: Any = None, confidence: float = 0.95
) -> pd.DataFrame:
    """The Kaplan–Meier curve at each distinct event time.

    Columns: ``time``, ``at_risk`` (n at risk just before it), ``events``, ``survival``,
    ``se`` (Greenwood), ``low``/``high`` (log-log interval at ``confidence``). The first row is
    time 0 with survival 1. ``entry`` gives delayed-entry times (a person joins the risk set
    only after it).
    """
    from statsmodels.duration.survfunc import SurvfuncRight

    t, e, en = _arrays(time, event, entry)
    z = sps.norm.ppf(0.5 + confidence / 2)
    if e.sum() == 0:
        times = np.array([], dtype=float)
        n_risk = events = surv = se = times
    else:
        sf = SurvfuncRight(t, e, entry=en)
        times = np.asarray(sf.surv_times, dtype=float)
        n_risk = np.asarray(sf.n_risk, dtype=float)
        events = np.asarray(sf.n_events, dtype=float)
        surv = np.asarray(sf.surv_prob, dtype=float)
        se = np.asarray(sf.surv_prob_se, dtype=float)
    with np.errstate(all="ignore"):
        # log-log: Var(log(-log S)) = Var(log S) / (log S)^2, Var(log S) = se^2 / S^2
        v = np.where(surv > 0, se / (surv * np.abs(np.log(surv))), np.nan)
        low = np.where((surv > 0) & (surv < 1), surv ** np.exp(z * v), np.nan)
        high = np.where((surv > 0) & (surv < 1), surv ** np.exp(-z * v), np.nan)
    low = np.where(surv == 1, 1.0, np.where(surv == 0, 0.0, low))
    high = np.where(surv == 1, 1.0, np.where(surv == 0, 0.0, high))
    start_n = float((en == 0).sum() if en is not None else len(t))
    frame = pd.DataFrame(
        {
            "time": np.r_[0.0, times],
            "at_risk": np.r_[start_n, n_risk].astype("int64"),
            "events": np.r_[0.0, events].astype("int64"),
            "survival": np.r_[1.0, surv],
            "se": np.r_[0.0, se],
            "low": np.r_[1.0, low],
            "high": np.r_[1.0, high],
        }
    )
    return frame


def survival_at(curve: pd.DataFrame, times: Sequence[float]) -> pd.DataFrame:
    """The step function of a :func:`kaplan_meier` curve read at ``times`` (the row of the last
    event time at or before each); rows past the last event time keep its value."""
    idx = np.searchsorted(curve["time"].to_numpy(), np.asarray(times, float), side="right") - 1
    out = curve.iloc[np.maximum(idx, 0)].reset_index(drop=True)
    return out.assign(time=np.asarray(times, float))


@dataclass(frozen=True)
class LogRank:
    """Log-rank test of equal survival across groups: chi-square, degrees of freedom, p."""

    chi2: float
    df: int
    p_value: float
    groups: int
    #: why the test gives no answer (chi2 and p are NaN), else None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "test": "log-rank",
            "chi2": self.chi2,
            "df": self.df,
            "p_value": self.p_value,
            "groups": self.groups,
            "reason": self.reason,
        }


def log_rank(time: Any, event: Any, group: Any, entry: Any = None) -> LogRank:
    """The log-rank (Mantel–Haenszel) test that all groups share one survival curve."""
    from statsmodels.duration.survfunc import survdiff

    t, e, en = _arrays(time, event, entry)
    g = np.asarray(pd.Series(group, dtype="object").fillna("(missing)").astype(str))
    k = len(np.unique(g))

    def undefined(reason: str) -> LogRank:
        return LogRank(float("nan"), max(k - 1, 0), float("nan"), k, reason)

    if k < 2:
        return undefined("fewer than two groups to compare")
    if e.sum() == 0:
        return undefined("no events (churn) in the range: nothing to compare")
    try:
        chi2, p = survdiff(t, e, g, entry=en)
    except np.linalg.LinAlgError:
        return undefined(
            "the test is undefined here: its variance matrix is singular (a group has no one "
            "at risk at the event times, or too few events); widen the range or group less"
        )
    if not np.isfinite(chi2):
        return undefined("the test statistic is not finite (too few events)")
    return LogRank(float(chi2), k - 1, float(p), k)


def _prefix_below(values: np.ndarray, prefix: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """For each query ``q`` and each row ``b`` of ``bounds``: how many of
    ``values[:prefix[q]]`` are below ``bounds[b, q]``.

    Offline with a merge-sort tree: ``[0, prefix)`` splits into at most one aligned block of
    each power-of-two size; each level's blocks are sorted once and counted by bisection."""
    n = len(values)
    out = np.zeros(bounds.shape, np.int64)
    if n == 0 or len(prefix) == 0:
        return out
    span = int(max(values.max(), bounds.max())) + 2
    pos = np.arange(n, dtype=np.int64)
    level = 0
    while (1 << level) <= n:
        keys = np.sort((pos >> level) * span + values)
        has = ((prefix >> level) & 1) == 1
        block = (prefix[has] >> level) - 1
        for row in range(len(bounds)):
            below = np.searchsorted(keys, block * span + bounds[row, has], side="left")
            out[row, has] += below - block * (1 << level)
        level += 1
    return out


def concordance(time: Any, event: Any, score: Any) -> float:
    """Harrell's C: among pairs where the one who failed first had an event, the share in
    which that one had the higher risk score (ties in score count one half).

    ``O(n log² n)``, vectorised: people sorted by time, longest first; each event is compared
    with everyone before its group of tied times."""
    t = np.asarray(time, float)
    e = np.asarray(event, bool)
    s = np.asarray(score, float)
    if len(t) == 0:
        return float("nan")
    rank = np.unique(s, return_inverse=True)[1].astype(np.int64)
    order = np.argsort(-t, kind="mergesort")
    ts, rs, es = t[order], rank[order], e[order]
    longer = np.searchsorted(-ts, -ts, side="left")  # people who lasted strictly longer
    sel = es & (longer > 0)
    prefix, r = longer[sel], rs[sel]
    lower, below_or_same = _prefix_below(rs, prefix, np.stack([r, r + 1]))
    same = below_or_same - lower
    pairs = float(prefix.sum())
    concordant, tied = float(lower.sum()), float(same.sum())
    return float((concordant + 0.5 * tied) / pairs) if pairs else float("nan")


class CoxPH:
    """Cox proportional hazards regression.

    ``CoxPH(confidence=0.95, ties="efron").fit(time, event, X, entry=None)``; fitted:
    ``params_`` (log hazard ratios, a Series named by ``X``'s columns), ``se_``, ``cov_``,
    ``log_likelihood_``, ``concordance_``, ``n_``, ``events_``, ``means_``; :attr:`summary`
    is one row per covariate with the coefficient, standard error, hazard ratio and its Wald
    interval, z and p; :meth:`ph_test` the proportional-hazards check.
    """

    def __init__(self, confidence: float = 0.95, ties: str = "efron") -> None:
        if ties not in ("efron", "breslow"):
            raise AnalyticsQueryError(f"ties must be 'efron' or 'breslow', got {ties!r}")
        self.confidence = confidence
        self.ties = ties

    def fit(
        self, time: Any, event: Any, X: pd.DataFrame, entry: Any = None, subject: Any = None
    ) -> CoxPH:
        """Fit on one row per subject, or, with time-varying covariates, one row per
        (``entry``, ``time``] episode of a ``subject`` (counting-process form: only a
        subject's last episode may end in an event). Concordance is then computed on each
        subject's last episode."""
        t, e, en = _arrays(time, event, entry)
        if len(X) != len(t):
            raise AnalyticsQueryError("covariates must have one row per duration")
        if e.sum() == 0:
            raise AnalyticsQueryError(
                "no events (churns) in the selection: a hazard model needs at least one; "
                "widen the filters or the time range"
            )
        x = X.to_numpy(dtype=float)
        if not np.isfinite(x).all():
            raise AnalyticsQueryError("covariates must be finite numbers")
        self.means_ = pd.Series(x.mean(axis=0), index=X.columns)
        xc = x - self.means_.to_numpy()
        entry_t = en if en is not None else np.zeros_like(t)
        with np.errstate(all="ignore"):
            res = fit_efron(t, e, xc, entry_t, efron=self.ties == "efron")
        if not res.converged:
            raise AnalyticsQueryError(
                "the Cox model did not converge: some covariates separate churners perfectly "
                "or are collinear; use fewer touch points (a higher min_rated)"
            )
        self._res = res
        self._entry = entry_t
        self._t, self._e, self._x = t, e, xc
        self.columns_ = list(X.columns)
        self.params_ = pd.Series(res.params, index=X.columns)
        self.cov_ = pd.DataFrame(res.cov, X.columns, X.columns)
        self.se_ = pd.Series(np.sqrt(np.diag(self.cov_)), index=X.columns)
        self.log_likelihood_ = res.loglike
        self.n_ = len(t)
        self.events_ = int(e.sum())
        score = xc @ self.params_.to_numpy()
        if subject is None:
            self.subjects_ = self.n_
            self.concordance_ = concordance(t, e, score)
        else:
            last = ~pd.Series(np.asarray(subject)).duplicated(keep="last").to_numpy()
            self.subjects_ = int(last.sum())
            self.concordance_ = concordance(t[last], e[last], score[last])
        return self

    @property
    def summary(self) -> pd.DataFrame:
        z = sps.norm.ppf(0.5 + self.confidence / 2)
        b, se = self.params_.to_numpy(), self.se_.to_numpy()
        zval = b / se
        return pd.DataFrame(
            {
                "covariate": self.columns_,
                "coef": b,
                "se": se,
                "hazard_ratio": np.exp(b),
                "hazard_ratio_low": np.exp(b - z * se),
                "hazard_ratio_high": np.exp(b + z * se),
                "z": zval,
                "p_value": 2 * sps.norm.sf(np.abs(zval)),
            }
        )

    def log_partial_hazard(self, X: pd.DataFrame) -> np.ndarray:
        """x'β with x centred on the fitting means (0 = the average person)."""
        x = X[self.columns_].to_numpy(float) - self.means_.to_numpy()
        return np.asarray(x @ self.params_.to_numpy())

    def baseline_cumulative_hazard(self) -> tuple[np.ndarray, np.ndarray]:
        """Breslow's estimate H0(t) at the distinct event times, for the average person."""
        t, e = self._t, self._e
        r = np.exp(self._x @ self.params_.to_numpy())
        ev_times = np.unique(t[e == 1])
        entry = self._entry
        # risk set at s: entered before s and still there at s
        order_t = np.argsort(t)
        cum_t = np.r_[0.0, np.cumsum(r[order_t])]
        out_before = cum_t[np.searchsorted(t[order_t], ev_times, side="left")]
        order_en = np.argsort(entry)
        cum_en = np.r_[0.0, np.cumsum(r[order_en])]
        in_before = cum_en[np.searchsorted(entry[order_en], ev_times, side="left")]
        at_risk = in_before - out_before
        d = np.bincount(np.searchsorted(ev_times, t[e == 1]), minlength=len(ev_times))
        return ev_times, np.cumsum(d / at_risk)

    def ph_test(self, transform: str = "km") -> pd.DataFrame:
        """Grambsch–Therneau test of proportional hazards, one row per covariate and a
        ``GLOBAL`` row: ``rho`` (correlation of the scaled Schoenfeld residuals with
        transformed time), ``chi2`` (1 df; p covariates for the global row), ``p_value``.
        ``transform``: ``km`` (1 − left-continuous KM, R's default), ``rank`` or ``identity``.
        A small p says the hazard ratio changes over time."""
        ev = self._e == 1
        r = self._res.schoenfeld
        times = self._t[ev]
        if transform == "identity":
            g = times
        elif transform == "rank":
            g = sps.rankdata(times)
        elif transform == "km":
            curve = kaplan_meier(self._t, self._e)
            idx = np.searchsorted(curve["time"].to_numpy(), times, side="left") - 1
            g = 1.0 - curve["survival"].to_numpy()[np.maximum(idx, 0)]
        else:
            raise AnalyticsQueryError("transform must be 'km', 'rank' or 'identity'")
        d = len(g)
        V = self.cov_.to_numpy()
        gc = g - g.mean()
        u = gc @ (r @ V)  # sum_i (g_i - gbar) (V r_i)
        ss = float(gc @ gc)
        chi2 = d * u**2 / (np.diag(V) * ss)
        scaled = d * (r @ V) + self.params_.to_numpy()
        rho = [
            float(np.corrcoef(g, scaled[:, k])[0, 1]) if np.std(scaled[:, k]) > 0 else np.nan
            for k in range(scaled.shape[1])
        ]
        glob = float(d * u @ np.linalg.solve(V, u) / ss)
        p = len(u)
        return pd.DataFrame(
            {
                "covariate": [*self.columns_, "GLOBAL"],
                "rho": [*rho, np.nan],
                "chi2": [*chi2.tolist(), glob],
                "df": [*([1] * p), p],
                "p_value": [*sps.chi2.sf(chi2, 1).tolist(), float(sps.chi2.sf(glob, p))],
            }
        )


__all__ = ["CoxPH", "LogRank", "concordance", "kaplan_meier", "log_rank", "survival_at"]
