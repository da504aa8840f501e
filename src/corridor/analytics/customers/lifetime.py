"""Customer lifetime: is a customer still "alive", how much will they buy, what are they worth.

Non-contractual buying (a customer can stop without telling anyone) is modelled with BG/NBD and
Gamma-Gamma (:mod:`corridor.analytics.estimators.lifetime_models`), fitted on every buyer in the
store.

**Purchases** are interactions whose ``outcome`` is ``purchase`` (the data contract's outcome
for a sale); their ``value`` is the money involved. Purchases of one person on one UTC day count
as one transaction (their values add up), as in Fader, Hardie & Lee's CDNOW analysis. For each
buyer (the canonical person after identity merges): ``frequency`` = transactions after the
first, ``recency`` = weeks from the first to the last, ``T`` = weeks from the first to the
as-of time (``until``, else the last interaction in the store), ``monetary`` = mean value of
the repeat transactions (those with a value). Time is in weeks; horizons are asked for in
months of 30.44 days. A buyer's first purchase inside the data counts as their first purchase.

**No impossible figure.** Where a model has no finite answer — Gamma-Gamma fitted q ≤ 1 (the
mean spend of a buyer without repeat purchases is infinite), fewer than 3 repeat buyers with a
value (no spend model), a fit that did not converge — the figure is NaN (null in JSON) and the
row's ``clv_reason`` says why. Every row keeps 0 ≤ P(alive) ≤ 1, expected purchases ≥ 0,
expected value > 0, CLV ≥ 0, each inside its interval (:func:`_guard`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ibis
import numpy as np
import pandas as pd

from corridor.analytics.core import dimensions as dims
from corridor.analytics.core.dimensions import Filters, Source, TimeLike
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.registry import Analysis, Param, register
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.core.result_columns import described
from corridor.analytics.customers.churn_people import (
    ALLOWED_FILTERS,
    FILTERS_NOTE,
    INTERACTION_FILTERS,
    MONTH_DAYS,
    PERSON_FILTERS,
    _isin,
    _matching,
    canonical_interactions,
    check_person_filters,
)
from corridor.analytics.customers.models import LIFETIME, FittedModels, slot, store_state
from corridor.analytics.estimators.lifetime_models import BetaGeo, GammaGamma, clv
from corridor.lazy import lazy

special = lazy("scipy.special")
sps = lazy("scipy.stats")

PURCHASE_OUTCOME = "purchase"
WEEKS_PER_MONTH = MONTH_DAYS / 7.0
MIN_BUYERS = 20

METHOD = (
    "BG/NBD (Fader, Hardie & Lee 2005) on each buyer's repeat transactions (purchase days), "
    "recency and age in weeks; Gamma-Gamma (Fader, Hardie & Lee 2005) on repeat buyers' mean "
    "transaction value; maximum likelihood; parameter intervals are Wald intervals on the log "
    "scale; per-person intervals by the delta method over the parameters"
)


@dataclass(frozen=True)
class Buyers:
    """One row per buyer: ``person_id``, ``segment``, ``region``, ``frequency``, ``recency``,
    ``T`` (weeks), ``monetary``, ``first_purchase``, ``last_purchase``; and the as-of time."""

    frame: pd.DataFrame
    as_of: pd.Timestamp | None


def buyers(source: Source, until: TimeLike = None, filters: Filters | None = None) -> Buyers:
    """The RFM summary of every buyer (module docstring)."""
    flt = check_person_filters(filters)
    until_t = dims.check_time(until, "until")
    ci = canonical_interactions(source)
    if until_t is not None:
        ci = ci.filter(ci.occurred_at < ibis.literal(until_t))
    last = ci.aggregate(t=ci.occurred_at.max()).to_pandas()["t"].iloc[0]  # NULL when empty
    as_of = (
        pd.Timestamp(until_t)
        if until_t is not None
        else (None if pd.isna(last) else pd.Timestamp(last))
    )
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.tz_localize("UTC")
    buys = ci.filter(ci.outcome == PURCHASE_OUTCOME)
    day = buys.occurred_at.truncate("D")
    days = (
        buys.mutate(day=day)
        .group_by(["cid", "day"])
        .aggregate(value=buys.value.sum(), valued=buys.value.count())
    )
    p = dims.get_table(source, "people")
    p = p.filter(ibis.coalesce(p.canonical_id, p.person_id) == p.person_id)
    preds = [_isin(p[name], vals) for name, vals in flt.items() if name in PERSON_FILTERS]
    if preds:
        p = p.filter(*preds)
    sel = days.inner_join(p.select("person_id", "segment", "region"), days.cid == p.person_id)
    inter = {k: v for k, v in flt.items() if k in INTERACTION_FILTERS}
    if inter:
        sel = sel.semi_join(_matching(source, ci, inter), "cid")
    df = sel.select("cid", "day", "value", "valued", "segment", "region").to_pyarrow().to_pandas()
    cols = ["person_id", "segment", "region", "frequency", "recency", "T", "monetary"]
    if df.empty or as_of is None:
        return Buyers(pd.DataFrame({c: pd.Series(dtype="float64") for c in cols}), as_of)
    d = pd.to_datetime(df["day"])
    df["day"] = d.dt.tz_localize("UTC") if d.dt.tz is None else d.dt.tz_convert("UTC")
    df = df.sort_values(["cid", "day"], kind="mergesort")
    df["repeat"] = df.groupby("cid").cumcount() > 0
    df["value"] = df["value"].where(df["valued"] > 0)
    g = df.groupby("cid", sort=True)
    first, lastd = g["day"].min(), g["day"].max()
    rep = df[df["repeat"]].groupby("cid")["value"].mean()
    week = pd.Timedelta(days=7)
    as_of_day = as_of.floor("D")
    out = pd.DataFrame(
        {
            "person_id": first.index.astype(str),
            "segment": g["segment"].first().to_numpy(),
            "region": g["region"].first().to_numpy(),
            "frequency": (g.size() - 1).to_numpy(float),
            "recency": ((lastd - first) / week).to_numpy(float),
            "T": ((as_of_day - first) / week).to_numpy(float),
            "monetary": rep.reindex(first.index).to_numpy(float),
            "first_purchase": first.to_numpy(),
            "last_purchase": lastd.to_numpy(),
        }
    )
    out["T"] = np.maximum(out["T"], out["recency"])
    return Buyers(out.reset_index(drop=True), as_of)


@dataclass(frozen=True)
class LifetimeFit:
    bgnbd: BetaGeo
    gg: GammaGamma | None
    buyers: Buyers


#: why there is no spend model at all
NO_SPEND_MODEL = (
    "fewer than 3 repeat buyers with a purchase value: the spend model (Gamma-Gamma) cannot "
    "be fitted"
)


def clv_note(fit: LifetimeFit) -> str | None:
    """Why some or all buyers have no CLV under this fit, else None."""
    if fit.bgnbd.reason_ is not None:
        return fit.bgnbd.reason_
    if fit.gg is None:
        return NO_SPEND_MODEL
    return fit.gg.reason_ or fit.gg.note_


def fit_lifetime(b: Buyers, confidence: float = 0.95) -> LifetimeFit:
    f = b.frame
    if len(f) < MIN_BUYERS or (f["frequency"] > 0).sum() < 3:
        raise AnalyticsQueryError(
            f"{len(f)} buyers, {int((f['frequency'] > 0).sum())} with a repeat purchase: the "
            f"lifetime models need at least {MIN_BUYERS} buyers and 3 repeat buyers; widen the "
            "filters or the time range"
        )
    bg = BetaGeo(confidence).fit(f["frequency"], f["recency"], f["T"])
    rb = f[(f["frequency"] > 0) & (f["monetary"] > 0)]
    gg = GammaGamma(confidence).fit(rb["frequency"], rb["monetary"]) if len(rb) >= 3 else None
    return LifetimeFit(bg, gg, b)


@dataclass(frozen=True, eq=False)
class LifetimeResult(AnalyticsResult):
    """``model`` holds the fit's facts: log-likelihoods, buyers, repeat buyers, as-of time."""

    model: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "model": self.model}


def _model_info(fit: LifetimeFit) -> dict[str, Any]:
    f = fit.buyers.frame
    return {
        "time_unit": "week",
        "as_of": fit.buyers.as_of.isoformat() if fit.buyers.as_of is not None else None,
        "buyers": len(f),
        "repeat_buyers": int((f["frequency"] > 0).sum()),
        "bg_nbd_log_likelihood": fit.bgnbd.log_likelihood_,
        "gamma_gamma_log_likelihood": fit.gg.log_likelihood_ if fit.gg else None,
        "gamma_gamma_buyers": fit.gg.n_ if fit.gg else 0,
        # a fit at the edge of the parameter space (e.g. no heterogeneity in buying rates)
        # has no finite information matrix: its intervals are missing
        "intervals_available": bool(
            np.isfinite(np.diag(fit.bgnbd.log_cov_)).all()
            and (fit.gg is None or np.isfinite(np.diag(fit.gg.log_cov_)).all())
        ),
        # why some or all CLVs are not available (e.g. Gamma-Gamma q <= 1), else None
        "clv_note": clv_note(fit),
    }


def _query(filters: Filters | None, until: TimeLike, **extra: Any) -> dict[str, Any]:
    return {
        "filters": {
            k: list(v) if isinstance(v, list | tuple) else [v] for k, v in (filters or {}).items()
        },
        "until": str(until) if until is not None else None,
        **extra,
    }


def lifetime_params(
    source: Source,
    filters: Filters | None = None,
    until: TimeLike = None,
    confidence: float = 0.95,
) -> LifetimeResult:
    """The fitted BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, gamma) parameters with
    standard errors and intervals; ``n`` is the number of buyers."""
    conf = dims.check_confidence(confidence)
    fit = fit_lifetime(buyers(source, until, filters), conf)
    parts = [fit.bgnbd.summary.assign(model="bg_nbd", n=fit.bgnbd.n_)]
    if fit.gg is not None:
        parts.append(fit.gg.summary.assign(model="gamma_gamma", n=fit.gg.n_))
    frame = pd.concat(parts, ignore_index=True)
    frame = frame[["model", "parameter", "n", "estimate", "se", "low", "high"]]
    return LifetimeResult(
        frame=frame,
        n=fit.bgnbd.n_,
        confidence=conf,
        method=METHOD,
        query=_query(filters, until),
        model=_model_info(fit),
    )


def _interval(est: np.ndarray, se: np.ndarray, z: float, scale: str) -> tuple[Any, Any]:
    if scale == "logit":
        lg = special.logit(np.clip(est, 1e-12, 1 - 1e-12))
        low, high = special.expit(lg - z * se), special.expit(lg + z * se)
        # a certain value (P(alive) = 1 without repeat purchases) is its own interval
        return np.where(se == 0, est, low), np.where(se == 0, est, high)
    with np.errstate(divide="ignore"):
        return est * np.exp(-z * se), est * np.exp(z * se)


#: figure -> (smallest possible value, largest, the figures that rest on it)
_POSSIBLE: dict[str, tuple[float, float, tuple[str, ...]]] = {
    "p_alive": (0.0, 1.0, ("p_alive", "expected_purchases", "clv")),
    "expected_purchases": (0.0, np.inf, ("expected_purchases", "clv")),
    "expected_value": (np.finfo(float).tiny, np.inf, ("expected_value", "clv")),
    "clv": (0.0, np.inf, ("clv",)),
}


def _guard(out: pd.DataFrame) -> pd.DataFrame:
    """The invariant of every scored row: each figure is possible (0 ≤ P(alive) ≤ 1, expected
    purchases ≥ 0, expected value > 0, CLV ≥ 0, finite) and inside its interval, or it is NaN.
    A figure that breaks it is withheld with the figures resting on it, and ``clv_reason``
    says so; a CLV that is NaN without a reason gets one."""
    for col, (lo, hi, blanks) in _POSSIBLE.items():
        v = out[col].to_numpy(float)
        tol = 1e-9 * np.maximum(1.0, np.abs(np.nan_to_num(v)))
        bad = ~np.isnan(v) & (~np.isfinite(v) | (v < lo) | (v > hi))
        if f"{col}_low" in out:
            low, high = out[f"{col}_low"].to_numpy(float), out[f"{col}_high"].to_numpy(float)
            bad |= ~np.isnan(v) & ((low > v + tol) | (high < v - tol))
        if not bad.any():
            continue
        for name in blanks:
            for c in (name, f"{name}_low", f"{name}_high"):
                if c in out:
                    out.loc[bad, c] = np.nan
        why = f"the model gave an impossible {col.replace('_', ' ')}; it is not shown"
        out.loc[bad, "clv_reason"] = out.loc[bad, "clv_reason"].map(
            lambda r, why=why: why if pd.isna(r) else f"{r}; {why}"
        )
    gap = out["clv"].isna() & out["clv_reason"].isna()
    out.loc[gap, "clv_reason"] = "the models give no finite value for this buyer"
    return out


def score_people(
    fit: LifetimeFit, horizon_months: float, discount_monthly: float, confidence: float
) -> pd.DataFrame:
    f = fit.buyers.frame
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    x, tx, t, m = f["frequency"], f["recency"], f["T"], f["monetary"].fillna(0.0)
    pa, pa_se = fit.bgnbd.p_alive(x, tx, t)
    ep, ep_se = fit.bgnbd.expected_purchases(horizon_months * WEEKS_PER_MONTH, x, tx, t)
    out = f[["person_id", "segment", "region", "frequency", "recency", "T", "monetary"]].copy()
    out = out.rename(columns={"recency": "recency_weeks", "T": "age_weeks"})
    out["p_alive"] = pa
    out["p_alive_low"], out["p_alive_high"] = _interval(pa, pa_se, z, "logit")
    out["expected_purchases"] = ep
    out["expected_purchases_low"], out["expected_purchases_high"] = _interval(ep, ep_se, z, "log")
    reasons = np.full(len(out), fit.bgnbd.reason_, dtype=object)
    if fit.gg is not None:
        valued = (x > 0) & (m > 0)
        xv = np.where(valued, x, 0.0)
        ev, _ = fit.gg.expected_value(xv, np.where(valued, m, 0.0))
        out["expected_value"] = ev
        months = max(int(np.ceil(horizon_months)), 1)
        v, v_se = clv(fit.bgnbd, fit.gg, x, tx, t, m, months, WEEKS_PER_MONTH, discount_monthly)
        out["clv"] = v
        out["clv_low"], out["clv_high"] = _interval(v, v_se, z, "log")
        if fit.bgnbd.reason_ is None:
            reasons = fit.gg.value_reasons(xv)
    else:
        out["expected_value"] = np.nan
        out["clv"] = out["clv_low"] = out["clv_high"] = np.nan
        reasons[:] = fit.bgnbd.reason_ or NO_SPEND_MODEL
    # why clv (and expected_value, where it is missing too) is not available, else None
    out["clv_reason"] = pd.Series(reasons, index=out.index, dtype=object)
    return _guard(out)


def _check_horizon(horizon_months: float, discount_monthly: float) -> None:
    if not 0 < float(horizon_months) <= 120:
        raise AnalyticsQueryError(
            f"horizon_months must be above 0 and at most 120, got {horizon_months!r}"
        )
    if not 0 <= float(discount_monthly) < 1:
        raise AnalyticsQueryError(
            f"discount_monthly must be at least 0 and below 1 (e.g. 0.01 for 1 % a month), "
            f"got {discount_monthly!r}"
        )


def lifetime_table(
    source: Source,
    horizon_months: float = 12.0,
    discount_monthly: float = 0.01,
    filters: Filters | None = None,
    until: TimeLike = None,
    confidence: float = 0.95,
    limit: int | None = None,
) -> LifetimeResult:
    """Per buyer, highest CLV first: ``frequency``, ``recency_weeks``, ``age_weeks``,
    ``monetary``; ``p_alive``, ``expected_purchases`` in the next ``horizon_months`` and
    ``clv`` (discounted at ``discount_monthly``), each with ``_low``/``_high``;
    ``expected_value`` per transaction (Gamma-Gamma); ``clv_reason`` says why a ``clv`` is
    NaN (buyers without one come last; ``model["clv_not_available"]`` counts them)."""
    conf = dims.check_confidence(confidence)
    _check_horizon(horizon_months, discount_monthly)
    if limit is not None and limit < 1:
        raise AnalyticsQueryError(f"limit must be at least 1, got {limit}")
    fit = fit_lifetime(buyers(source, until, filters), conf)
    frame = score_people(fit, float(horizon_months), float(discount_monthly), conf)
    missing = int(frame["clv"].isna().sum())
    key = "clv" if fit.gg is not None else "expected_purchases"
    frame = frame.sort_values([key, "person_id"], ascending=[False, True], kind="mergesort")
    frame = frame.reset_index(drop=True)
    if limit is not None:
        frame = frame.head(limit)
    return LifetimeResult(
        frame=frame,
        n=fit.bgnbd.n_,
        confidence=conf,
        method=METHOD,
        query=_query(
            filters, until, horizon_months=float(horizon_months), discount_monthly=discount_monthly
        ),
        model=_model_info(fit)
        | {"clv_not_available": missing}
        | {str(k): float(v) for k, v in fit.bgnbd.params_.items()}
        | ({str(k): float(v) for k, v in fit.gg.params_.items()} if fit.gg else {}),
    )


def person_value(
    source: Source,
    person_id: str,
    horizon_months: float = 12.0,
    discount_monthly: float = 0.01,
    confidence: float = 0.95,
    *,
    models: FittedModels | None = None,
    refit: bool = True,
) -> dict[str, Any]:
    """One person's lifetime figures for a customer page: ``{person_id, status, p_alive,
    expected_purchases, expected_value, clv (each with _low/_high), clv_reason, frequency,
    recency_weeks, age_weeks, monetary, horizon_months, as_of}``; a figure the models cannot
    give is None and ``clv_reason`` says why; ``status`` is ``buyer``, ``no_purchases``
    or ``unavailable`` (too few buyers to fit the models yet; ``reason`` says why — it never
    raises for lack of data, so a page can always show it).

    The models are fitted on the whole store; ``models`` (the owner's
    :class:`~corridor.analytics.customers.models.FittedModels`) keeps them once per store state
    (:func:`~corridor.analytics.customers.models.store_state`) and parameters, and without it
    they are fitted for this call alone. ``refit`` as in
    :func:`corridor.analytics.customers.churn_risk.person_risk` (``status: pending`` when
    ``refit=False`` finds no fitted model kept, with when the fit in progress should be done)."""
    _check_horizon(horizon_months, discount_monthly)
    conf = dims.check_confidence(confidence)
    p = dims.get_table(source, "people")
    row = p.filter(p.person_id == person_id).select("canonical_id").to_pyarrow().to_pylist()
    canonical = (row[0]["canonical_id"] or person_id) if row else person_id
    params = (float(horizon_months), float(discount_monthly), conf)

    def fit() -> tuple[pd.DataFrame, dict[str, Any]]:
        try:
            lt = fit_lifetime(buyers(source), conf)
            scored = score_people(lt, float(horizon_months), float(discount_monthly), conf)
            return scored.set_index("person_id"), _model_info(lt)
        except AnalyticsQueryError as e:  # too few buyers: say so, never fail a page
            return pd.DataFrame(), {"as_of": None, "unavailable": str(e)}

    # the model the app keeps: person_value's own defaults
    defaults = person_value.__defaults__ or ()
    name = slot(LIFETIME, params, tuple(defaults[:3]))
    if not refit:  # whatever model is kept, however old; pending when there is none yet
        kept = models.latest(name) if models is not None else None
        if kept is None or kept[0][-3:] != params:
            pending = {"person_id": person_id, "canonical_id": canonical, "status": "pending"}
            return pending | (models.state(LIFETIME).pending() if models is not None else {})
        scored, info = kept[1]
    elif models is None:
        scored, info = fit()
    else:
        scored, info = models.fitted(name, (*store_state(source), *params), fit)
    out: dict[str, Any] = {
        "person_id": person_id,
        "canonical_id": canonical,
        "horizon_months": float(horizon_months),
        "discount_monthly": float(discount_monthly),
        "confidence": conf,
        "as_of": info["as_of"],
    }
    if "unavailable" in info:
        return out | {"status": "unavailable", "reason": info["unavailable"]}
    if canonical not in scored.index:
        return out | {"status": "no_purchases"}
    r = scored.loc[canonical]
    values: dict[str, Any] = {
        str(k): (
            None if pd.isna(v) else (float(v) if isinstance(v, int | float | np.number) else v)
        )
        for k, v in r.items()
    }
    return out | {"status": "buyer"} | values


LIFETIME_PARAMS = register(
    Analysis(
        "lifetime",
        "BG/NBD and Gamma-Gamma parameters",
        lifetime_params,
        path="/lifetime",
        command=("lifetime", "params"),
        tag="churn and lifetime",
        description="The fitted BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, gamma) "
        "parameters with standard errors and intervals; the fits' log-likelihoods and the "
        f"buyers they rest on in `model`. {FILTERS_NOTE}",
        filters=ALLOWED_FILTERS,
        since=False,
        columns=described(
            "model:str bg_nbd or gamma_gamma",
            "parameter:str the parameter's name",
            "n:int buyers the fit rests on",
            "estimate the fitted value",
            "se its standard error",
            "low lower end of its interval",
            "high upper end of its interval",
        ),
        extras=("model",),
    )
)  # fmt: skip

LIFETIME_PEOPLE = register(
    Analysis(
        "lifetime_people",
        "Customer lifetime value per buyer",
        lifetime_table,
        path="/lifetime/people",
        command=("lifetime", "people"),
        tag="churn and lifetime",
        description="Per buyer, highest CLV first: P(alive), expected purchases in "
        "`horizon_months`, expected value per purchase and CLV discounted at "
        "`discount_monthly`, each with an interval; `clv_reason` says why a CLV is missing. "
        f"{FILTERS_NOTE}",
        filters=ALLOWED_FILTERS,
        since=False,
        params=(
            Param(
                "horizon_months", "float", 12.0,
                "months ahead of the expected purchases and CLV", gt=0, le=120,
            ),
            Param(
                "discount_monthly", "float", 0.01,
                "monthly discount rate of the CLV (0.01 for 1 % a month)", ge=0, lt=1,
            ),
            Param("limit", "int", 100, "the most valuable buyers shown", ge=1),
        ),
        columns=described(
            "person_id:str the buyer (canonical id)",
            "segment:str the buyer's segment",
            "region:str the buyer's region",
            "frequency transactions after the first (a day's purchases: one)",
            "recency_weeks weeks from the first to the last purchase",
            "age_weeks weeks from the first purchase to the as-of time",
            "monetary mean value of the repeat transactions",
            "p_alive± probability the buyer is still active",
            "expected_purchases± purchases expected in the horizon",
            "expected_value expected value per purchase (Gamma-Gamma)",
            "clv± customer lifetime value over the horizon, discounted",
            "clv_reason:str why the CLV is not available, else null",
        ),
        extras=("model",),
        brief=(
            "person_id", "frequency", "p_alive", "expected_purchases", "expected_value", "clv",
            "clv_low", "clv_high",
        ),
    )
)  # fmt: skip

__all__ = [
    "PURCHASE_OUTCOME",
    "Buyers",
    "LifetimeResult",
    "buyers",
    "fit_lifetime",
    "lifetime_params",
    "lifetime_table",
    "person_value",
]
