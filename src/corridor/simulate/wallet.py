"""Share-of-wallet answers on customers' relationship surveys, and what they plant.

A customer's survey that asks for an NPS also asks, with probability
``params.WALLET_ASKED_SHARE``, how many brands of the category they use (``brands_used``) and
where ours ranks among them (``brand_rank``, 1 = preferred). Prospects, anonymous feedback and
other sources never carry them.

The model (a Thurstone-style ranking)::

    N  ~ P(N | segment) on 1..5, fixed per person              (params.WALLET_BRANDS)
    u  = standing[segment] + w · mood / sd(mood) + N(0, τ) per person + N(0, σ) per answer
    c_k ~ N(0, 1), k = 1..N − 1: the rival brands' standings, fixed per person
    brand_rank = 1 + #{k : c_k > u}

``mood`` is the person's offset on every latent experience (:mod:`corridor.simulate.people`),
so better-served customers rank us higher. All of it is drawn from its own random stream, so
the rest of the company is the same with or without it.

Expected values (:func:`expected`, exact, reported in ``truth["wallet"]``): ``u`` is normal
with mean ``a = standing[segment]`` and variance ``s² = w² + τ² + σ²``, so a rival stands above
us with probability ``p = Φ(−a / √(1 + s²))`` and ``E[rank | N] = 1 + (N − 1) p``. The Wallet
Allocation Rule share ``(1 − rank/(N + 1)) · 2/N`` is linear in the rank, hence
``E[share | N] = (1 − E[rank | N]/(N + 1)) · 2/N``, averaged over ``P(N | segment)``. The share
ranking us first, ``E[Φ(u)^(N−1)]``, by 96-node Gauss–Hermite quadrature (the integrand is
smooth: it agrees with adaptive ``scipy.integrate.quad`` to 1e-15).
These hold for any one answer of a person (the latest, say), whichever it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import ndtr

from . import params as P
from .people import People

FORMULA = (
    "brand_rank = 1 + #{rivals k < brands_used: c_k > u}, c_k ~ N(0, 1) fixed per person; "
    "u = standing[segment] + mood_weight * mood / mood_sd + N(0, person_sd) per person "
    "+ N(0, answer_sd) per answer; brands_used ~ P(N | segment) fixed per person"
)
_GAUSS_HERMITE = hermegauss(96)  # nodes and weights for ∫ f(x) exp(−x²/2) dx
SHARE = "(1 - brand_rank / (brands_used + 1)) * 2 / brands_used (Keiningham et al. 2015)"


@dataclass
class Wallet:
    """Per-person parts of the model and the stream the per-answer parts come from."""

    n_customers: int
    brands: np.ndarray  # int8 per person, 1..WALLET_MAX_BRANDS
    standing: np.ndarray  # float64 per person: our standing without the per-answer noise
    rivals: np.ndarray  # float64 (n, WALLET_MAX_BRANDS - 1): the first brands - 1 count
    rng: np.random.Generator

    @classmethod
    def make(cls, people: People, rng: np.random.Generator) -> Wallet:
        n, seg = people.n, people.segment
        cum = np.cumsum(np.array(P.WALLET_BRANDS), axis=1)[seg]
        brands = 1 + np.minimum((rng.random(n)[:, None] >= cum).sum(1), P.WALLET_MAX_BRANDS - 1)
        standing = (
            np.array(P.WALLET_STANDING)[seg]
            + P.WALLET_MOOD_WEIGHT * people.mood.astype(np.float64) / P.PERSON_MOOD_SD
            + rng.normal(0.0, P.WALLET_PERSON_SD, n)
        )
        rivals = rng.normal(0.0, 1.0, (n, P.WALLET_MAX_BRANDS - 1))
        return cls(people.n_customers, brands.astype(np.int8), standing, rivals, rng)

    def answers(self, person: np.ndarray, eligible: np.ndarray) -> tuple[pa.Array, pa.Array]:
        """``brands_used`` and ``brand_rank`` (int8, null where not asked) for feedback rows
        about ``person`` (-1: anonymous); only customers' ``eligible`` rows can be asked."""
        m = len(person)
        draw = self.rng.random(m)  # drawn for every row, so the stream never depends on masks
        noise = self.rng.normal(0.0, P.WALLET_ANSWER_SD, m)
        asked = eligible & (person >= 0) & (person < self.n_customers)
        asked &= draw < P.WALLET_ASKED_SHARE
        who = np.where(asked, person, 0)
        n = self.brands[who].astype(np.int64)
        u = self.standing[who] + noise
        live = np.arange(P.WALLET_MAX_BRANDS - 1)[None, :] < (n - 1)[:, None]
        rank = 1 + ((self.rivals[who] > u[:, None]) & live).sum(1)
        return (
            pa.array(n.astype(np.int8), pa.int8(), mask=~asked),
            pa.array(rank.astype(np.int8), pa.int8(), mask=~asked),
        )


def expected() -> dict[str, Any]:
    """What the model plants per segment (exact; see the module docstring)."""
    s = float(np.sqrt(P.WALLET_MOOD_WEIGHT**2 + P.WALLET_PERSON_SD**2 + P.WALLET_ANSWER_SD**2))
    segments: dict[str, Any] = {}
    for k, name in enumerate(P.SEGMENTS):
        a = P.WALLET_STANDING[k]
        probs = np.array(P.WALLET_BRANDS[k], dtype=np.float64)
        n = np.arange(1, len(probs) + 1, dtype=np.float64)
        p_above = float(ndtr(-a / np.sqrt(1.0 + s * s)))
        rank = 1.0 + (n - 1.0) * p_above
        share = (1.0 - rank / (n + 1.0)) * 2.0 / n
        first = np.array([_first_choice(a, s, int(b)) for b in n])
        segments[name] = {
            "brands_used": dict(zip([str(int(b)) for b in n], probs.tolist(), strict=True)),
            "mean_brands": float(probs @ n),
            "rival_above_probability": p_above,
            "mean_rank": float(probs @ rank),
            "first_choice": float(probs @ first),
            "wallet_share": float(probs @ share),
        }
    return {
        "fields": ["brands_used", "brand_rank"],
        "asked": "customers' surveys with an nps answer, each with probability "
        f"{P.WALLET_ASKED_SHARE}",
        "model": FORMULA,
        "standing_by_segment": dict(zip(P.SEGMENTS, P.WALLET_STANDING, strict=True)),
        "mood_weight": P.WALLET_MOOD_WEIGHT,
        "person_sd": P.WALLET_PERSON_SD,
        "answer_sd": P.WALLET_ANSWER_SD,
        "share": SHARE,
        "computed": "exact: closed form for mean rank and share (the share is linear in the "
        "rank); 96-node Gauss-Hermite quadrature for first_choice",
        "expected": segments,
    }


def _first_choice(a: float, s: float, brands: int) -> float:
    """P(no rival stands above us) = E[Φ(u)^(N−1)], u ~ N(a, s)."""
    nodes, weights = _GAUSS_HERMITE
    return float(weights @ ndtr(a + s * nodes) ** (brands - 1) / np.sqrt(2.0 * np.pi))
