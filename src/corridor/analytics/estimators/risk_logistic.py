"""Ridge-penalised logistic regression for churn risk, and the cross-validation helpers every
risk model is judged by (AUC, stratified folds).

:class:`RiskModel` is the interpretable churn model: a customer's log-odds minus the average
customer's splits exactly into one term per feature, βₖ·(xₖ − x̄ₖ), and its probabilities come
with Wald intervals. Moved here from :mod:`corridor.analytics.customers.churn_risk` (which still
exports these names) so that the model selection of
:mod:`corridor.analytics.estimators.risk_selection` can use it without depending on the store.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.lazy import lazy

optimize = lazy("scipy.optimize")
special = lazy("scipy.special")
sps = lazy("scipy.stats")


def one_thread() -> Any:
    """A context in which BLAS and OpenMP run on one thread. The risk models' matrices are small
    (thousands of rows, tens to hundreds of columns), so threads' start-up dominates, and on a
    loaded machine spinning threads made them many times slower: a boosted fit of 600 rows
    took 2 s instead of 0.1 s (30,000 rows: 20 s instead of 0.3 s), the SVD of a 123 × 123
    information matrix 0.5 s (2 cores at load 4.5)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


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
        with one_thread():
            return self._fit(X, y)

    def _fit(self, X: pd.DataFrame, y: Any) -> RiskModel:
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


__all__ = ["RiskModel", "cross_validated_auc", "one_thread", "roc_auc", "stratified_folds"]
