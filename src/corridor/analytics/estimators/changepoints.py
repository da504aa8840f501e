"""Change points in the mean of a series of period sums: optimal partitioning with PELT pruning.

Pure numpy on per-period sufficient statistics (n, Σx, Σx²); used by
:mod:`corridor.analytics.feedback.drift`. Killick, Fearnhead & Eckley (2012), "Optimal detection of
changepoints with a linear computational cost", *JASA* 107(500); Jackson et al. (2005) for
optimal partitioning; Page (1954) for the CUSUM/likelihood-ratio scan behind the penalty.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.lazy import lazy

_sp = lazy("scipy.stats")


def segment_cost(n: np.ndarray, total: np.ndarray, total_sq: np.ndarray, scale: float = 1.0) -> Any:
    """``C(a, b)`` for every pair of boundaries: the residual sum of squares of the ratings in
    periods ``a … b − 1`` around their mean, divided by ``scale`` (returns a function)."""
    cn = np.concatenate([[0.0], np.cumsum(np.asarray(n, dtype=float))])
    cs = np.concatenate([[0.0], np.cumsum(np.asarray(total, dtype=float))])
    cq = np.concatenate([[0.0], np.cumsum(np.asarray(total_sq, dtype=float))])

    def cost(a: Any, b: int) -> Any:
        k = cn[b] - cn[a]
        s = cs[b] - cs[a]
        with np.errstate(all="ignore"):
            rss = np.where(k > 0, cq[b] - cq[a] - s * s / np.where(k > 0, k, 1.0), 0.0)
        return np.maximum(rss, 0.0) / scale

    return cost


def pelt(
    n: Any,
    total: Any,
    total_sq: Any,
    penalty: float,
    min_segment: int = 1,
    scale: float = 1.0,
) -> list[int]:
    """Change points of a sequence of periods, each given by ``n``, ``Σx`` and ``Σx²``.

    Minimises ``Σ_segments C(S) + penalty · (number of changes)`` exactly, with the
    Gaussian cost ``C(S) = (Σx² − (Σx)²/n) / scale`` of the ratings pooled over the segment's
    periods and every segment at least ``min_segment`` periods long (optimal partitioning,
    Jackson et al. 2005, with the pruning of PELT, Killick et al. 2012: a candidate last change
    ``s`` with ``F(s) + C(s, t) > F(t)`` can never be optimal again once ``t`` itself is
    admissible, i.e. from ``t + min_segment`` on).

    Returns the indices (0-based) of the first period of every new segment, ascending; ``[]``
    when the best segmentation has a single segment. Equals ``ruptures.Pelt(custom_cost=…,
    min_size=min_segment, jump=1).fit(…).predict(pen=penalty)[:-1]`` with the same cost.
    """
    n_ = np.asarray(n, dtype=float)
    T = len(n_)
    if min_segment < 1:
        raise ValueError(f"min_segment must be at least 1, got {min_segment}")
    if 2 * min_segment > T:
        return []
    cost = segment_cost(n_, np.asarray(total, float), np.asarray(total_sq, float), scale)
    best = np.full(T + 1, np.inf)
    best[0] = -penalty
    last = np.zeros(T + 1, dtype=int)
    candidates: list[int] = [0]
    retire: dict[int, int] = {}  # candidate -> first t at which it is no longer considered
    for t in range(min_segment, T + 1):
        cands = np.array(
            [s for s in candidates if t - s >= min_segment and t < retire.get(s, T + 1)],
            dtype=int,
        )
        if cands.size == 0:
            continue
        costs = cost(cands, t)
        values = best[cands] + costs + penalty
        k = int(np.argmin(values))
        best[t], last[t] = values[k], int(cands[k])
        for s, v in zip(cands.tolist(), (best[cands] + costs).tolist(), strict=True):
            if v > best[t]:
                retire[s] = min(retire.get(s, T + 1), t + min_segment)
        candidates = [s for s in candidates if retire.get(s, T + 1) > t]
        if t <= T - min_segment:
            candidates.append(t)
    out: list[int] = []
    t = T
    while t > 0:
        s = int(last[t])
        if s > 0:
            out.append(s)
        t = s
    return sorted(out)


def change_penalty(periods: int, alpha: float = 0.01) -> float:
    """``β = z²(1 − α / (2(T − 1)))``: the squared two-sided normal critical value at level
    ``α`` Bonferroni-corrected for the ``T − 1`` possible split points of a ``T``-period
    series."""
    if not 0.0 < alpha < 1.0:
        raise AnalyticsQueryError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    splits = max(periods - 1, 1)
    z = float(_sp.norm.isf(alpha / (2.0 * splits)))
    return z * z


def pooled_variance(n: np.ndarray, total: np.ndarray, total_sq: np.ndarray) -> float:
    """``σ̂² = Σ_t (Σx²_t − (Σx_t)²/n_t) / (N − T)``: the within-period variance pooled over
    the periods; NaN when ``N ≤ T`` (no period has two ratings)."""
    n_, s, q = (np.asarray(v, dtype=float) for v in (n, total, total_sq))
    dof = n_.sum() - len(n_)
    if dof <= 0:
        return float("nan")
    with np.errstate(all="ignore"):
        within = np.where(n_ > 0, q - s * s / np.where(n_ > 0, n_, 1.0), 0.0)
    return float(max(within.sum(), 0.0) / dof)


def dispersion(n: Any, total: Any, changes: Sequence[int], variance: float) -> float:
    """Pearson's dispersion of the period means around their segment levels:
    ``φ̂ = Σ_t n_t (m_t − level_t)² / σ² / (T − K)`` with ``K`` segments — 1 in expectation
    when only sampling moves the means (McCullagh & Nelder 1989, §4.5); NaN without residual
    degrees of freedom or variance."""
    n_ = np.asarray(n, dtype=float)
    s = np.asarray(total, dtype=float)
    dof = len(n_) - len(changes) - 1
    if dof <= 0 or not np.isfinite(variance) or variance <= 0:
        return float("nan")
    rss = 0.0
    for a, b in _segments(len(n_), list(changes)):
        level = s[a:b].sum() / n_[a:b].sum()
        rss += float((n_[a:b] * (s[a:b] / n_[a:b] - level) ** 2).sum())
    return rss / variance / dof


@dataclass(frozen=True)
class Segmentation:
    """The change points of one series and what they rest on."""

    #: 0-based index of the first period of each new segment
    changes: list[int]
    #: pooled within-period variance σ̂²
    variance: float
    #: overdispersion factor φ ≥ 1 applied to the variance
    phi: float
    #: the penalty β per change point
    penalty: float


def segment_series(
    n: Any,
    total: Any,
    total_sq: Any,
    alpha: float = 0.01,
    min_segment: int = 1,
    correct_overdispersion: bool = True,
    max_iterations: int = 20,
) -> Segmentation:
    """Change points of one series of period sums (periods with ``n = 0`` dropped first).

    Pooled within-period variance σ̂², the Bonferroni penalty (:func:`change_penalty`) and
    :func:`pelt`; with ``correct_overdispersion``, the quasi-likelihood fixed point
    ``φ ← max(1, dispersion(fit with scale φσ̂²))`` from ``φ = 1`` (Wedderburn 1974), refitting
    until ``φ`` settles (at most ``max_iterations`` fits)."""
    n_, s, q = (np.asarray(v, dtype=float) for v in (n, total, total_sq))
    T = len(n_)
    beta = change_penalty(T, alpha)
    var = pooled_variance(n_, s, q)
    if len(n_) < 2 * min_segment or not np.isfinite(var) or var <= 0:
        return Segmentation([], var, 1.0, beta)
    phi = 1.0
    changes = pelt(n_, s, q, beta, min_segment, var)
    if correct_overdispersion:
        for _ in range(max_iterations):
            d = dispersion(n_, s, changes, var)
            new = max(1.0, d) if np.isfinite(d) else phi
            if abs(new - phi) <= 1e-9 * phi:
                break
            phi = new
            changes = pelt(n_, s, q, beta, min_segment, var * phi)
    return Segmentation(changes, var, phi, beta)


# -- all series ----------------------------------------------------------------------------------


def _segments(T: int, changes: list[int]) -> list[tuple[int, int]]:
    return list(itertools.pairwise([0, *changes, T]))
