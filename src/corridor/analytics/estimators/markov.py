"""First-order Markov attribution: the removal effect of each touch point on conversion.

Each journey is a path ``start → s₁ → … → s_m → conv`` (or ``→ null`` when the person did not
convert). Counting every transition over all paths gives the transition matrix ``P`` of an
absorbing Markov chain; the conversion probability is the probability of being absorbed in
``conv`` from ``start``: with ``Q`` the transitions among transient states (start and the
touch points) and ``r`` those into ``conv``, ``x = (I − Q)⁻¹ r`` and ``p = x_start``.

The **removal effect** of touch point ``s`` is the relative drop in conversion probability when
``s`` is removed from the graph (every transition into it goes to ``null`` instead):
``RE_s = 1 − p₋ₛ / p``. Conversions are attributed in proportion to the removal effects:
``attributed_s = C · RE_s / Σ_k RE_k`` with ``C`` the observed conversions (Anderl, Becker,
von Wangenheim & Schumann 2016, as in the R package ChannelAttribution's ``markov_model``
with order 1).

Reference: Anderl, E., Becker, I., von Wangenheim, F. & Schumann, J. H. (2016), "Mapping the
customer journey: lessons learned from graph-based online attribution modeling",
*International Journal of Research in Marketing* 33(3), 457–474.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from corridor.lazy import lazy

sparse = lazy("scipy.sparse")

#: bootstrap resamples weighted at once (memory: journeys × this many floats)
_BATCH = 25


class Paths(NamedTuple):
    """Journeys as flat arrays: ``element`` codes (0..k−1) in order, the ``journey`` each row
    belongs to (0..J−1, rows of a journey contiguous and in order), and per journey whether
    it ``converted``."""

    element: np.ndarray
    journey: np.ndarray
    converted: np.ndarray
    k: int


def transition_index(paths: Paths) -> np.ndarray:
    """One flat index ``from × S + to`` per transition of every journey, where the states are
    ``0 = start``, ``1..k`` the elements, ``k+1 = conv``, ``k+2 = null`` (``S = k + 3``);
    followed by the journey of each transition (second row)."""
    k = paths.k
    s = k + 3
    el = paths.element.astype(np.int64) + 1
    jr = paths.journey.astype(np.int64)
    n_j = len(paths.converted)
    first = np.ones(len(el), dtype=bool)
    first[1:] = jr[1:] != jr[:-1]
    prev = np.where(first, 0, np.roll(el, 1))
    inner = prev * s + el
    # the end of each journey: its last element (or start, when it has none) → conv / null
    last_el = np.zeros(n_j, dtype=np.int64)
    if len(el):
        is_last = np.ones(len(el), dtype=bool)
        is_last[:-1] = jr[1:] != jr[:-1]
        last_el[jr[is_last]] = el[is_last]
    end = np.where(paths.converted, k + 1, k + 2)
    tail = last_el * s + end
    return np.vstack(
        [np.concatenate([inner, tail]), np.concatenate([jr, np.arange(n_j, dtype=np.int64)])]
    )


def conversion_probabilities(counts: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """From an ``S × S`` transition count matrix: the conversion probability from ``start``,
    and for each element the conversion probability with that element removed."""
    s = k + 3
    counts = counts.reshape(s, s)
    out = counts.sum(axis=1, keepdims=True)
    with np.errstate(all="ignore"):
        p = np.where(out > 0, counts / out, 0.0)  # a state never left goes nowhere (null)
    trans = k + 1  # start and the elements
    q = p[:trans, :trans]
    r = p[:trans, k + 1]
    eye = np.eye(trans)
    base = _absorb(eye - q, r)
    # remove element j: zero the column of transitions into it (they now end in null)
    qs = np.repeat(q[None, :, :], k, axis=0)
    idx = np.arange(k)
    qs[idx, :, idx + 1] = 0.0
    removed = _absorb_many(eye[None, :, :] - qs, r)
    return base, removed


def _absorb(a: np.ndarray, r: np.ndarray) -> float:
    try:
        x = np.linalg.solve(a, r)
    except np.linalg.LinAlgError:
        x = np.linalg.lstsq(a, r, rcond=None)[0]
    return float(x[0])


def _absorb_many(a: np.ndarray, r: np.ndarray) -> np.ndarray:
    if a.shape[0] == 0:
        return np.empty(0)
    try:
        x = np.linalg.solve(a, np.broadcast_to(r, a.shape[:2])[..., None])[..., 0]
    except np.linalg.LinAlgError:
        x = np.stack([np.linalg.lstsq(m, r, rcond=None)[0] for m in a])
    return np.asarray(x[:, 0], dtype=float)


class Attribution(NamedTuple):
    probability: float  # model conversion probability from start
    removal_effect: np.ndarray  # per element
    attributed: np.ndarray  # conversions attributed to each element


def attribute(counts: np.ndarray, k: int, conversions: float) -> Attribution:
    """Removal effects and attributed conversions from transition counts."""
    base, removed = conversion_probabilities(counts, k)
    with np.errstate(all="ignore"):
        effect = np.where(base > 0, 1.0 - removed / base, np.nan)
        total = np.nansum(effect)
        attributed = np.where(total > 0, conversions * effect / total, 0.0)
    return Attribution(base, effect, attributed)


def markov_attribution(
    paths: Paths, replicates: int = 0, seed: int = 0
) -> tuple[Attribution, list[Attribution]]:
    """The attribution of ``paths`` and, with ``replicates``, that of each bootstrap resample
    of journeys (seeded)."""
    k = paths.k
    s = k + 3
    flat, journey = transition_index(paths)
    n_j = len(paths.converted)
    counts = np.bincount(flat, minlength=s * s).astype(float)
    point = attribute(counts, k, float(paths.converted.sum()))
    rng = np.random.default_rng(seed)
    boots: list[Attribution] = []
    if not replicates:
        return point, boots
    # each journey's transition counts (a sparse journey × transition matrix, transposed):
    # a resample's counts are its journey weights times it, for a batch of resamples at once.
    # Weights and counts are whole numbers, so the sums are exact in any order: the counts
    # are those of weighting every transition by its journey's weight, one resample at a time
    per_journey = sparse.csr_matrix(
        (np.ones(len(flat)), (flat, journey)), shape=(s * s, n_j), dtype=float
    )
    converted = paths.converted.astype(float)
    for done in range(0, replicates, _BATCH):
        draws = [
            np.bincount(rng.integers(0, n_j, n_j), minlength=n_j)
            for _ in range(min(_BATCH, replicates - done))
        ]
        w = np.stack(draws, axis=1).astype(float)
        counts_b = np.asarray(per_journey @ w)
        conversions = converted @ w
        for i in range(w.shape[1]):
            c = np.ascontiguousarray(counts_b[:, i])
            boots.append(attribute(c, k, float(conversions[i])))
    return point, boots


__all__ = [
    "Attribution",
    "Paths",
    "attribute",
    "conversion_probabilities",
    "markov_attribution",
    "transition_index",
]
