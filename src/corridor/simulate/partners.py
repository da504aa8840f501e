"""Partners (dealers, retailers, service firms, agencies) and agents (employees, partner staff).

Dealers and retailers are regional (each region has at least one of each); service firms and
agencies work nationally. Each partner has a true experience offset (truth) and a volume weight
drawn from a wide log-normal, so some partners are small and need shrinkage later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from . import params as P
from .arrowutil import padded_ids

PARTNER_TYPES: tuple[str, ...] = ("dealer", "retailer", "service", "agency")
PARTNER_COUNTS: tuple[int, ...] = (6, 6, 5, 4)
REGIONAL_TYPES: tuple[str, ...] = ("dealer", "retailer")


@dataclass
class Partners:
    ids: list[str]
    ptype: np.ndarray  # int8 index into PARTNER_TYPES
    region: np.ndarray  # int8 index into params.REGIONS, -1 national
    offset: np.ndarray  # float64 true experience offset
    weight: np.ndarray  # float64 volume weight (normalised within its type [and region])
    n_employees: int
    agent_start: np.ndarray  # int64 first agent code of each partner
    agent_count: np.ndarray  # int64 agents per partner
    agent_ids: pa.Array  # agent code -> agent_id string

    def truth(self) -> list[dict[str, Any]]:
        return [
            {
                "partner_id": pid,
                "type": PARTNER_TYPES[int(self.ptype[i])],
                "region": P.REGIONS[int(self.region[i])] if self.region[i] >= 0 else None,
                "experience_offset": round(float(self.offset[i]), 4),
                "volume_weight": round(float(self.weight[i]), 4),
            }
            for i, pid in enumerate(self.ids)
        ]

    def assign(self, ptype: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A partner index for each row wanting partner type ``ptype`` (-1: none)."""
        out = np.full(len(ptype), -1, dtype=np.int16)
        u = rng.random(len(ptype))
        for t, name in enumerate(PARTNER_TYPES):
            rows_t = ptype == t
            if not rows_t.any():
                continue
            regions: list[int] = list(range(len(P.REGIONS))) if name in REGIONAL_TYPES else [-1]
            for r in regions:
                rows = np.flatnonzero(rows_t & (region == r)) if r >= 0 else np.flatnonzero(rows_t)
                members = np.flatnonzero((self.ptype == t) & (self.region == r))
                cum = np.cumsum(self.weight[members])
                pick = np.searchsorted(cum / cum[-1], u[rows], side="right")
                out[rows] = members[np.minimum(pick, len(members) - 1)]
        return out

    def agents(
        self, partner: np.ndarray, assisted: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """An agent code for assisted rows: partner staff when a partner delivered it."""
        u = rng.random(len(partner))
        has_partner = partner >= 0
        pidx = np.where(has_partner, partner, 0)
        partner_agent = self.agent_start[pidx] + (u * self.agent_count[pidx]).astype(np.int64)
        employee = (u * self.n_employees).astype(np.int64)
        code = np.where(has_partner, partner_agent, employee)
        return np.where(assisted, code, -1)


def make_partners(n_customers: int, rng: np.random.Generator) -> Partners:
    ids: list[str] = []
    ptype: list[int] = []
    region: list[int] = []
    n_regions = len(P.REGIONS)
    for t, (name, count) in enumerate(zip(PARTNER_TYPES, PARTNER_COUNTS, strict=True)):
        if name in REGIONAL_TYPES:
            regs = list(rng.permutation(n_regions)) + list(
                rng.integers(0, n_regions, count - n_regions)
            )
        else:
            regs = [-1] * count
        for k in range(count):
            ids.append(f"{name}-{k + 1:02d}")
            ptype.append(t)
            region.append(int(regs[k]))
    n = len(ids)
    ptype_a = np.array(ptype, dtype=np.int8)
    region_a = np.array(region, dtype=np.int8)
    offset = rng.normal(0.0, P.PARTNER_OFFSET_SD, n)
    raw = rng.lognormal(0.0, 1.2, n)
    weight = raw.copy()
    for t in range(len(PARTNER_TYPES)):
        for r in set(region_a[ptype_a == t].tolist()):
            members = (ptype_a == t) & (region_a == r)
            weight[members] = raw[members] / raw[members].sum()
    n_employees = int(np.clip(n_customers // 400, 10, 9999))
    agent_count = np.clip(np.round(4 + 40 * weight), 3, 40).astype(np.int64)
    agent_start = n_employees + np.concatenate([[0], np.cumsum(agent_count)[:-1]])
    labels: list[pa.Array] = [padded_ids("emp-", np.arange(1, n_employees + 1), 4)]
    for i, pid in enumerate(ids):
        labels.append(padded_ids(f"{pid}-a", np.arange(1, agent_count[i] + 1), 2))
    return Partners(
        ids,
        ptype_a,
        region_a,
        offset,
        weight,
        n_employees,
        agent_start,
        agent_count,
        pa.concat_arrays(labels),
    )
