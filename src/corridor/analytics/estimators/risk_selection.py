"""Choosing a churn model per data set: the interpretable logistic model or the calibrated
gradient-boosted one, by cross-validated AUC and Brier score on the same folds.

:func:`select_risk_model` is what the product runs on a store's look-back set (and what the
Telco validation runs on a plain feature table). Both candidates are fitted on the same ``k``
stratified folds (:func:`~corridor.analytics.estimators.risk_logistic.stratified_folds`, fixed
seed); each fold's held-out rows give an AUC (ranking) and a Brier score (mean squared error of
the probability: calibration and ranking together, a proper scoring rule; Brier 1950).

**The rule.** The logistic model is kept unless the boosted model is better on both counts:
its mean Brier score lower by more than one standard error of the paired fold differences
(so that the gain is not fold noise) and its mean AUC not lower. Ties go to the logistic
model: its reasons add up exactly and its coefficients can be read. The boosted model is only a
candidate with at least :data:`MIN_BOOSTED_EVENTS` churners (fewer cannot support its cross-fitted
calibration); ``reason`` says which was chosen and why.

**Calibration by decile** (:func:`calibration_deciles`): the out-of-fold probabilities cut into
ten equal-count bins; per bin the mean predicted probability against the observed churn rate
with its Wilson interval. A calibrated model's mean prediction lies inside each bin's interval
most of the time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.estimators import stats
from corridor.analytics.estimators.risk_boosted import BoostedRiskModel
from corridor.analytics.estimators.risk_logistic import RiskModel, roc_auc, stratified_folds

Kind = Literal["logistic", "boosted"]
KINDS: tuple[Kind, ...] = ("logistic", "boosted")
#: the boosted model is a candidate with at least this many churners in the look-back set
MIN_BOOSTED_EVENTS = 50
#: what each kind is, in words
DESCRIPTION = {
    "logistic": "ridge logistic regression",
    "boosted": "gradient-boosted trees (HistGradientBoostingClassifier), calibrated",
}


def brier_score(p: Any, y: Any) -> float:
    """Mean squared difference between the probability and the 0/1 outcome."""
    pp, yy = np.asarray(p, float), np.asarray(y, float)
    return float(np.mean((pp - yy) ** 2))


def _interval(values: list[float], confidence: float) -> tuple[float, float]:
    """Student-t interval of the mean over folds."""
    v = np.asarray(values, float)
    half = stats.t_critical(confidence, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's cross-validation: per-fold AUC and Brier, their means, and the
    out-of-fold probability of every row."""

    kind: Kind
    auc_folds: list[float]
    brier_folds: list[float]
    oof: np.ndarray = field(repr=False)

    @property
    def auc(self) -> float:
        return float(np.mean(self.auc_folds))

    @property
    def brier(self) -> float:
        return float(np.mean(self.brier_folds))

    def summary(self, confidence: float = 0.95) -> dict[str, Any]:
        """``{model, cv_auc, cv_auc_low, cv_auc_high, cv_auc_folds, cv_brier, …}``: means
        with Student-t intervals over the folds."""
        a_lo, a_hi = _interval(self.auc_folds, confidence)
        b_lo, b_hi = _interval(self.brier_folds, confidence)
        return {
            "model": self.kind,
            "description": DESCRIPTION[self.kind],
            "folds": len(self.auc_folds),
            "cv_auc": self.auc,
            "cv_auc_low": a_lo,
            "cv_auc_high": a_hi,
            "cv_auc_folds": [float(a) for a in self.auc_folds],
            "cv_brier": self.brier,
            "cv_brier_low": b_lo,
            "cv_brier_high": b_hi,
            "cv_brier_folds": [float(b) for b in self.brier_folds],
        }


@dataclass(frozen=True)
class ModelChoice:
    """The chosen model fitted on every row (``model``, of ``kind``), the logistic model
    (always fitted: its coefficients are reported whichever is chosen), every candidate's
    cross-validation (``scores``) and why (``reason``)."""

    kind: Kind
    model: RiskModel | BoostedRiskModel
    logistic: RiskModel
    scores: dict[str, CandidateScore]
    reason: str
    labels: np.ndarray = field(repr=False)

    @property
    def chosen(self) -> CandidateScore:
        return self.scores[self.kind]

    def calibration(self, confidence: float = 0.95) -> pd.DataFrame:
        """Calibration by decile of the chosen model's out-of-fold probabilities."""
        return calibration_deciles(self.chosen.oof, self.labels, confidence=confidence)


def cross_validate(
    X: pd.DataFrame,
    y: Any,
    kind: Kind,
    folds: np.ndarray,
    l2: float = 10.0,
    seed: int = 0,
    groups: Mapping[str, Sequence[str]] | None = None,
    logistic_columns: Sequence[str] | None = None,
) -> CandidateScore:
    """Out-of-fold probabilities, AUC and Brier of one candidate on the given folds (the
    logistic model reading ``logistic_columns`` only, when given)."""
    yy = np.asarray(y, int)
    oof = np.empty(len(yy))
    aucs, briers = [], []
    for f in range(int(folds.max()) + 1):
        train, test = folds != f, folds == f
        if kind == "logistic":
            lm = RiskModel(l2).fit(_columns(X, logistic_columns)[train], yy[train])
            p = lm.predict(X[test])["risk"].to_numpy()
        else:
            bm = BoostedRiskModel(seed=seed).fit(X[train], yy[train], groups)
            p = bm.predict_proba(X[test])
        oof[test] = p
        aucs.append(roc_auc(p, yy[test]))
        briers.append(brier_score(p, yy[test]))
    return CandidateScore(kind, aucs, briers, oof)


def _columns(X: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    return X if columns is None else X[list(columns)]


def select_risk_model(
    X: pd.DataFrame,
    y: Any,
    k: int = 5,
    seed: int = 0,
    candidates: tuple[Kind, ...] = KINDS,
    l2: float = 10.0,
    groups: Mapping[str, Sequence[str]] | None = None,
    logistic_columns: Sequence[str] | None = None,
) -> ModelChoice:
    """Cross-validate the ``candidates`` on the same ``k`` stratified folds, choose by the rule
    of the module docstring, and fit the chosen one (and the logistic) on every row.
    ``groups``: the boosted model's occlusion groups (default: by ``column=level`` names);
    ``logistic_columns``: the columns the logistic model reads (default: all; the boosted
    model always reads all)."""
    yy = np.asarray(y, int)
    bad = [c for c in candidates if c not in KINDS]
    if bad or not candidates:
        raise AnalyticsQueryError(f"candidates must be among {', '.join(KINDS)}, got {bad}")
    if min(int(yy.sum()), len(yy) - int(yy.sum())) < k:
        raise AnalyticsQueryError(
            f"cross-validation over {k} folds needs at least {k} churners and {k} non-churners"
        )
    folds = stratified_folds(yy, k, seed)
    logistic = RiskModel(l2).fit(_columns(X, logistic_columns), yy)
    scores = {
        "logistic": cross_validate(X, yy, "logistic", folds, l2, seed, None, logistic_columns)
    }
    events = int(yy.sum())
    if "boosted" not in candidates:
        reason = "the logistic model was the only candidate"
    elif events < MIN_BOOSTED_EVENTS:
        reason = (
            f"only {events} churners: the boosted model needs at least {MIN_BOOSTED_EVENTS} "
            "for its cross-fitted calibration, so the logistic model is used"
        )
    else:
        scores["boosted"] = cross_validate(X, yy, "boosted", folds, l2, seed, groups)
    if "boosted" in scores:
        kind, reason = _choose(scores["logistic"], scores["boosted"])
    else:
        kind = "logistic"
    model: RiskModel | BoostedRiskModel = logistic
    if kind == "boosted":
        model = BoostedRiskModel(seed=seed).fit(X, yy, groups)
    return ModelChoice(kind, model, logistic, scores, reason, yy)


def _choose(lo: CandidateScore, bo: CandidateScore) -> tuple[Kind, str]:
    gain = np.asarray(lo.brier_folds) - np.asarray(bo.brier_folds)  # > 0: boosted better
    se = float(gain.std(ddof=1) / np.sqrt(len(gain)))
    figures = (
        f"cross-validated AUC {bo.auc:.3f} (boosted) vs {lo.auc:.3f} (logistic), Brier "
        f"{bo.brier:.4f} vs {lo.brier:.4f}"
    )
    if gain.mean() > se and bo.auc >= lo.auc:
        return "boosted", (
            f"boosted chosen: {figures}; it ranks no worse and its Brier score is lower by "
            f"{gain.mean():.4f}, more than one standard error of the fold differences ({se:.4f})"
        )
    why = (
        "its AUC is lower"
        if bo.auc < lo.auc
        else f"its Brier gain {gain.mean():.4f} is within one standard error ({se:.4f})"
    )
    return "logistic", (
        f"logistic kept: {figures}; the boosted model is not clearly better ({why}), and ties "
        "go to the model whose reasons add up"
    )


def calibration_deciles(p: Any, y: Any, bins: int = 10, confidence: float = 0.95) -> pd.DataFrame:
    """Rows ``bin`` (1 = lowest risks), ``n``, ``predicted`` (mean probability), ``observed``
    (churn rate) with ``observed_low``/``observed_high`` (Wilson), over ``bins`` equal-count bins
    of ``p`` (ties kept together by rank order)."""
    pp, yy = np.asarray(p, float), np.asarray(y, int)
    order = np.argsort(pp, kind="mergesort")
    which = np.empty(len(pp), dtype=np.int64)
    which[order] = np.arange(len(pp)) * bins // max(len(pp), 1)
    frame = pd.DataFrame({"bin": which + 1, "p": pp, "y": yy})
    g = frame.groupby("bin")
    out = pd.DataFrame({"n": g.size(), "predicted": g["p"].mean(), "events": g["y"].sum()})
    out["observed"] = out["events"] / out["n"]
    lo, hi = stats.wilson_interval(out["events"].to_numpy(), out["n"].to_numpy(), confidence)
    out["observed_low"], out["observed_high"] = lo, hi
    return out.reset_index()


__all__ = [
    "DESCRIPTION",
    "KINDS",
    "MIN_BOOSTED_EVENTS",
    "CandidateScore",
    "Kind",
    "ModelChoice",
    "brier_score",
    "calibration_deciles",
    "cross_validate",
    "select_risk_model",
]
