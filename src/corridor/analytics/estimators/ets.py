"""Exponential smoothing state-space models (ETS, additive errors), fitted many series at once.

The models of Hyndman, Koehler, Ord & Snyder (2008), *Forecasting with Exponential Smoothing:
the State Space Approach* (Springer), class 1 (linear, homoscedastic), written
``ETS(A, trend, season)``::

    y_t = l_{t-1} + φ b_{t-1} + s_{t-m} + e_t          (e_t ~ N(0, σ²), independent)
    l_t = l_{t-1} + φ b_{t-1} + α e_t
    b_t = φ b_{t-1} + β e_t
    s_t = s_{t-m} + γ e_t

with trend ``N`` (no ``b``), ``A`` (φ = 1) or ``Ad`` (damped, 0.8 ≤ φ ≤ 0.98) and season
``N`` (no ``s``) or ``A`` (``m`` seasonal states summing to zero). The parameters stay in the
usual region of Hyndman et al. (2008, §5.4): 0 < α < 1, 0 < β < α, 0 < γ < 1 − α.

Estimation is maximum likelihood, as in R's ``forecast::ets``. Two things make it exact and fast
enough to fit every touch point, measure and backtest origin in one go:

* the one-step errors are *linear* in the initial state ``x0`` for given smoothing parameters
  (``e_t = a_t − r_t·x0``), so the initial state that minimises the sum of squared errors is
  solved by least squares, never searched for (the seasonal states constrained to sum to zero);
* the smoothing parameters are found on a grid refined around its best point five times (in
  square-root coordinates, fine near 0), with every series, candidate parameter set and
  backtest origin one row of the same numpy arrays, so the recursion runs once per period for
  all of them.

A series is a row of ``y`` with a mask: 1 observed, 2 missing (the state moves on without an
update, as in Hyndman et al. 2008 §5.5), 0 outside the series (before its first or after its
last period: nothing happens), so series of different lengths and rolling origins share arrays.
Seasonal models need series without missing periods.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

#: the outside of a series, an observed period, a missing one
OUTSIDE, OBSERVED, MISSING = 0, 1, 2
#: bounds of the damping parameter (Hyndman et al. 2008; forecast::ets)
PHI_LOW, PHI_HIGH = 0.8, 0.98
#: the smallest value of α, β, γ (as forecast::ets)
TINY = 1e-4
#: how many times the grid is refined around its best point (each halves its steps)
REFINEMENTS = 5
#: rows of the batch worked on at once (bounds the memory of the stored error terms)
_CELLS = 3_000_000


@dataclass(frozen=True)
class Spec:
    """One model of the family: its trend (``N``, ``A``, ``Ad``) and season (``N``, ``A``)."""

    trend: str
    season: str
    m: int = 1

    @property
    def name(self) -> str:
        return f"ETS(A,{self.trend},{self.season})"

    @property
    def has_trend(self) -> bool:
        return self.trend != "N"

    @property
    def damped(self) -> bool:
        return self.trend == "Ad"

    @property
    def seasonal(self) -> bool:
        return self.season == "A"

    @property
    def k(self) -> int:
        """Length of the state vector: level, trend, ``m`` seasonal states."""
        return 1 + int(self.has_trend) + (self.m if self.seasonal else 0)

    @property
    def free_states(self) -> int:
        """Initial states estimated (the seasonal ones sum to zero: ``m − 1`` free)."""
        return self.k - int(self.seasonal)

    @property
    def n_params(self) -> int:
        """Smoothing parameters and initial states estimated (σ² not counted), as
        ``forecast::ets`` counts them for its σ² = SSE / (n − n_params)."""
        smoothing = 1 + int(self.has_trend) + int(self.damped) + int(self.seasonal)
        return smoothing + self.free_states

    def min_obs(self) -> int:
        """Observations a series needs for the model to be a candidate: AICc with at least
        two degrees of freedom left, and two full seasons for a seasonal model."""
        need = self.n_params + 4
        return max(need, 2 * self.m) if self.seasonal else need


def family(m: int) -> list[Spec]:
    """The candidates: three non-seasonal models and, for ``m > 1``, three seasonal ones."""
    specs = [Spec("N", "N"), Spec("A", "N"), Spec("Ad", "N")]
    if m > 1:
        specs += [Spec("N", "A", m), Spec("A", "A", m), Spec("Ad", "A", m)]
    return specs


# -- parameters -----------------------------------------------------------------------------------
@dataclass
class Params:
    """Smoothing parameters per row (α, β, γ, φ), from grid coordinates ``q`` in [0, 1]:
    α = q₀², β = α·q₁², γ = (1 − α)·q₂², φ = 0.8 + 0.18·q₃ (square roots: fine near 0)."""

    alpha: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    phi: np.ndarray

    @classmethod
    def of(cls, spec: Spec, q: np.ndarray) -> Params:
        n = len(q)
        sq = np.clip(q, 0.0, 1.0) ** 2
        alpha = np.clip(sq[:, 0], TINY, 1 - TINY)
        beta = np.clip(alpha * sq[:, 1], TINY, alpha) if spec.has_trend else np.zeros(n)
        gamma = np.clip((1 - alpha) * sq[:, 2], TINY, None) if spec.seasonal else np.zeros(n)
        if spec.seasonal:
            gamma = np.minimum(gamma, np.maximum(1 - alpha - TINY, TINY))
        phi = PHI_LOW + (PHI_HIGH - PHI_LOW) * q[:, 3] if spec.damped else np.ones(n)
        return cls(alpha, beta, gamma, phi)


def _axes(spec: Spec) -> list[int]:
    """The grid coordinates a model uses (0 α, 1 β, 2 γ, 3 φ)."""
    return [0, *([1] if spec.has_trend else []), *([2] if spec.seasonal else []),
            *([3] if spec.damped else [])]  # fmt: skip


#: first grid per coordinate, sized so the seasonal damped model stays a few hundred points
_FIRST = {
    0: (np.linspace(0.01, 0.995, 10), np.linspace(0.01, 0.995, 8)),
    1: (np.linspace(0.01, 0.99, 6), np.linspace(0.01, 0.99, 5)),
    2: (np.linspace(0.01, 0.99, 6), np.linspace(0.01, 0.99, 5)),
    3: (np.linspace(0.0, 1.0, 3), np.linspace(0.0, 1.0, 3)),
}


def first_grid(spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """Grid coordinates (rows × 4) of the first search and each axis' step."""
    axes = _axes(spec)
    pick = 1 if spec.seasonal else 0
    lines = [_FIRST[a][pick] for a in axes]
    q = np.full((int(np.prod([len(v) for v in lines])), 4), 0.5)
    q[:, axes] = np.array(list(itertools.product(*lines)))
    step = np.zeros(4)
    step[axes] = [v[1] - v[0] for v in lines]
    return q, step


def local_grid(spec: Spec, centre: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Rows × 3^d × 4 coordinates around each row's ``centre``, ± ``step`` on each axis."""
    axes = _axes(spec)
    offsets = np.array(list(itertools.product((-1.0, 0.0, 1.0), repeat=len(axes))))
    q = np.repeat(centre[:, None, :], len(offsets), axis=1)
    q[:, :, axes] += offsets[None, :, :] * step[axes][None, None, :]
    return np.clip(q, 0.0, 1.0)


# -- the recursion --------------------------------------------------------------------------------
def _weights(spec: Spec, p: Params) -> tuple[np.ndarray, np.ndarray]:
    """Per row: ``w`` (the measurement vector, y = w·x + e) and ``g`` (the state's gain)."""
    n, k = len(p.alpha), spec.k
    w, g = np.zeros((n, k)), np.zeros((n, k))
    w[:, 0], g[:, 0] = 1.0, p.alpha
    if spec.has_trend:
        w[:, 1], g[:, 1] = p.phi, p.beta
    if spec.seasonal:
        s0 = k - spec.m
        w[:, k - 1], g[:, s0] = 1.0, p.gamma
    return w, g


def transition(spec: Spec, x: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """``F x`` for states ``x`` (rows × k × …): level + damped trend, trend damped, seasonal
    states rotated (the oldest becomes the newest, before its update)."""
    out = np.empty_like(x)
    ph = phi.reshape((-1,) + (1,) * (x.ndim - 2))
    if spec.has_trend:
        out[:, 0] = x[:, 0] + ph * x[:, 1]
        out[:, 1] = ph * x[:, 1]
    else:
        out[:, 0] = x[:, 0]
    if spec.seasonal:
        s0 = spec.k - spec.m
        out[:, s0] = x[:, -1]
        out[:, s0 + 1 :] = x[:, s0:-1]
    return out


def _row_transition(spec: Spec, r: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """``r F`` for row vectors ``r`` (rows × k)."""
    out = np.empty_like(r)
    out[:, 0] = r[:, 0]
    if spec.has_trend:
        out[:, 1] = phi * (r[:, 0] + r[:, 1])
    if spec.seasonal:
        s0 = spec.k - spec.m
        out[:, s0:-1] = r[:, s0 + 1 :]
        out[:, -1] = r[:, s0]
    return out


def _measure(spec: Spec, x: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """``w·x`` for states ``x`` (rows × k × …): level + φ·trend + the oldest seasonal state."""
    out = x[:, 0].copy()
    if spec.has_trend:
        out += phi.reshape((-1,) + (1,) * (x.ndim - 2)) * x[:, 1]
    if spec.seasonal:
        out += x[:, -1]
    return out


def _gain(spec: Spec, r: np.ndarray, p: Params) -> np.ndarray:
    """``r·g`` for row vectors ``r`` (rows × k)."""
    out = r[:, 0] * p.alpha
    if spec.has_trend:
        out = out + r[:, 1] * p.beta
    if spec.seasonal:
        out = out + r[:, spec.k - spec.m] * p.gamma
    return out


def _error_terms(
    spec: Spec, y: np.ndarray, mask: np.ndarray, p: Params
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row: ``Σ a²``, ``Σ r a`` and ``Σ r rᵀ`` over observed periods, where the
    one-step error with initial state ``x0`` is ``e_t = a_t − r_t·x0``."""
    n, t_len = y.shape
    k = spec.k
    w, g = _weights(spec, p)
    x = np.zeros((n, k))
    a_all = np.zeros((n, t_len))
    r_all = np.zeros((n, t_len, k))
    basis = None if spec.seasonal else np.repeat(np.eye(k)[None], n, axis=0)
    r = w.copy()
    for t in range(t_len):
        code = mask[:, t]
        obs = code == OBSERVED
        every = bool(obs.all())
        moves = code != OUTSIDE
        e = y[:, t] - _measure(spec, x, p.phi)
        if not every:
            e = np.where(obs, e, 0.0)
        a_all[:, t] = e
        if basis is not None:
            r = _measure(spec, basis, p.phi)
        r_all[:, t] = r if every else r * obs[:, None]
        moved = transition(spec, x, p.phi) + g * e[:, None]
        x = moved if every else np.where(moves[:, None], moved, x)
        if basis is None:  # seasonal (no missing periods): r_{t+1} = r_t (F − g wᵀ)
            rd = _row_transition(spec, r, p.phi) - _gain(spec, r, p)[:, None] * w
            r = rd if every else np.where(obs[:, None], rd, r)
        else:
            prop = transition(spec, basis, p.phi)
            upd = prop - g[:, :, None] * _measure(spec, basis, p.phi)[:, None, :]
            basis = (
                upd
                if every
                else np.where(obs[:, None, None], upd, np.where(moves[:, None, None], prop, basis))
            )
    saa = (a_all * a_all).sum(axis=1)
    rt = r_all.transpose(0, 2, 1)
    sra = (rt @ a_all[:, :, None])[:, :, 0]
    srr = rt @ r_all
    return saa, sra, srr


def _constraint(spec: Spec) -> np.ndarray:
    """``P`` with x0 = P z: the last seasonal state is minus the sum of the others."""
    k, f = spec.k, spec.free_states
    p = np.zeros((k, f))
    p[:f, :f] = np.eye(f)
    if spec.seasonal:
        p[k - 1, k - spec.m : f] = -1.0
    return p


def _solve(
    spec: Spec, saa: np.ndarray, sra: np.ndarray, srr: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The least-squares free initial states ``z`` (x0 = P z), the SSE and the Gram matrix."""
    c = _constraint(spec)
    gram = c.T @ srr @ c
    rhs = sra @ c
    scale = np.trace(gram, axis1=1, axis2=2) / gram.shape[1]
    ridge = (1e-10 * scale + 1e-300)[:, None, None] * np.eye(gram.shape[1])
    gram = gram + ridge
    z = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
    sse = saa - 2 * (z * rhs).sum(axis=1) + (z * (gram @ z[:, :, None])[:, :, 0]).sum(axis=1)
    return z, np.maximum(sse, 0.0), gram


def profile(
    spec: Spec, y: np.ndarray, mask: np.ndarray, p: Params
) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares initial state of each row and its sum of squared one-step errors."""
    z, sse, _ = _solve(spec, *_error_terms(spec, y, mask, p))
    return z @ _constraint(spec).T, sse


def state_uncertainty(
    spec: Spec, y: np.ndarray, mask: np.ndarray, p: Params, steps: int
) -> np.ndarray:
    """Per row and step h, ``d_h·G⁻¹·d_h``: what the uncertainty of the estimated initial state
    adds to the forecast variance, in units of σ². ``d_h`` is how the forecast h steps after
    the last column moves with the free initial states, ``G`` their Gram matrix (the least-
    squares covariance of the initial state is σ²·G⁻¹). Large where the smoothing parameters
    are small (a nearly fixed level or trend, estimated from the data) or the series short."""
    _, _, gram = _solve(spec, *_error_terms(spec, y, mask, p))
    n, k = len(y), spec.k
    _w, g = _weights(spec, p)
    basis = np.repeat(np.eye(k)[None], n, axis=0)
    for t in range(y.shape[1]):
        code = mask[:, t]
        moved = transition(spec, basis, p.phi)
        upd = moved - g[:, :, None] * _measure(spec, basis, p.phi)[:, None, :]
        basis = np.where(
            (code == OBSERVED)[:, None, None],
            upd,
            np.where((code != OUTSIDE)[:, None, None], moved, basis),
        )
    a = basis @ _constraint(spec)
    inv = np.linalg.inv(gram)
    out = np.empty((n, steps))
    for h in range(steps):
        d = _measure(spec, a, p.phi)
        out[:, h] = (d * (inv @ d[:, :, None])[:, :, 0]).sum(axis=1)
        a = transition(spec, a, p.phi)
    return out


def _best_of(
    spec: Spec, y: np.ndarray, mask: np.ndarray, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's best point of its own grid (rows × points × 4): coordinates and SSE."""
    n, width = grid.shape[:2]
    rows = max(1, _CELLS // max(1, y.shape[1] * spec.k * width))
    centre, best = np.empty((n, 4)), np.empty(n)
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        idx = np.repeat(np.arange(lo, hi), width)
        _, sse = profile(spec, y[idx], mask[idx], Params.of(spec, grid[lo:hi].reshape(-1, 4)))
        sse = sse.reshape(hi - lo, width)
        pick = np.argmin(sse, axis=1)
        best[lo:hi] = sse[np.arange(hi - lo), pick]
        centre[lo:hi] = grid[lo:hi][np.arange(hi - lo), pick]
    return centre, best


def search(spec: Spec, y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first grid's best point of every row of ``y`` (standardised values) and its SSE."""
    q0, _ = first_grid(spec)
    return _best_of(spec, y, mask, np.repeat(q0[None], len(y), axis=0))


def refine(
    spec: Spec, y: np.ndarray, mask: np.ndarray, centre: np.ndarray, best: np.ndarray
) -> tuple[Params, np.ndarray, np.ndarray]:
    """:func:`search`'s points refined (:data:`REFINEMENTS` halvings of the grid's steps):
    the smoothing parameters, least-squares initial state and SSE of every row."""
    _, step = first_grid(spec)
    centre, best = centre.copy(), best.copy()
    for _ in range(REFINEMENTS):
        step = step / 2
        c, b = _best_of(spec, y, mask, local_grid(spec, centre, step))
        better = b < best
        centre[better], best[better] = c[better], b[better]
    params = Params.of(spec, centre)
    x0, sse = profile(spec, y, mask, params)
    return params, x0, sse


def fit_grid(spec: Spec, y: np.ndarray, mask: np.ndarray) -> tuple[Params, np.ndarray, np.ndarray]:
    """:func:`search` then :func:`refine`: the fitted parameters, initial state and SSE."""
    centre, best = search(spec, y, mask)
    return refine(spec, y, mask, centre, best)


def run_filter(
    spec: Spec, y: np.ndarray, mask: np.ndarray, p: Params, x0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One-step errors (0 where not observed) and the final state of each row."""
    _w, g = _weights(spec, p)
    x = x0.copy()
    errors = np.zeros_like(y)
    for t in range(y.shape[1]):
        code = mask[:, t]
        e = np.where(code == OBSERVED, y[:, t] - _measure(spec, x, p.phi), 0.0)
        errors[:, t] = e
        x = np.where((code != OUTSIDE)[:, None], transition(spec, x, p.phi) + g * e[:, None], x)
    return errors, x


def paths(spec: Spec, p: Params, state: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Point forecasts ``w·F^{h−1}·x`` for h = 1…steps and the variance multipliers
    ``1 + Σ_{j<h} c_j²`` with ``c_j = w·F^{j−1}·g`` (Hyndman et al. 2008, §6.1: class 1)."""
    _w, g = _weights(spec, p)
    n = len(state)
    means, mult = np.empty((n, steps)), np.empty((n, steps))
    x, v = state.copy(), g.copy()
    acc = np.ones(n)
    for h in range(steps):
        means[:, h] = _measure(spec, x, p.phi)
        mult[:, h] = acc
        acc = acc + _measure(spec, v, p.phi) ** 2
        x = transition(spec, x, p.phi)
        v = transition(spec, v, p.phi)
    return means, mult


__all__ = [
    "MISSING",
    "OBSERVED",
    "OUTSIDE",
    "Params",
    "Spec",
    "family",
    "fit_grid",
    "paths",
    "profile",
    "refine",
    "run_filter",
    "search",
    "state_uncertainty",
    "transition",
]
