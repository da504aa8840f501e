"""Churn risk per customer: the probability of churning within the next ``horizon`` months.

**Model.** A logistic regression with a small ridge penalty (:class:`RiskModel`), trained as
the classic "look-back" churn classifier: the state of every customer still active ``horizon``
months before the as-of time (their features computed only from data before that cut-off) and
whether they churned in the ``horizon`` months that followed. Applied to the customers active
at the as-of time, it gives each one's probability of churning in the next ``horizon`` months.
Validated on IBM's Telco churn data (5-fold cross-validated AUC, ``docs/churn-and-lifetime.md``)
and, on every fit, by a 5-fold cross-validated AUC of the look-back set (``cv_auc``).

**Features** (numeric ones standardised): tenure and log tenure (months), each touch point's
most recent gap (centred; unrated = the touch point's mean) for touch points with at least
``min_rated`` rated customers, log interactions per observed month, log interactions in the
last 90 days, log days since the last interaction, and segment and region indicators.

**Reasons.** A customer's log-odds minus the average customer's splits exactly into one term
per feature, βₖ·(xₖ − x̄ₖ); the reasons are the features with the largest positive terms.

**Interval.** Wald interval on the log-odds from the inverse penalised information matrix
(parameter uncertainty only), mapped through the logistic function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special
from scipy import stats as sps

from corridor.analytics.core.dimensions import Filters, Source, TimeLike, check_confidence
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.registry import Analysis, Param, described, register
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.core.scoping import ScopeRule, own_touchpoints
from corridor.analytics.customers.churn_people import (
    ALLOWED_FILTERS,
    FILTERS_NOTE,
    MONTH_DAYS,
    CustomerTable,
    customer_table,
)
from corridor.analytics.customers.models import CHURN_RISK, FittedModels, store_state

HORIZON_MONTHS = 3.0
MIN_RATED = 30
MIN_EVENTS = 10
REASONS = 3


class RiskModel:
    """Ridge-penalised logistic regression on standardised features.

    ``fit(X, y) -> self``; fitted ``coef_`` (per original feature unit), ``intercept_``,
    ``means_``, ``scales_``, ``cov_`` (inverse penalised information, standardised scale);
    :meth:`predict` gives probabilities with Wald intervals, :meth:`contributions` the split of
    each row's log-odds against the average row.
    """

    def __init__(self, l2: float = 10.0) -> None:
        self.l2 = l2

    def fit(self, X: pd.DataFrame, y: Any) -> RiskModel:
        x = X.to_numpy(float)
        yy = np.asarray(y, float)
        if len(np.unique(yy)) < 2:
            raise AnalyticsQueryError("the training data need both churners and non-churners")
        self.columns_ = list(X.columns)
        self.means_ = x.mean(axis=0)
        sd = x.std(axis=0)
        self.scales_ = np.where(sd > 0, sd, 1.0)
        z = np.c_[np.ones(len(x)), (x - self.means_) / self.scales_]
        pen = np.r_[0.0, np.full(x.shape[1], self.l2)]

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            eta = z @ w
            nll = float(np.sum(np.logaddexp(0.0, eta) - yy * eta) + 0.5 * np.sum(pen * w * w))
            grad = z.T @ (special.expit(eta) - yy) + pen * w
            return nll, grad

        w0 = np.zeros(z.shape[1])
        w0[0] = special.logit(np.clip(yy.mean(), 1e-6, 1 - 1e-6))
        res = optimize.minimize(loss, w0, jac=True, method="L-BFGS-B", options={"maxiter": 2000})
        w = res.x
        p = special.expit(z @ w)
        info = (z * (p * (1 - p))[:, None]).T @ z + np.diag(pen)
        self.cov_ = np.linalg.pinv(info)
        self.w_ = w
        self.coef_ = pd.Series(w[1:] / self.scales_, index=self.columns_)
        self.intercept_ = float(w[0] - np.sum(w[1:] * self.means_ / self.scales_))
        self.n_ = len(yy)
        self.events_ = int(yy.sum())
        return self

    def _z(self, X: pd.DataFrame) -> np.ndarray:
        x = X[self.columns_].to_numpy(float)
        return np.c_[np.ones(len(x)), (x - self.means_) / self.scales_]

    def decision(self, X: pd.DataFrame) -> np.ndarray:
        """The log-odds of each row."""
        return np.asarray(self._z(X) @ self.w_)

    def predict(self, X: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
        z = self._z(X)
        eta = z @ self.w_
        se = np.sqrt(np.einsum("ij,jk,ik->i", z, self.cov_, z))
        q = sps.norm.ppf(0.5 + confidence / 2)
        return pd.DataFrame(
            {
                "risk": special.expit(eta),
                "risk_low": special.expit(eta - q * se),
                "risk_high": special.expit(eta + q * se),
            },
            index=X.index,
        )

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """βₖ·(xₖ − x̄ₖ) per row and feature: they sum to the row's log-odds minus the
        log-odds of the average row."""
        x = X[self.columns_].to_numpy(float)
        return pd.DataFrame(
            (x - self.means_) * self.coef_.to_numpy(), index=X.index, columns=self.columns_
        )


def roc_auc(score: Any, label: Any) -> float:
    """Area under the ROC curve: the Mann–Whitney probability that a random positive scores
    above a random negative (ties count one half)."""
    s = np.asarray(score, float)
    y = np.asarray(label, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = sps.rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def stratified_folds(label: Any, k: int = 5, seed: int = 0) -> np.ndarray:
    """A fold number 0..k−1 per row, each fold with the same share of positives."""
    y = np.asarray(label, bool)
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=np.int64)
    for cls in (False, True):
        idx = rng.permutation(np.flatnonzero(y == cls))
        folds[idx] = np.arange(len(idx)) % k
    return folds


def cross_validated_auc(
    X: pd.DataFrame, y: Any, k: int = 5, seed: int = 0, l2: float = 10.0
) -> tuple[float, list[float]]:
    """Mean and per-fold AUC of :class:`RiskModel` over ``k`` stratified folds."""
    yy = np.asarray(y, int)
    folds = stratified_folds(yy, k, seed)
    aucs = []
    for f in range(k):
        train, test = folds != f, folds == f
        m = RiskModel(l2).fit(X[train], yy[train])
        aucs.append(roc_auc(m.decision(X[test]), yy[test]))
    return float(np.mean(aucs)), aucs


def design_matrix(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str] = ()
) -> pd.DataFrame:
    """Numeric columns as float, and one indicator per level of each categorical column
    (missing is a level of its own), named ``column=level``."""
    parts = [frame[list(numeric)].astype(float).reset_index(drop=True)]
    for col in categorical:
        values = frame[col].astype("object").where(frame[col].notna(), "(missing)").astype(str)
        dummies = pd.get_dummies(values, prefix=col, prefix_sep="=", dtype=float)
        parts.append(dummies.reset_index(drop=True))
    return pd.concat(parts, axis=1)


def customer_features(
    ct: CustomerTable,
    touchpoints: Sequence[str],
    columns: Sequence[str] | None = None,
    centres: pd.Series | None = None,
) -> pd.DataFrame:
    """The :class:`RiskModel` features of every customer in ``ct`` (module docstring);
    ``columns`` aligns the result to a fitted model's columns (missing ones are 0); gaps are
    centred on ``centres`` (per touch point; default: their means in ``ct``), so that scoring
    uses the training set's centres."""
    p = ct.people.reset_index(drop=True)
    observed = np.maximum(p["tenure"] - p["entry"], 1.0 / MONTH_DAYS)
    base = pd.DataFrame(
        {
            "tenure_months": p["tenure"],
            "log_tenure": np.log1p(p["tenure"]),
            "log_interactions_per_month": np.log1p(p["n_interactions"] / observed),
            "log_recent_interactions": np.log1p(p["n_recent"]),
            "log_days_since_last": np.log1p(p["days_since_last"]),
            "segment": p["segment"],
            "region": p["region"],
        }
    )
    gaps = ct.latest.reindex(index=p["person_id"], columns=list(touchpoints))
    mid = gaps.mean() if centres is None else centres.reindex(gaps.columns).fillna(0.0)
    centred = (gaps - mid).fillna(0.0).reset_index(drop=True)
    centred.columns = [f"gap:{c}" for c in touchpoints]
    numeric = [c for c in base.columns if c not in ("segment", "region")]
    X = pd.concat([design_matrix(base, numeric, ["segment", "region"]), centred], axis=1)
    if columns is not None:
        X = X.reindex(columns=list(columns), fill_value=0.0)
    return X


@dataclass(frozen=True, eq=False)
class RiskResult(AnalyticsResult):
    """Active customers' churn risk within ``horizon_months``, highest first.

    ``frame`` columns: ``person_id``, ``segment``, ``region``, ``tenure_months``, ``risk``
    with ``risk_low``/``risk_high``, ``reasons`` (the up to three features that raise the risk
    most, ``;``-separated). ``model``: horizon, training size and events, the look-back
    set's 5-fold cross-validated AUC, coefficients."""

    model: dict[str, Any] = field(default_factory=dict)
    contributions: pd.DataFrame | None = None

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "model": self.model}


def _describe(feature: str, value: float) -> str:
    if feature.startswith("gap:"):
        return f"gap at {feature[4:]} {value:+.1f} vs average"
    if "=" in feature:
        return feature
    return {
        "tenure_months": f"tenure {value:.0f} months",
        "log_tenure": f"tenure {np.expm1(value):.0f} months",
        "log_interactions_per_month": f"{np.expm1(value):.1f} interactions a month",
        "log_recent_interactions": f"{np.expm1(value):.0f} interactions in 90 days",
        "log_days_since_last": f"{np.expm1(value):.0f} days since last interaction",
    }.get(feature, feature)


def _reasons(contrib: pd.DataFrame, X: pd.DataFrame, top: int = REASONS) -> list[str]:
    c = contrib.to_numpy()
    order = np.argsort(-c, axis=1)[:, :top]
    names = np.array(contrib.columns)
    xv = X.to_numpy(float)
    out = []
    for i in range(len(c)):
        parts = []
        for j in order[i]:
            if c[i, j] <= 0:
                break
            name = str(names[j])
            if "=" in name and xv[i, j] == 0:
                continue
            value = float(xv[i, j])
            parts.append(f"{_describe(name, value)} (+{c[i, j]:.2f} log-odds)")
        out.append("; ".join(parts))
    return out


def risk_table(
    source: Source,
    horizon_months: float = HORIZON_MONTHS,
    filters: Filters | None = None,
    until: TimeLike = None,
    confidence: float = 0.95,
    min_rated: int = MIN_RATED,
    limit: int | None = None,
    touchpoints: Sequence[str] | None = None,
) -> RiskResult:
    """Each active customer's probability of churning within ``horizon_months`` after the
    as-of time (``until``, else the last interaction), highest first; ``limit`` keeps the top
    rows; ``touchpoints`` limits the gap features to those touch points."""
    conf = check_confidence(confidence)
    if not 0 < float(horizon_months) <= 24:
        raise AnalyticsQueryError(
            f"horizon_months must be above 0 and at most 24, got {horizon_months!r}"
        )
    if limit is not None and limit < 1:
        raise AnalyticsQueryError(f"limit must be at least 1, got {limit}")
    now = customer_table(source, until, filters)
    if now.as_of is None or now.people.empty:
        raise AnalyticsQueryError("no customers match; widen the filters or the time range")
    cut = pd.Timestamp(now.as_of) - pd.Timedelta(days=MONTH_DAYS * float(horizon_months))
    cut = cut.floor("s")
    before = customer_table(source, cut.to_pydatetime(), filters)
    train = before.people[before.people["event"] == 0]
    if train.empty:
        raise AnalyticsQueryError(
            f"no customer was active {horizon_months:g} months before the as-of time: the "
            "store's history is too short for this horizon; use a shorter horizon_months"
        )
    churned = now.people.set_index("person_id")["churn_at"].reindex(train["person_id"])
    label = (churned.notna() & (churned >= cut)).to_numpy(int)
    if label.sum() < MIN_EVENTS:
        raise AnalyticsQueryError(
            f"only {int(label.sum())} customers churned in the last {horizon_months:g} "
            f"months; the risk model needs at least {MIN_EVENTS}: widen the filters or "
            "lengthen horizon_months"
        )
    rated = (before.rated > 0).sum() if not before.rated.empty else pd.Series(dtype="int64")
    tps = sorted(str(t) for t in rated.index if rated[t] >= min_rated)
    if touchpoints is not None:
        tps = [t for t in tps if t in set(touchpoints)]
    train_ct = CustomerTable(
        train.reset_index(drop=True),
        before.gaps,
        before.rated,
        before.observation_start,
        cut,
        before.latest,
    )
    X_train = customer_features(train_ct, tps)
    centres = train_ct.latest.reindex(index=train_ct.people["person_id"], columns=tps).mean()
    model = RiskModel().fit(X_train, label)
    cv_auc, _ = cross_validated_auc(X_train, label)

    active = now.people[now.people["event"] == 0].reset_index(drop=True)
    act_ct = CustomerTable(
        active, now.gaps, now.rated, now.observation_start, now.as_of, now.latest
    )
    X = customer_features(act_ct, tps, model.columns_, centres)
    pred = model.predict(X, conf)
    contrib = model.contributions(X)
    frame = pd.DataFrame(
        {
            "person_id": active["person_id"],
            "segment": active["segment"],
            "region": active["region"],
            "tenure_months": active["tenure"],
            "risk": pred["risk"],
            "risk_low": pred["risk_low"],
            "risk_high": pred["risk_high"],
            "reasons": _reasons(contrib, X),
        }
    )
    order = frame.sort_values(["risk", "person_id"], ascending=[False, True], kind="mergesort")
    frame = order.reset_index(drop=True)
    contrib = contrib.loc[order.index].reset_index(drop=True)
    if limit is not None:
        frame, contrib = frame.head(limit), contrib.head(limit)
    info = {
        "model": "ridge logistic regression, look-back training",
        "horizon_months": float(horizon_months),
        "as_of": now.as_of.isoformat(),
        "training_cutoff": cut.isoformat(),
        "training_customers": model.n_,
        "training_churners": model.events_,
        "cv_auc": cv_auc,
        "touchpoints": tps,
        "coefficients": {k: float(v) for k, v in model.coef_.items()},
        "active_customers": len(active),
    }
    return RiskResult(
        frame=frame,
        n=len(active),
        confidence=conf,
        method="probability of churn within the horizon from a ridge logistic regression "
        "trained on the customers active one horizon earlier; Wald interval on the log-odds; "
        "reasons = features with the largest positive β·(x − mean) terms",
        query={
            "filters": {
                k: list(v) if isinstance(v, list | tuple) else [v]
                for k, v in (filters or {}).items()
            },
            "until": str(until) if until is not None else None,
            "horizon_months": float(horizon_months),
            "min_rated": min_rated,
        },
        model=info,
        contributions=contrib,
    )


@dataclass(frozen=True)
class _Fitted:
    result: RiskResult | None  # None when the store cannot support a model yet
    reason: str  # why not, then
    churned: dict[str, str]  # churned customers: canonical id -> ISO churn time


def _fitted(
    source: Source, horizon_months: float, models: FittedModels | None, refit: bool
) -> _Fitted | None:
    if not refit:  # whatever model is kept, however old; None when there is none yet
        kept = models.latest(CHURN_RISK) if models is not None else None
        return kept[1] if kept is not None and kept[0][-1] == float(horizon_months) else None

    def fit() -> _Fitted:
        try:
            result: RiskResult | None = risk_table(source, horizon_months)
            reason = ""
        except AnalyticsQueryError as e:
            result, reason = None, str(e)
        people = customer_table(source).people
        gone = people[people["event"] == 1]
        churned = {
            str(pid): pd.Timestamp(t).isoformat()
            for pid, t in zip(gone["person_id"], gone["churn_at"], strict=True)
        }
        return _Fitted(result, reason, churned)

    if models is None:
        return fit()
    return models.fitted(CHURN_RISK, (*store_state(source), float(horizon_months)), fit)


def fitted_scores(
    key: tuple[Any, ...], fitted: Any, horizon_months: float = HORIZON_MONTHS
) -> tuple[dict[str, float], str] | None:
    """Every active customer's risk from a churn model kept by
    :class:`~corridor.analytics.customers.models.FittedModels` (what a listener of its fits,
    :meth:`~corridor.analytics.customers.models.FittedModels.on_fitted`, receives): canonical
    person id → probability of churning within ``horizon_months``, and the model's as-of time.
    None when the model was fitted for another horizon or the store could not support one."""
    if not key or key[-1] != float(horizon_months) or not isinstance(fitted, _Fitted):
        return None
    result = fitted.result
    if result is None:
        return None
    frame = result.frame
    risks = {str(p): float(r) for p, r in zip(frame["person_id"], frame["risk"], strict=True)}
    return risks, str(result.model["as_of"])


def person_risk(
    source: Source,
    person_id: str,
    horizon_months: float = HORIZON_MONTHS,
    *,
    models: FittedModels | None = None,
    refit: bool = True,
) -> dict[str, Any]:
    """One person's churn risk for a customer page: ``{person_id, canonical_id, status,
    horizon_months, …}``.

    ``status`` is ``active`` (with ``risk``, ``risk_low``, ``risk_high``, ``confidence``,
    ``reasons`` — ``[{feature, log_odds}]`` — ``summary``, ``as_of``, ``cv_auc``),
    ``churned`` (with ``churned_at``), ``unknown`` (not a customer with interactions) or
    ``unavailable`` (the store cannot support a risk model yet, e.g. too few churns; ``reason``
    says why). It never raises for lack of data, so a page can always show it.

    ``models``: the owner's :class:`~corridor.analytics.customers.models.FittedModels` (the
    app's ``app.state.models``), which keeps the model fitted once per store state
    (:func:`~corridor.analytics.customers.models.store_state`) and horizon, so later calls only
    look the person up until an ingest changes the store; without it the model is fitted for
    this call alone. ``refit=False`` never fits: it uses the kept model however old (``as_of``
    says when) and answers ``status: pending`` when none is kept (or no ``models`` is given) —
    for pages, while a background job fits the model; with ``models``, a pending answer says
    when the fit in progress started and should be done (``fitting_started_at``,
    ``ready_in_s``: :meth:`~corridor.analytics.customers.models.ModelState.pending`)."""
    from corridor.analytics.core.dimensions import get_table

    if not 0 < float(horizon_months) <= 24:
        raise AnalyticsQueryError(
            f"horizon_months must be above 0 and at most 24, got {horizon_months!r}"
        )
    p = get_table(source, "people")
    row = p.filter(p.person_id == person_id).select("canonical_id").to_pyarrow().to_pylist()
    canonical = (row[0]["canonical_id"] or person_id) if row else person_id
    fitted = _fitted(source, horizon_months, models, refit)
    out: dict[str, Any] = {
        "person_id": person_id,
        "canonical_id": canonical,
        "horizon_months": float(horizon_months),
    }
    if fitted is None:  # with when the fit in progress should be done, if one is
        return out | {"status": "pending"} | (models.state(CHURN_RISK).pending() if models else {})
    if canonical in fitted.churned:
        return out | {"status": "churned", "churned_at": fitted.churned[canonical]}
    result = fitted.result
    if result is None:
        return out | {"status": "unavailable", "reason": fitted.reason}
    out |= {"as_of": result.model["as_of"], "cv_auc": result.model["cv_auc"]}
    hit = result.frame.index[result.frame["person_id"] == canonical]
    if not len(hit):
        return out | {"status": "unknown"}
    i = int(hit[0])
    r = result.frame.iloc[i]
    assert result.contributions is not None
    c = result.contributions.iloc[i].sort_values(ascending=False)
    reasons = [
        {"feature": str(k), "log_odds": float(v)} for k, v in c.head(REASONS).items() if v > 0
    ]
    return out | {
        "status": "active",
        "risk": float(r["risk"]),
        "risk_low": float(r["risk_low"]),
        "risk_high": float(r["risk_high"]),
        "confidence": result.confidence,
        "reasons": reasons,
        "summary": r["reasons"],
    }


register(
    Analysis(
        "churn_risk",
        "Customers most likely to churn",
        risk_table,
        path="/churn/risk",
        command=("churn", "risk"),
        tag="churn and lifetime",
        description="Active customers' probability of churning within `horizon_months`, "
        "highest first, with intervals and the reasons that raise it most; the model's facts "
        "(training set, cross-validated AUC, coefficients) in `model`. A department head's "
        "model reads their own touch points only; department heads and partner managers get "
        "no `reasons` (they draw on records outside their scope: `reasons_withheld` says so). "
        f"{FILTERS_NOTE}",
        filters=ALLOWED_FILTERS,
        since=False,
        params=(
            Param(
                "horizon_months", "float", HORIZON_MONTHS,
                "months ahead the probability is for; above 0", le=24,
            ),
            Param(
                "min_rated", "int", MIN_RATED,
                "customers with a rating a touch point needs for its gap to be a feature", ge=1,
            ),
            Param("limit", "int", 100, "the riskiest customers shown", ge=1),
        ),
        columns=described(
            "person_id:str the customer (canonical id)",
            "segment:str the customer's segment",
            "region:str the customer's region",
            "tenure_months months a customer so far",
            "risk± probability of churning within the horizon",
            "reasons:str the up to three features that raise the risk most",
        ),
        extras=("model",),
        brief=("person_id", "tenure_months", "risk", "risk_low", "risk_high", "reasons"),
        scope=ScopeRule(
            prepare=own_touchpoints,
            withhold=("reasons",),
            note="filters forced to the scope; a department head's model reads their own "
            "touch points only; reasons withheld from department heads and partner managers",
        ),
    )
)  # fmt: skip

__all__ = [
    "HORIZON_MONTHS",
    "RiskModel",
    "RiskResult",
    "cross_validated_auc",
    "customer_features",
    "design_matrix",
    "fitted_scores",
    "person_risk",
    "risk_table",
    "roc_auc",
    "stratified_folds",
]
