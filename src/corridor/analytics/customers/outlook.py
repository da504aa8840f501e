"""One customer's outlook, typed: churn risk (:class:`PersonChurnRisk`) and lifetime value
(:class:`PersonLifetimeValue`), as the API documents them and the SDK returns them.

:func:`~corridor.analytics.customers.churn_risk.person_risk` and
:func:`~corridor.analytics.customers.lifetime.person_value` compute them; these models are their
contract (the API's ``/churn/risk/{person_id}`` and ``/lifetime/people/{person_id}`` replies, and
``corridor.connect(...).person_risk(id)`` / ``corridor.Client(...).person_risk(id)``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RiskReason(BaseModel):
    """One feature that raises the customer's churn risk."""

    feature: str = Field(
        description="the feature (gap:<touchpoint>, tenure_months, unresolved_90d, ...; a "
        "boosted model names a categorical group, e.g. segment)"
    )
    log_odds: float = Field(
        description="what it adds to the log-odds: against the average customer (logistic "
        "model), or against the customer's own log-odds were this feature typical (boosted "
        "model; reasons_method says which)"
    )


class _Outlook(BaseModel):
    model_config = ConfigDict(extra="allow")

    person_id: str = Field(description="the id asked about")
    canonical_id: str = Field(description="the person after identity merges")
    as_of: str | None = Field(None, description="the time the model was fitted as of (ISO-8601)")
    reason: str | None = Field(
        None,
        description="why no model is available yet (status unavailable; status pending when "
        "the latest fit failed)",
    )
    fitting_started_at: str | None = Field(
        None, description="status pending: when the fit in progress started (ISO-8601)"
    )
    ready_in_s: float | None = Field(
        None,
        description="status pending: seconds until the fit in progress should be done (from "
        "the previous fit's time, or an estimate from the store's size before any; 0 = any "
        "moment now); the reply's Retry-After header says the same in whole seconds",
    )


class PersonChurnRisk(_Outlook):
    """One customer's probability of churning within ``horizon_months``."""

    status: Literal["active", "churned", "unknown", "unavailable", "pending"] = Field(
        description="active (with the risk), churned (with churned_at), unknown (not a "
        "customer with interactions), unavailable (the store cannot support a model yet: "
        "reason), pending (no model kept yet while the first fit runs: fitting_started_at, "
        "ready_in_s)"
    )
    horizon_months: float | None = Field(None, description="months ahead the risk is for")
    churned_at: str | None = Field(None, description="when the customer churned (ISO-8601)")
    model_kind: Literal["logistic", "boosted"] | None = Field(
        None,
        description="the model chosen for this store: logistic (ridge logistic regression) or "
        "boosted (calibrated gradient-boosted trees)",
    )
    cv_auc: float | None = Field(None, description="the model's cross-validated AUC")
    cv_brier: float | None = Field(
        None, description="the model's cross-validated Brier score (lower is better)"
    )
    model_choice: str | None = Field(
        None, description="why this model was chosen, with both models' AUC and Brier score"
    )
    risk: float | None = Field(None, description="probability of churning within the horizon")
    risk_low: float | None = Field(None, description="lower end of its interval")
    risk_high: float | None = Field(None, description="upper end of its interval")
    confidence: float | None = Field(None, description="two-sided level of the interval")
    reasons: list[RiskReason] | None = Field(
        None, description="the up to three features that raise the risk most"
    )
    summary: str | None = Field(None, description="the reasons in words")
    reasons_method: str | None = Field(None, description="what a reason's log_odds mean")
    reasons_withheld: str | None = Field(
        None, description="why the reasons are not shown to this role"
    )


class PersonLifetimeValue(_Outlook):
    """One buyer's lifetime figures; a figure the models cannot give is null."""

    status: Literal["buyer", "no_purchases", "unavailable", "pending"] = Field(
        description="buyer (with the figures), no_purchases, unavailable (too few buyers to "
        "fit the models yet: reason), pending (no model kept yet while the first fit runs: "
        "fitting_started_at, ready_in_s)"
    )
    horizon_months: float | None = Field(None, description="months ahead of the figures")
    discount_monthly: float | None = Field(None, description="monthly discount rate of the CLV")
    confidence: float | None = Field(None, description="two-sided level of every interval")
    segment: str | None = None
    region: str | None = None
    frequency: float | None = Field(None, description="transactions after the first")
    recency_weeks: float | None = Field(None, description="weeks from first to last purchase")
    age_weeks: float | None = Field(None, description="weeks from first purchase to as_of")
    monetary: float | None = Field(None, description="mean value of the repeat transactions")
    p_alive: float | None = Field(None, description="probability the buyer is still active")
    p_alive_low: float | None = None
    p_alive_high: float | None = None
    expected_purchases: float | None = Field(
        None, description="purchases expected within the horizon"
    )
    expected_purchases_low: float | None = None
    expected_purchases_high: float | None = None
    expected_value: float | None = Field(None, description="expected value per purchase")
    clv: float | None = Field(None, description="customer lifetime value, discounted")
    clv_low: float | None = None
    clv_high: float | None = None
    clv_reason: str | None = Field(None, description="why the CLV is not available")


__all__ = ["PersonChurnRisk", "PersonLifetimeValue", "RiskReason"]
