"""Relative importance of correlated predictors: Johnson's relative weights and the exact
LMG (Shapley) decomposition of R², both from a correlation matrix, with a fast case-resampling
bootstrap that handles missing values.

Everything here is pure numpy on small matrices; :mod:`corridor.analytics.customers.drivers` builds
the person-level data and calls it.

* **R² of a subset** ``S`` of predictors: ``R²(S) = r_S' R_SS⁻¹ r_S`` with ``R`` the predictors'
  correlation matrix and ``r`` their correlations with the outcome.
* **LMG** (Lindeman, Merenda & Gold 1980; Shapley value of R², Grömping 2007): the share of
  ``R²`` of predictor ``j`` is its extra ``R²`` averaged over every order of entering the model,
  ``LMG_j = Σ_{S ⊆ P∖{j}} |S|! (p − |S| − 1)! / p! · (R²(S ∪ {j}) − R²(S))``. Exact: all
  ``2^p`` subsets are evaluated, batched by size (``p ≤ 15``: 32,768 subsets). Each subset
  extends its parent (itself without its last predictor) by one row of the inverse Cholesky
  factor of ``R_SS``: ``R²(S ∪ {j}) = R²(S) + ((r_j − l'w_S) / d)²`` with ``l = L_S⁻¹ R_Sj``,
  ``d² = 1 − l'l`` and ``w_S = L_S⁻¹ r_S`` — ``O(k²)`` per subset of size ``k`` instead of a
  ``k × k`` solve (1.5–2 times faster); from the first size with a subset too close to
  collinear for that (``d²`` near 0), by each subset's pseudo-inverse (least squares).
* **Relative weights** (Johnson 2000): with ``R = V Λ V'``, ``R^{1/2} = V Λ^{1/2} V'`` are the
  loadings of the predictors on their closest orthogonal counterparts ``Z``, ``β = R^{-1/2} r``
  the regression of the outcome on ``Z``, and ``ε_j = Σ_k (R^{1/2})_{jk}² β_k²``. The weights sum
  to the full-model ``R²``.

Missing values (a customer who never rated a touch point) are filled with the column's observed
mean, so they carry no information: the covariance of two predictors (or of a predictor and the
outcome) is then the sum of cross products over the rows that have both, divided by all rows.
A rarely rated touch point can therefore explain little of the outcome's variance across all
customers, however strongly it matters to those who met it — which is what its importance to
the whole base is. Pairwise deletion (each correlation from the rows that have both) was tried
and rejected: with sparse, barely overlapping touch points it gives indefinite matrices and
R² near 1 from a few dozen shared rows.

References
----------
* Johnson, J. W. (2000), "A heuristic method for estimating the relative weight of predictor
  variables in multiple regression", *Multivariate Behavioral Research* 35(1), 1–19.
* Lindeman, R. H., Merenda, P. F. & Gold, R. Z. (1980), *Introduction to Bivariate and
  Multivariate Analysis*, Scott Foresman — the LMG decomposition.
* Grömping, U. (2006), "Relative importance for linear regression in R: the package relaimpo",
  *Journal of Statistical Software* 17(1); Grömping, U. (2007), "Estimators of relative
  importance in linear regression based on variance decomposition", *The American Statistician*
  61(2).
* Efron, B. & Tibshirani, R. (1993), *An Introduction to the Bootstrap*, Chapman & Hall —
  percentile intervals.
"""

from __future__ import annotations

from functools import cache
from itertools import combinations
from typing import NamedTuple

import numpy as np

#: the largest number of predictors the exact LMG decomposition takes (2^15 subsets)
MAX_DRIVERS = 15


@cache
def _subsets(p: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """For each size k = 1..p: the (C(p,k), k) index array of all k-subsets and their bitmasks."""
    out = []
    for k in range(1, p + 1):
        idx = np.array(list(combinations(range(p), k)), dtype=np.intp).reshape(-1, k)
        masks = (np.int64(1) << idx.astype(np.int64)).sum(axis=1)
        out.append((idx, masks))
    return tuple(out)


@cache
def _tree(p: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """For each size k = 1..p (the order of :func:`_subsets`): each k-subset's parent (its
    position among the (k−1)-subsets: the subset without its last, largest predictor), that
    last predictor, and the subset's bitmask."""
    out = []
    position = np.zeros(1 << p, dtype=np.intp)  # bitmask → position within its size
    for idx, masks in _subsets(p):
        last = idx[:, -1]
        parent = position[masks - (np.int64(1) << last.astype(np.int64))]
        position[masks] = np.arange(len(masks))
        out.append((parent, last, masks))
    return tuple(out)


#: below this, d² = 1 − l'l says the subset is (nearly) collinear: solved directly instead
_COLLINEAR = 1e-10


def _solved_r2(rxx: np.ndarray, rxy: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``R²`` of the subsets ``idx`` (C × k) through the pseudo-inverse of each ``R_SS``: the
    least-squares answer when predictors are collinear (a plain solve of a matrix singular but
    for rounding gives huge coefficients and a meaningless ``R²``)."""
    a = rxx[idx[:, :, None], idx[:, None, :]]
    b = rxy[idx]
    sol = np.einsum("cij,cj->ci", np.linalg.pinv(a, rcond=1e-10, hermitian=True), b)
    r2: np.ndarray = np.einsum("ci,ci->c", b, sol)
    return r2


def subset_r2(rxx: np.ndarray, rxy: np.ndarray) -> np.ndarray:
    """``R²`` of every subset of the predictors, indexed by bitmask (bit j = predictor j);
    entry 0 (no predictor) is 0. Each subset from its parent by one row of the inverse
    Cholesky factor (module notes); a size with a near-collinear subset is solved directly."""
    p = len(rxy)
    r2 = np.zeros(1 << p)
    inv = np.ones((1, 0, 0))  # L_P⁻¹ of each parent P (the empty set's: 0 × 0)
    w = np.zeros((1, 0))  # w_P = L_P⁻¹ r_P
    base = np.zeros(1)  # R²(P)
    for (idx, _), (parent, last, masks) in zip(_subsets(p), _tree(p), strict=True):
        k = idx.shape[1]
        lp, wp = inv[parent], w[parent]  # (C, k−1, k−1), (C, k−1)
        row = np.einsum("cij,cj->ci", lp, rxx[idx[:, :-1], last[:, None]])
        d2 = rxx[last, last] - np.einsum("ci,ci->c", row, row)
        if np.any(d2 < _COLLINEAR):  # rare: this size and the larger ones by pseudo-inverses
            for idx_k, masks_k in _subsets(p)[k - 1 :]:
                r2[masks_k] = _solved_r2(rxx, rxy, idx_k)
            break
        d = np.sqrt(d2)
        step = (rxy[last] - np.einsum("ci,ci->c", row, wp)) / d
        level = base[parent] + step * step
        r2[masks] = level
        grown = np.zeros((len(masks), k, k))
        grown[:, : k - 1, : k - 1] = lp
        grown[:, k - 1, : k - 1] = -np.einsum("ci,cij->cj", row, lp) / d[:, None]
        grown[:, k - 1, k - 1] = 1.0 / d
        inv, w, base = grown, np.concatenate([wp, step[:, None]], axis=1), level
    return np.clip(r2, 0.0, 1.0)


@cache
def _shapley_weights(p: int) -> np.ndarray:
    """``|S|! (p − |S| − 1)! / p!`` for |S| = 0..p−1."""
    from math import factorial

    return np.array([factorial(s) * factorial(p - s - 1) / factorial(p) for s in range(p)])


@cache
def _popcount(p: int) -> np.ndarray:
    """Number of predictors in each subset bitmask 0 .. 2^p − 1."""
    counts = np.zeros(1 << p, dtype=np.intp)
    for j in range(p):
        counts += (np.arange(1 << p) >> j) & 1
    return counts


def lmg(rxx: np.ndarray, rxy: np.ndarray) -> np.ndarray:
    """The LMG share of ``R²`` of each predictor (exact, over all subsets); they sum to
    ``R²`` of the full model."""
    p = len(rxy)
    if p > MAX_DRIVERS:
        raise ValueError(f"LMG is exact over all subsets; give at most {MAX_DRIVERS} predictors")
    r2 = subset_r2(rxx, rxy)
    weights = _shapley_weights(p)[np.minimum(_popcount(p), p - 1)]
    masks = np.arange(1 << p, dtype=np.int64)
    out = np.empty(p)
    for j in range(p):
        bit = np.int64(1) << j
        without = masks[(masks & bit) == 0]
        out[j] = np.sum(weights[without] * (r2[without | bit] - r2[without]))
    return out


def relative_weights(rxx: np.ndarray, rxy: np.ndarray) -> np.ndarray:
    """Johnson's (2000) relative weights; they sum to ``R²`` of the full model."""
    vals, vecs = np.linalg.eigh(rxx)
    vals = np.clip(vals, 0.0, None)
    root = (vecs * np.sqrt(vals)) @ vecs.T  # R^{1/2}: loadings of X on Z
    inv_root = (vecs * np.where(vals > 1e-12, 1.0 / np.sqrt(np.maximum(vals, 1e-300)), 0.0)) @ (
        vecs.T
    )
    beta = inv_root @ rxy  # regression of y on Z
    return (root**2) @ (beta**2)


def full_r2(rxx: np.ndarray, rxy: np.ndarray) -> float:
    """``R²`` of the model with every predictor."""
    sol = np.linalg.lstsq(rxx, rxy, rcond=None)[0]
    return float(np.clip(rxy @ sol, 0.0, 1.0))


class Moments(NamedTuple):
    """Weighted cross moments of a data matrix with missing values (see :func:`moments`)."""

    n: np.ndarray  # N[j,k] = Σ w m_j m_k
    a: np.ndarray  # A[j,k] = Σ w z_j m_j m_k
    s: np.ndarray  # S[j,k] = Σ w z_j² m_j m_k
    p: np.ndarray  # P[j,k] = Σ w z_j z_k m_j m_k


class _Prepared(NamedTuple):
    left: np.ndarray  # [m, z0, z0²]: m = 1 where present, z0 = value where present, else 0
    m: np.ndarray
    z0: np.ndarray


def _prepare(z: np.ndarray) -> _Prepared:
    m = (~np.isnan(z)).astype(float)
    z0 = np.where(m > 0, z, 0.0)
    return _Prepared(np.hstack([m, z0, z0 * z0]), m, z0)


def _moments(d: _Prepared, w: np.ndarray | None) -> Moments:
    q = d.m.shape[1]
    right = np.hstack([d.m, d.z0]) if w is None else np.hstack([d.m, d.z0]) * w[:, None]
    block = d.left.T @ right  # one matrix product: (3q × n) @ (n × 2q)
    return Moments(block[:q, :q], block[q : 2 * q, :q], block[2 * q :, :q], block[q : 2 * q, q:])


def moments(z: np.ndarray, w: np.ndarray | None = None) -> Moments:
    """Cross moments of ``z`` (rows × columns, NaN = missing) weighted by ``w`` (bootstrap
    counts; ones if None): enough for pairwise and mean-imputed correlations alike."""
    return _moments(_prepare(z), w)


def correlation(mo: Moments) -> np.ndarray:
    """The correlation matrix from :func:`moments`, every missing value filled with its
    column's (weighted) observed mean."""
    with np.errstate(all="ignore"):
        mu = np.diag(mo.a) / np.diag(mo.n)
        # Σ w m_j m_k (z_j − μ_j)(z_k − μ_k): filled values contribute nothing
        cov = mo.p - mu[None, :] * mo.a - mu[:, None] * mo.a.T + np.outer(mu, mu) * mo.n
        d = np.sqrt(np.diag(cov))
        c = cov / np.outer(d, d)
    c = np.clip(np.nan_to_num(c, nan=0.0), -1.0, 1.0)
    np.fill_diagonal(c, 1.0)
    return c


class Importance(NamedTuple):
    """Point estimates for ``p`` predictors: full-model ``R²``, relative weights, LMG and
    each predictor's correlation with the outcome."""

    r2: float
    weights: np.ndarray
    lmg: np.ndarray
    r: np.ndarray


def importance(corr: np.ndarray) -> Importance:
    """Relative weights and LMG from a correlation matrix whose last row/column is the
    outcome."""
    rxx, rxy = corr[:-1, :-1], corr[:-1, -1]
    return Importance(full_r2(rxx, rxy), relative_weights(rxx, rxy), lmg(rxx, rxy), rxy.copy())


class Bootstrap(NamedTuple):
    """``(B, p)`` bootstrap replicates of the weights and LMG, and ``(B,)`` of ``R²``."""

    r2: np.ndarray
    weights: np.ndarray
    lmg: np.ndarray


def bootstrap(z: np.ndarray, replicates: int, seed: int, lmg_too: bool = True) -> Bootstrap:
    """Case-resampling bootstrap (``n`` rows drawn with replacement, as counts per row): the
    importance recomputed on each replicate. ``z``: predictors then the outcome (last column).

    The draws pick rows by position, so ``seed`` reproduces the intervals only for rows in the
    same order: callers put them in a fixed order first (drivers: by person id)."""
    rng = np.random.default_rng(seed)
    n, q = z.shape
    prepared = _prepare(z)
    r2 = np.empty(replicates)
    wts = np.empty((replicates, q - 1))
    lm = np.full((replicates, q - 1), np.nan)
    for b in range(replicates):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        c = correlation(_moments(prepared, w))
        rxx, rxy = c[:-1, :-1], c[:-1, -1]
        r2[b] = full_r2(rxx, rxy)
        wts[b] = relative_weights(rxx, rxy)
        if lmg_too:
            lm[b] = lmg(rxx, rxy)
    return Bootstrap(r2, wts, lm)


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval per column (Efron & Tibshirani 1993, ch. 13)."""
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.nanquantile(replicates, [alpha, 1.0 - alpha], axis=0)
    return lo, hi


__all__ = [
    "MAX_DRIVERS",
    "Bootstrap",
    "Importance",
    "Moments",
    "bootstrap",
    "correlation",
    "full_r2",
    "importance",
    "lmg",
    "moments",
    "percentile_interval",
    "relative_weights",
    "subset_r2",
]
