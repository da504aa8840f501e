"""Churn risk per customer: the probability of churning within the next ``horizon`` months.

**Training.** The classic "look-back" churn classifier: the state of every customer still
active ``horizon`` months before the as-of time (their features computed only from data before
that cut-off) and whether they churned in the ``horizon`` months that followed. Applied to the
customers active at the as-of time, the model gives each one's probability of churning in the
next ``horizon`` months.

**Features** (:mod:`corridor.analytics.customers.churn_features`): what the store holds about
every customer — tenure, frequency and recency, contacts per touch point and outcome over the
last 30 and 90 days, unresolved contacts, saved cancellation requests, broken promises of the
corridor map, spend and its change, complaint texts and their sentiment, segment and region —
and each touch point's most recent rated gap for touch points with at least ``min_rated``
rated customers.

**Models** (:mod:`corridor.analytics.estimators.risk_selection`): the interpretable ridge
logistic regression (:class:`RiskModel`; Wald intervals; reasons = the exact split of the
log-odds against the average customer, βₖ·(xₖ − x̄ₖ)) and a calibrated gradient-boosted model
(:class:`~corridor.analytics.estimators.risk_boosted.BoostedRiskModel`; jackknife intervals;
reasons by occlusion against the typical customer), both cross-validated on the same 5 folds of
the look-back set; the boosted model is chosen only when its Brier score is clearly lower and its
AUC no lower (``model`` says which, both models' figures and why). ``model="logistic"`` or
``"boosted"`` forces one. Formulas, validation and references: ``docs/anticipation.md``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from corridor.analytics.core.dimensions import (
    Filters,
    Source,
    TimeLike,
    check_confidence,
    check_time,
)
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.registry import Analysis, Param, register
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.core.result_columns import described
from corridor.analytics.core.scoping import ScopeRule, own_touchpoints
from corridor.analytics.customers.churn_features import (
    PER_KEY,
    customer_features,
    design_matrix,
    occlusion_groups,
    reason_texts,
    store_features,
    supported_columns,
)
from corridor.analytics.customers.churn_people import (
    ALLOWED_FILTERS,
    FILTERS_NOTE,
    MONTH_DAYS,
    CustomerTable,
    customer_table,
)
from corridor.analytics.customers.models import CHURN_RISK, FittedModels, slot, store_state
from corridor.analytics.estimators.risk_boosted import BoostedRiskModel
from corridor.analytics.estimators.risk_logistic import (
    RiskModel,
    cross_validated_auc,
    roc_auc,
    stratified_folds,
)
from corridor.analytics.estimators.risk_selection import (
    DESCRIPTION,
    KINDS,
    Kind,
    select_risk_model,
)

HORIZON_MONTHS = 3.0
MIN_RATED = 30
MIN_EVENTS = 10
REASONS = 3
FOLDS = 5
#: the most customers the model is fitted on: beyond, a seeded random sample of them,
#: stratified by churn (the model's choice by 5-fold cross-validation is most of a fit, and
#: at this size its AUC is known to about ±0.01); every active customer is still scored
TRAIN_MAX = 50_000
#: what a reason's log-odds mean, per model kind
REASONS_METHOD = {
    "logistic": "exact split of the log-odds against the average customer: β·(x − mean)",
    "boosted": "occlusion: how much the log-odds would fall were this feature at the typical "
    "customer's value (median; most common level), the others as they are",
}
ModelParam = Literal["auto", "logistic", "boosted"]


@dataclass(frozen=True, eq=False)
class RiskResult(AnalyticsResult):
    """Active customers' churn risk within ``horizon_months``, highest first.

    ``frame`` columns: ``person_id``, ``segment``, ``region``, ``tenure_months``, ``risk``
    with ``risk_low``/``risk_high``, ``reasons`` (the up to three features that raise the risk
    most, ``;``-separated). ``model``: horizon, training size and events, the chosen model
    (``model_kind``) with its 5-fold cross-validated AUC and Brier score (``cv_auc``,
    ``cv_brier``, with intervals), every candidate's figures (``candidates``), why the choice
    (``choice``), its calibration by decile, and the logistic model's coefficients."""

    model: dict[str, Any] = field(default_factory=dict)
    contributions: pd.DataFrame | None = None

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "model": self.model}


def _ct(base: CustomerTable, people: pd.DataFrame, as_of: Any) -> CustomerTable:
    return CustomerTable(
        people.reset_index(drop=True),
        base.gaps,
        base.rated,
        base.observation_start,
        as_of,
        base.latest,
    )


#: the contributions and reasons of a scored table's rows at these positions (None: every row)
Explainer = Callable[[Sequence[int] | None], tuple[pd.DataFrame, list[str]]]


def risk_table(
    source: Source,
    horizon_months: float = HORIZON_MONTHS,
    filters: Filters | None = None,
    until: TimeLike = None,
    confidence: float = 0.95,
    min_rated: int = MIN_RATED,
    limit: int | None = None,
    touchpoints: Sequence[str] | None = None,
    model: ModelParam = "auto",
) -> RiskResult:
    """Each active customer's probability of churning within ``horizon_months`` after the
    as-of time (``until``, else the last interaction), highest first; ``limit`` keeps the top
    rows; ``touchpoints`` limits the features to those touch points' records; ``model``
    chooses the model by cross-validation (``auto``) or forces one."""
    if limit is not None and limit < 1:
        raise AnalyticsQueryError(f"limit must be at least 1, got {limit}")
    scored, explain = _score(source, horizon_months, filters, until, confidence, min_rated,
                             touchpoints, model)  # fmt: skip
    return explained(scored, explain, limit)


def explained(scored: RiskResult, explain: Explainer, limit: int | None) -> RiskResult:
    """``scored`` (rows without reasons, highest risk first) cut to its first ``limit`` rows,
    with their reasons and contributions. Only the rows kept are explained: each row's reasons
    stand alone (its features against the model's typical or average customer), and for the
    boosted model they are most of the scoring's time (the occluded rows scored again, one per
    feature group)."""
    frame = scored.frame if limit is None else scored.frame.head(limit)
    contrib, texts = explain(None if limit is None else range(len(frame)))
    frame = frame.assign(reasons=texts)
    return replace(scored, frame=frame, contributions=contrib)


def _defaults() -> dict[str, Any]:
    """:func:`risk_table`'s defaults (the background fit's query), but ``limit``."""
    return {
        name: p.default
        for name, p in inspect.signature(risk_table).parameters.items()
        if p.default is not inspect.Parameter.empty and name != "limit"
    }


def _score(
    source: Source,
    horizon_months: float,
    filters: Filters | None,
    until: TimeLike,
    confidence: float,
    min_rated: int,
    touchpoints: Sequence[str] | None,
    model: ModelParam,
) -> tuple[RiskResult, Explainer]:
    """:func:`risk_table`'s rows, every active customer's, without their reasons; and what
    explains the first rows."""
    conf = check_confidence(confidence)
    if not 0 < float(horizon_months) <= 24:
        raise AnalyticsQueryError(
            f"horizon_months must be above 0 and at most 24, got {horizon_months!r}"
        )
    if model not in ("auto", *KINDS):
        raise AnalyticsQueryError(f"model must be auto, logistic or boosted, got {model!r}")
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
    eligible = len(train)
    if eligible > TRAIN_MAX:
        train, label = _sample(train, label, TRAIN_MAX)
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
    train_ct = _ct(before, train, cut)
    cut_time = cut.to_pydatetime()
    seen = store_features(source, cut_time, cut_time, touchpoints)
    seen = seen.reindex(index=train_ct.people["person_id"].astype(str)).fillna(0.0)
    activity = seen[supported_columns(seen)]
    X_train = customer_features(train_ct, tps, activity=activity)
    centres = train_ct.latest.reindex(index=train_ct.people["person_id"], columns=tps).mean()
    groups = occlusion_groups(list(X_train.columns))
    candidates: tuple[Kind, ...] = ("logistic",) if model == "logistic" else KINDS
    core = [c for c in X_train.columns if not c.startswith(PER_KEY)]
    choice = select_risk_model(X_train, label, k=FOLDS, seed=0, candidates=candidates,
                               groups=groups, logistic_columns=core)  # fmt: skip
    if model == "boosted":
        if "boosted" not in choice.scores:  # too few churners to cross-fit it
            raise AnalyticsQueryError(choice.reason)
        fitted = (
            choice.model
            if choice.kind == "boosted"
            else BoostedRiskModel(seed=0).fit(X_train, label, groups)
        )
        why = f"boosted forced by model=boosted; {choice.reason}"
        choice = replace(choice, kind="boosted", model=fitted, reason=why)
    elif model == "logistic":
        choice = replace(choice, reason="logistic forced by model=logistic")
    fitted_model = choice.model

    active = now.people[now.people["event"] == 0].reset_index(drop=True)
    act_ct = _ct(now, active, now.as_of)
    scoring = store_features(source, now.as_of, check_time(until, "until"), touchpoints)
    X = customer_features(act_ct, tps, list(X_train.columns), centres, activity=scoring)
    pred = fitted_model.predict(X, conf)
    frame = pd.DataFrame(
        {
            "person_id": active["person_id"],
            "segment": active["segment"],
            "region": active["region"],
            "tenure_months": active["tenure"],
            "risk": pred["risk"].to_numpy(),
            "risk_low": pred["risk_low"].to_numpy(),
            "risk_high": pred["risk_high"].to_numpy(),
        }
    )
    order = frame.sort_values(
        ["risk", "person_id"], ascending=[False, True], kind="mergesort"
    ).index
    frame = frame.loc[order].reset_index(drop=True)
    ranked = X.iloc[order].reset_index(drop=True)

    def explain(at: Sequence[int] | None) -> tuple[pd.DataFrame, list[str]]:
        rows = ranked if at is None else ranked.iloc[list(at)].reset_index(drop=True)
        contrib = fitted_model.contributions(rows)
        return contrib, reason_texts(contrib, rows, REASONS)

    chosen = choice.chosen.summary(conf)
    info = {
        "model": f"{DESCRIPTION[choice.kind]}, look-back training",
        "model_kind": choice.kind,
        "choice": choice.reason,
        "horizon_months": float(horizon_months),
        "as_of": now.as_of.isoformat(),
        "training_cutoff": cut.isoformat(),
        "training_customers": len(label),
        "training_churners": int(label.sum()),
        "training_sample": (
            None
            if len(label) == eligible
            else f"a random sample (seed 0, stratified by churn) of {len(label):,} of the "
            f"{eligible:,} customers active one horizon earlier"
        ),
        **{k: v for k, v in chosen.items() if k.startswith("cv_")},
        "candidates": [s.summary(conf) for s in choice.scores.values()],
        "calibration": choice.calibration(conf).to_dict(orient="records"),
        "reasons_method": REASONS_METHOD[choice.kind],
        "touchpoints": tps,
        "features": list(X_train.columns),
        "coefficients": {k: float(v) for k, v in choice.logistic.coef_.items()},
        "active_customers": len(active),
    }
    return RiskResult(
        frame=frame,
        n=len(active),
        confidence=conf,
        method=f"probability of churn within the horizon from the {DESCRIPTION[choice.kind]} "
        "chosen by 5-fold cross-validated AUC and Brier score on the customers active one "
        "horizon earlier"
        + ("" if len(label) == eligible else f" (a seeded sample of {len(label):,} of those)")
        + "; "
        + (
            "Wald interval on the log-odds; reasons = features with the largest positive "
            "β·(x − mean) terms"
            if choice.kind == "logistic"
            else "jackknife interval over the calibrated members; reasons = features whose "
            "occlusion by the typical customer's value lowers the log-odds most"
        ),
        query={
            "filters": {
                k: list(v) if isinstance(v, list | tuple) else [v]
                for k, v in (filters or {}).items()
            },
            "until": str(until) if until is not None else None,
            "horizon_months": float(horizon_months),
            "min_rated": min_rated,
            "model": model,
        },
        model=info,
    ), explain


def _sample(train: pd.DataFrame, label: np.ndarray, most: int) -> tuple[pd.DataFrame, np.ndarray]:
    """At most ``most`` of the training customers, drawn with seed 0 in each class (churned or
    not) in proportion, from the rows in person-id order (so every engine draws the same)."""
    order = np.argsort(train["person_id"].astype(str).to_numpy(), kind="stable")
    rng = np.random.default_rng(0)
    keep = []
    for value in (0, 1):
        members = order[label[order] == value]
        take = round(len(members) * most / len(label))
        keep.append(rng.choice(members, size=take, replace=False))
    picked = order[np.isin(order, np.concatenate(keep))]  # in person-id order
    return train.iloc[picked].reset_index(drop=True), label[picked]


@dataclass(frozen=True)
class _Fitted:
    result: RiskResult | None  # None when the store cannot support a model yet; no reasons
    reason: str  # why not, then
    churned: dict[str, str]  # churned customers: canonical id -> ISO churn time
    #: the reasons of the result's rows, asked for the rows shown (a page's one customer, a
    #: list's top rows), not worked out for every active customer at each fit
    explain: Explainer | None = None


def _fitted(
    source: Source, horizon_months: float, models: FittedModels | None, refit: bool
) -> _Fitted | None:
    name = slot(CHURN_RISK, (horizon_months,), (HORIZON_MONTHS,))
    if not refit:  # whatever model is kept, however old; None when there is none yet
        kept = models.latest(name) if models is not None else None
        return kept[1] if kept is not None and kept[0][-1] == float(horizon_months) else None

    def fit() -> _Fitted:
        explain: Explainer | None = None
        try:
            result: RiskResult | None
            result, explain = _score(source, **(_defaults() | {"horizon_months": horizon_months}))
            reason = ""
        except AnalyticsQueryError as e:
            result, reason = None, str(e)
        people = customer_table(source).people
        gone = people[people["event"] == 1]
        churned = {
            str(pid): pd.Timestamp(t).isoformat()
            for pid, t in zip(gone["person_id"], gone["churn_at"], strict=True)
        }
        return _Fitted(result, reason, churned, explain)

    if models is None:
        return fit()
    return models.fitted(name, (*store_state(source), float(horizon_months)), fit)


def from_background_fit(
    models: FittedModels, source: Source, kwargs: dict[str, Any]
) -> RiskResult | None:
    """The churn-risk analysis' answer from the model the owner keeps (the app fits it in the
    background after each change of the data, with every default), when the query asks for
    just that (any ``limit``) and the kept model was fitted on the store as it is now; None
    otherwise (the analysis then fits its own). The same rows, in the same order, as
    :func:`risk_table` with those keywords gives."""
    limit = kwargs.pop("limit", None)
    fitted_with = _defaults()  # what the background fit leaves at default
    if any(name not in fitted_with or v != fitted_with[name] for name, v in kwargs.items()):
        return None
    kept = models.latest(CHURN_RISK)
    if kept is None or kept[0] != (*store_state(source), float(HORIZON_MONTHS)):
        return None
    fitted = kept[1]
    if not isinstance(fitted, _Fitted) or fitted.result is None or fitted.explain is None:
        return None
    return explained(fitted.result, fitted.explain, limit)


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
    ``reasons`` — ``[{feature, log_odds}]`` — ``summary``, ``reasons_method``, ``as_of``, and
    the model's ``model_kind``, ``cv_auc``, ``cv_brier`` and ``model_choice``),
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
    m = result.model
    out |= {
        "as_of": m["as_of"],
        "model_kind": m["model_kind"],
        "cv_auc": m["cv_auc"],
        "cv_brier": m["cv_brier"],
        "model_choice": m["choice"],
    }
    hit = result.frame.index[result.frame["person_id"] == canonical]
    if not len(hit):
        return out | {"status": "unknown"}
    i = int(hit[0])
    r = result.frame.iloc[i]
    assert fitted.explain is not None
    contrib, summary = fitted.explain([i])
    c = contrib.iloc[0].sort_values(ascending=False)
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
        "summary": summary[0],
        "reasons_method": m["reasons_method"],
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
        "highest first, with intervals and the reasons that raise it most, from the "
        "interpretable logistic model or a calibrated gradient-boosted one, whichever the "
        "store's own 5-fold cross-validation favours (`model`); the model's facts (training "
        "set, both models' cross-validated AUC and Brier score, the choice and why, "
        "calibration by decile, coefficients) in `model`. A department head's "
        "model reads their own touch points only; department heads and partner managers get "
        "no `reasons` (they draw on records outside their scope: `reasons_withheld` says so). "
        f"{FILTERS_NOTE}",
        filters=ALLOWED_FILTERS,
        since=False,
        params=(
            Param(
                "horizon_months", "float", HORIZON_MONTHS,
                "months ahead the probability is for", gt=0, le=24,
            ),
            Param(
                "min_rated", "int", MIN_RATED,
                "customers with a rating a touch point needs for its gap to be a feature", ge=1,
            ),
            Param("limit", "int", 100, "the riskiest customers shown", ge=1),
            Param(
                "model", "str", "auto",
                "auto: the logistic or the boosted model, by cross-validated AUC and Brier "
                "score; logistic or boosted: that one",
                choices=("auto", *KINDS),
            ),
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
        reuse=from_background_fit,
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
    "REASONS_METHOD",
    "BoostedRiskModel",
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
