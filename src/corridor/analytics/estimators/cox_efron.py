"""Vectorised Cox partial likelihood with Efron (or Breslow) ties and delayed entry.

The fit :class:`~corridor.analytics.estimators.survival.CoxPH` uses: the same model, risk sets
and Newton–Raphson iterations as :class:`statsmodels.duration.hazard_regression.PHReg` (one
stratum, ``method="newton"``). A row is at risk at a failure time ``u`` when
``entry <= u <= time``; the fit starts at 0 and takes Newton steps on ``−loglike / n`` (ridge
``1e-10`` on the diagonal) until no parameter moves by more than ``1e-8`` (at most 100 steps);
the covariance is the inverse of the negative Hessian at the estimate. statsmodels walks the
distinct failure times one by one in Python; here every risk-set sum is a cumulative sum over
the failure times and every Hessian term one weighted Gram matrix, so a fit on millions of
episodes takes seconds. Answers agree with statsmodels to floating-point rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from corridor.analytics.estimators.risk_logistic import one_thread
from corridor.lazy import lazy

sparse = lazy("scipy.sparse")

if TYPE_CHECKING:
    from scipy.sparse import csr_array as CsrArray

TOL = 1e-8
MAX_ITER = 100
RIDGE = 1e-10


@dataclass(frozen=True)
class RiskSets:
    """Where each row sits among the distinct failure times ``uft``. ``reach``/``enter``
    (failure times × rows, sparse 0/1): row ``r`` is at risk at failure-time indices
    ``first .. last`` — ``reach`` marks ``last``, ``enter`` marks ``first`` (both empty for a
    row at risk at none). ``events``: the event rows; ``fail`` (failure times × events) marks
    each one's failure time, ``fail_ix`` is its index and ``j`` its Efron weight (its rank
    among the ties at that time over their number; 0 for Breslow). ``first``/``last``: the
    index ranges; ``kept``: the rows statsmodels keeps (entered by the last failure, still
    there at the first)."""

    uft: np.ndarray
    first: np.ndarray
    last: np.ndarray
    ok: np.ndarray
    reach: CsrArray
    enter: CsrArray
    events: np.ndarray
    fail_ix: np.ndarray
    fail: CsrArray
    j: np.ndarray
    kept: np.ndarray

    @classmethod
    def build(
        cls, time: np.ndarray, event: np.ndarray, entry: np.ndarray, efron: bool = True
    ) -> RiskSets:
        ev = np.flatnonzero(event == 1)
        uft = np.unique(time[ev])
        k = len(uft)
        last = np.searchsorted(uft, time, side="right") - 1
        first = np.searchsorted(uft, entry, side="left")
        ok = first <= last
        rows = np.flatnonzero(ok)
        ones = np.ones(len(rows))
        reach = sparse.csr_array((ones, (last[rows], rows)), shape=(k, len(time)))
        enter = sparse.csr_array((ones, (first[rows], rows)), shape=(k, len(time)))
        fail_ix = np.searchsorted(uft, time[ev])
        fail = sparse.csr_array(
            (np.ones(len(ev)), (fail_ix, np.arange(len(ev)))), shape=(k, len(ev))
        )
        order = np.argsort(fail_ix, kind="stable")
        counts = np.bincount(fail_ix, minlength=k)
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        rank = np.empty(len(ev), dtype=np.int64)
        rank[order] = np.arange(len(ev)) - starts[fail_ix[order]]
        j = rank / counts[fail_ix] if efron else np.zeros(len(ev))
        kept = (entry <= uft[-1]) & (time >= uft[0])
        return cls(uft, first, last, ok, reach, enter, ev, fail_ix, fail, j, kept)


def _weighted(m: CsrArray, w: np.ndarray) -> CsrArray:
    """The 0/1 matrix ``m`` with each row's (column's) 1 replaced by its weight."""
    return sparse.csr_array((w[m.indices], m.indices, m.indptr), shape=m.shape)


def _at_risk_sums(rs: RiskSets, w: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Σ w and Σ w·x over each failure time's risk set: walking the times from the last back,
    add the rows that reach back to it, drop those that entered after it."""
    k = len(rs.uft)

    def walk(add: np.ndarray, drop: np.ndarray) -> np.ndarray:
        added = np.cumsum(add[::-1], axis=0)[::-1]
        dropped = np.cumsum(drop[::-1], axis=0)[::-1]
        out: np.ndarray = added - np.r_[dropped[1:], np.zeros((1, *add.shape[1:]))]
        return out

    s0 = walk(
        np.bincount(rs.last[rs.ok], w[rs.ok], minlength=k),
        np.bincount(rs.first[rs.ok], w[rs.ok], minlength=k),
    )
    s1 = walk(np.asarray(_weighted(rs.reach, w) @ x), np.asarray(_weighted(rs.enter, w) @ x))
    return s0, s1


def _gram(x: np.ndarray, v: np.ndarray, step: int = 1 << 16) -> np.ndarray:
    """xᵀ·diag(v)·x, in blocks of rows (no rows × columns temporary)."""
    h = np.zeros((x.shape[1], x.shape[1]))
    for i in range(0, len(x), step):
        xb = x[i : i + step]
        h += xb.T @ (xb * v[i : i + step, None])
    return h


@dataclass
class _Pieces:
    loglike: float
    grad: np.ndarray
    hess: np.ndarray | None
    s0: np.ndarray
    s1: np.ndarray


def _pieces(rs: RiskSets, x: np.ndarray, beta: np.ndarray, hessian: bool) -> _Pieces:
    """Log partial likelihood, its gradient and (when ``hessian``) its Hessian at ``beta``."""
    lin = x @ beta
    lin = lin - lin[rs.kept].max()
    w = np.where(rs.ok, np.exp(lin), 0.0)  # rows at risk at no failure time weigh nothing
    s0, s1 = _at_risk_sums(rs, w, x)
    k = len(rs.uft)
    ev, fail, j = rs.events, rs.fail_ix, rs.j
    we, xe = w[ev], x[ev]
    fsums = np.asarray(rs.fail @ np.column_stack([we, we[:, None] * xe]))
    s0f, s1f = fsums[:, 0], np.ascontiguousarray(fsums[:, 1:])
    c0 = s0[fail] - j * s0f[fail]
    loglike = float(lin[ev].sum() - np.log(c0).sum())
    a = np.bincount(fail, 1.0 / c0, minlength=k)
    b = np.bincount(fail, j / c0, minlength=k)
    grad = xe.sum(0) - (a[:, None] * s1 - b[:, None] * s1f).sum(0)
    hess = None
    if hessian:
        # Σ_i a_i S2(u_i) = Σ_r w_r (Σ of a over the times r is at risk) x_r x_rᵀ
        cum_a = np.r_[0.0, np.cumsum(a)]
        span = np.where(
            rs.ok, cum_a[np.minimum(rs.last + 1, k)] - cum_a[np.minimum(rs.first, k)], 0
        )
        h = _gram(x, w * span) - _gram(xe, we * b[fail])
        q0 = np.bincount(fail, 1.0 / c0**2, minlength=k)
        q1 = np.bincount(fail, j / c0**2, minlength=k)
        q2 = np.bincount(fail, j**2 / c0**2, minlength=k)
        cross = s1.T @ (s1f * q1[:, None])
        h -= s1.T @ (s1 * q0[:, None]) - cross - cross.T + s1f.T @ (s1f * q2[:, None])
        hess = -h
    return _Pieces(loglike, grad, hess, s0, s1)


@dataclass(frozen=True)
class EfronFit:
    """A fitted model: ``params``, ``cov`` (inverse information), ``loglike`` at the
    estimate, ``converged``, ``iterations``, and the Schoenfeld residuals of the event rows
    (``schoenfeld``, rows in the order of ``risk.events``)."""

    params: np.ndarray
    cov: np.ndarray
    loglike: float
    converged: bool
    iterations: int
    schoenfeld: np.ndarray
    risk: RiskSets


def fit_efron(
    time: np.ndarray, event: np.ndarray, x: np.ndarray, entry: np.ndarray, efron: bool = True
) -> EfronFit:
    """Newton–Raphson fit of the Cox model (see the module docstring); ``event`` must hold at
    least one 1. ``efron=False``: Breslow's handling of ties instead."""
    with one_thread():  # on a loaded machine BLAS threads spin: 1 M × 34 Gram 0.4 s vs 3-6 s
        rs = RiskSets.build(time, event, entry, efron)
        x = np.ascontiguousarray(x, dtype=float)  # row-major: the Gram products run in BLAS
        n = len(time)
        p = x.shape[1]
        old = np.full(p, np.inf)
        new = np.zeros(p)
        it = 0
        while it < MAX_ITER and np.any(np.abs(new - old) > TOL):
            pc = _pieces(rs, x, new, hessian=True)
            assert pc.hess is not None
            H = -pc.hess / n
            H[np.diag_indices(p)] += RIDGE
            old = new
            new = old - np.linalg.solve(H, -pc.grad / n)
            it += 1
        final = _pieces(rs, x, new, hessian=True)
        assert final.hess is not None
        cov = np.linalg.inv(-final.hess / n) / n
        avg = final.s1[rs.fail_ix] / final.s0[rs.fail_ix][:, None]
        return EfronFit(new, cov, final.loglike, it < MAX_ITER, it, x[rs.events] - avg, rs)


__all__ = ["EfronFit", "RiskSets", "fit_efron"]
