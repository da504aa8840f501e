"""Ripple estimators: pure functions from day × unit sums to an :class:`Effect` with its standard
error, interval and p-value, used by :mod:`corridor.analytics.attribution.ripple` per operational
event.

**Difference in differences** (:func:`did`; Angrist & Pischke 2009, ch. 5) with unit fixed effects:
each unit's change ``Δᵤ = ȳᵤ,window − ȳᵤ,pre`` is averaged over the treated and over the control
units with precision weights ``wᵤ = 1/(1/nᵤ,pre + 1/nᵤ,window)``; effect = treated − control.
Its standard error is the larger of the independent-records one (pooled within-unit variances)
and a cluster-robust one by UTC day (the sandwich over day totals of the influence function, with
the ``G/(G − 1)`` correction), so shocks shared by all records of a day — a carrier's bad day, a
site outage — do not pass for evidence; taking the larger guards against the small-sample
downward bias of cluster-robust errors (Angrist & Pischke 2009, §8.2). Intervals and p-values use
Student's t with ``G − 1`` degrees of freedom (``G`` days). Churn shares are compared the same way
at group level with binomial variances (a person can be in both windows; the independent variance
is then conservative; :func:`proportion_did`).

**Interrupted time series** (:func:`its`, for an event on the whole corridor everywhere, which has
no untouched comparison): segmented regression on daily means with a common linear trend and a
level change at the start (Bernal, Cummins & Gasparrini 2017).

:func:`benjamini_hochberg` adjusts p-values over events (Benjamini & Hochberg 1995).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from corridor.analytics.estimators import stats
from corridor.lazy import lazy

_sp = lazy("scipy.stats")

DAY = pd.Timedelta(days=1)


class Effect(NamedTuple):
    """An estimated effect with its standard error, interval and two-sided p-value, and the
    treated group's raw means and the records behind it."""

    effect: float
    se: float
    low: float
    high: float
    p_value: float
    n_treated: float
    n_treated_pre: float
    n_control: float
    n_control_pre: float
    mean_pre: float
    mean_window: float


_NAN = float("nan")


def _t_effect(est: float, se: float, df: float, conf: float) -> tuple[float, float, float]:
    if not (np.isfinite(est) and np.isfinite(se) and se > 0 and df > 0):
        return _NAN, _NAN, _NAN
    half = float(stats.t_critical(conf, df)) * se
    p = float(2.0 * _sp.t.sf(abs(est / se), df))
    return est - half, est + half, p


def unit_keys(cells: pd.DataFrame) -> np.ndarray:
    """One key per touch point × region of day × unit rows (the ``_u`` column the estimators
    group units by); a caller running many estimates on one frame may add it once."""
    unit = cells["touchpoint"].astype(str) + "\x00" + cells["region"].astype(object).fillna("\x00")
    return unit.to_numpy()


def _units(sub: pd.DataFrame) -> pd.DataFrame:
    return sub if "_u" in sub.columns else sub.assign(_u=unit_keys(sub))


def _raw_means(d: pd.DataFrame, n: str, s: str) -> tuple[float, float, float, float]:
    """Treated pre / window means and counts (all treated records)."""
    t = d[d["_t"]]
    pre, win = t[~t["_w"]], t[t["_w"]]
    with np.errstate(all="ignore"):
        m0 = pre[s].sum() / pre[n].sum() if pre[n].sum() > 0 else _NAN
        m1 = win[s].sum() / win[n].sum() if win[n].sum() > 0 else _NAN
    return float(m0), float(m1), float(pre[n].sum()), float(win[n].sum())


def did(sub: pd.DataFrame, n: str, s: str, ss: str, conf: float) -> Effect:
    """Difference in differences from day × unit sums (rows flagged ``_t`` treated, ``_w``
    window); see the module notes. Pure."""
    d = _units(sub[sub[n] > 0])
    m0, m1, nt0, nt1 = _raw_means(d, n, s)
    nc = d[~d["_t"]]
    ncp, ncw = float(nc.loc[~nc["_w"], n].sum()), float(nc.loc[nc["_w"], n].sum())
    empty = Effect(_NAN, _NAN, _NAN, _NAN, _NAN, nt1, nt0, ncw, ncp, m0, m1)
    if d.empty:
        return empty
    g = d.groupby(["_u", "_t", "_w"], sort=False)[[n, s, ss]].sum().reset_index()
    w1, w0 = g[g["_w"]].set_index("_u"), g[~g["_w"]].set_index("_u")
    both = w1.index.intersection(w0.index)
    if len(both) == 0:
        return empty
    u = pd.DataFrame(
        {
            "t": w1.loc[both, "_t"].astype(bool),
            "N1": w1.loc[both, n].astype(float),
            "S1": w1.loc[both, s].astype(float),
            "Q1": w1.loc[both, ss].astype(float),
            "N0": w0.loc[both, n].astype(float),
            "S0": w0.loc[both, s].astype(float),
            "Q0": w0.loc[both, ss].astype(float),
        }
    )
    if not (u["t"].any() and (~u["t"]).any()):
        return empty
    u["delta"] = u["S1"] / u["N1"] - u["S0"] / u["N0"]
    u["w"] = 1.0 / (1.0 / u["N0"] + 1.0 / u["N1"])
    u["a"] = np.where(u["t"], 1.0, -1.0) * u["w"] / u.groupby("t")["w"].transform("sum")
    est = float((u["a"] * u["delta"]).sum())
    v_iid = 0.0
    for flag in (True, False):
        gu = u[u["t"] == flag]
        for ph in ("0", "1"):
            dof = float((gu[f"N{ph}"] - 1.0).clip(lower=0).sum())
            within = float((gu[f"Q{ph}"] - gu[f"S{ph}"] ** 2 / gu[f"N{ph}"]).sum())
            var = max(within, 0.0) / dof if dof > 0 else _NAN
            v_iid += float((gu["a"] ** 2 / gu[f"N{ph}"]).sum()) * var
    # cluster-robust by day: influence of each day's records on the estimate
    rows = d[d["_u"].isin(both)]
    mean_ph = np.where(
        rows["_w"],
        (u["S1"] / u["N1"]).reindex(rows["_u"]).to_numpy(),
        (u["S0"] / u["N0"]).reindex(rows["_u"]).to_numpy(),
    )
    size = np.where(
        rows["_w"], u["N1"].reindex(rows["_u"]).to_numpy(), -u["N0"].reindex(rows["_u"]).to_numpy()
    )
    a = u["a"].reindex(rows["_u"]).to_numpy()
    infl = a / size * (rows[s].to_numpy(float) - rows[n].to_numpy(float) * mean_ph)
    # days as int64 nanoseconds: the same groups in the same order, hashed without Timestamps
    psi = pd.Series(infl).groupby(_day_keys(rows["day"])).sum()
    n_days = len(psi)
    v_cr = n_days / (n_days - 1.0) * float((psi**2).sum()) if n_days > 1 else _NAN
    se = float(np.sqrt(np.nanmax([v_iid, v_cr])))
    low, high, p = _t_effect(est, se, n_days - 1.0, conf)
    return Effect(est, se, low, high, p, nt1, nt0, ncw, ncp, m0, m1)


def _day_keys(day: pd.Series) -> np.ndarray:
    if isinstance(day.dtype, pd.DatetimeTZDtype):
        return day.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").view("i8")
    return day.to_numpy()


def its(sub: pd.DataFrame, n: str, s: str, ss: str, conf: float) -> Effect:
    """Interrupted time series on the treated units' daily means (within-unit deviations):
    weighted least squares of ``y_d = a + b·t + c·window``, ``c`` the effect; SE the larger of
    the classical and the HC1 sandwich one, t with ``G − 3`` df. Pure."""
    d = _units(sub[(sub[n] > 0) & sub["_t"]])
    m0, m1, nt0, nt1 = _raw_means(d, n, s)
    empty = Effect(_NAN, _NAN, _NAN, _NAN, _NAN, nt1, nt0, 0.0, 0.0, m0, m1)
    if d.empty or d["_w"].all() or not d["_w"].any():
        return empty
    unit_mean = d.groupby("_u")[s].transform("sum") / d.groupby("_u")[n].transform("sum")
    dev = d[s].to_numpy(float) - d[n].to_numpy(float) * unit_mean.to_numpy()
    day = pd.DataFrame({"day": d["day"], "n": d[n].astype(float), "dev": dev, "w": d["_w"]})
    day = day.groupby("day").agg(n=("n", "sum"), dev=("dev", "sum"), w=("w", "first"))
    k = len(day)
    if k < 4:
        return empty
    y = (day["dev"] / day["n"]).to_numpy()
    t = ((day.index - day.index.min()) / DAY).to_numpy(float)
    x = np.column_stack([np.ones(k), (t - t.mean()) / max(t.std(), 1.0), day["w"].astype(float)])
    wt = day["n"].to_numpy()
    xtwx_inv = np.linalg.pinv(x.T @ (x * wt[:, None]))
    beta = xtwx_inv @ (x.T @ (wt * y))
    r = y - x @ beta
    sigma2 = float((wt * r * r).sum() / (k - 3))
    v_classic = sigma2 * xtwx_inv[2, 2]
    score = x * (wt * r)[:, None]
    meat = score.T @ score
    v_hc1 = float((xtwx_inv @ meat @ xtwx_inv)[2, 2]) * k / (k - 3)
    se = float(np.sqrt(max(v_classic, v_hc1)))
    est = float(beta[2])
    low, high, p = _t_effect(est, se, k - 3.0, conf)
    return Effect(est, se, low, high, p, nt1, nt0, 0.0, 0.0, m0, m1)


def proportion_did(counts: dict[str, float], before_after: bool, conf: float) -> Effect:
    """``(p_T,window − p_T,pre) − (p_C,window − p_C,pre)`` of churn shares (or the treated change
    alone when ``before_after``), binomial variances, normal interval and z-test. Pure."""

    def share(key: str) -> tuple[float, float]:
        k = counts.get(f"persons_{key}", 0.0)
        return (counts.get(f"churned_{key}", 0.0) / k if k > 0 else _NAN), k

    (pt1, nt1), (pt0, nt0) = share("T1"), share("T0")
    (pc1, nc1), (pc0, nc0) = share("C1"), share("C0")
    parts = [(pt1, nt1), (pt0, nt0)] + ([] if before_after else [(pc1, nc1), (pc0, nc0)])
    est = pt1 - pt0 - (0.0 if before_after else pc1 - pc0)
    with np.errstate(all="ignore"):
        var = sum(p * (1.0 - p) / k if k > 0 else _NAN for p, k in parts)
    se = float(np.sqrt(var)) if np.isfinite(var) and var > 0 else _NAN
    if np.isfinite(est) and np.isfinite(se):
        z = stats.z_critical(conf)
        low, high, p = est - z * se, est + z * se, float(2.0 * _sp.norm.sf(abs(est / se)))
    else:
        low = high = p = _NAN
    return Effect(float(est), se, low, high, p, nt1, nt0, nc1, nc0, pt0, pt1)


def benjamini_hochberg(p: Any) -> np.ndarray:
    """Benjamini & Hochberg (1995) adjusted p-values (q-values); NaN stays NaN and is not
    counted. Matches ``statsmodels.stats.multitest.multipletests(p, method="fdr_bh")``."""
    arr = np.asarray(pd.Series(p, dtype=float), dtype=float)
    out = np.full(arr.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(arr))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(arr[ok], kind="mergesort")]
    ranked = arr[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    return out


__all__ = [
    "DAY",
    "Effect",
    "benjamini_hochberg",
    "did",
    "its",
    "proportion_did",
    "unit_keys",
]
