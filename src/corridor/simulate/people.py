"""Customers and prospects: segments, regions, identities, and the planted identity merges.

People are indexed ``0 .. n_customers-1`` (customers, ``c-…``) then prospects (``p-…``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import params as P
from .arrowutil import DAY, hex_ids, padded_ids, take_strings, timestamps

IDENTITY_COLUMNS: tuple[str, ...] = ("email", "phone", "device_id", "crm_id")
_FIRST = (
    "anna",
    "ben",
    "chloe",
    "david",
    "emma",
    "felix",
    "grace",
    "hugo",
    "isla",
    "jack",
    "kate",
    "liam",
    "maria",
    "noah",
    "olivia",
    "paul",
    "rosa",
    "sam",
    "tara",
    "victor",
    "wendy",
    "yusuf",
    "zoe",
    "omar",
    "lena",
    "mateo",
    "priya",
    "ken",
    "nina",
    "ivan",
)
_LAST = (
    "smith",
    "jones",
    "garcia",
    "miller",
    "davis",
    "lopez",
    "wilson",
    "moore",
    "taylor",
    "lee",
    "walker",
    "hall",
    "young",
    "king",
    "wright",
    "scott",
    "green",
    "baker",
    "adams",
    "nelson",
    "hill",
    "campbell",
    "mitchell",
    "roberts",
    "carter",
    "phillips",
    "evans",
)
_DOMAINS = ("example.com", "mail.example.org", "post.example.net", "inbox.example.com")


@dataclass
class People:
    n_customers: int
    n_prospects: int
    segment: np.ndarray  # int8 index into params.SEGMENTS
    region: np.ndarray  # int8 index into params.REGIONS
    created: np.ndarray  # int64 seconds: first seen
    t0: np.ndarray  # int64 seconds: start of the in-window journey (-1: existing customer)
    mood: np.ndarray  # float32 person offset on experience
    has_identity: np.ndarray  # bool (n, 4) presence of IDENTITY_COLUMNS
    ids: pa.Array  # person_id strings
    identities: dict[str, pa.Array]  # column -> strings with nulls
    merges: list[tuple[int, int, str]]  # (prospect index, customer index, shared column)

    @property
    def n(self) -> int:
        return self.n_customers + self.n_prospects

    def table(self) -> pa.Table:
        kind = np.where(np.arange(self.n) < self.n_customers, 0, 1)
        return pa.table(
            {
                "person_id": self.ids,
                "kind": pa.array(np.array(["customer", "prospect"])[kind], pa.string()),
                "created_at": timestamps(self.created),
                "segment": pa.array(np.array(P.SEGMENTS)[self.segment], pa.string()),
                "region": pa.array(np.array(P.REGIONS)[self.region], pa.string()),
                **{c: self.identities[c] for c in IDENTITY_COLUMNS},
            }
        )


def make_people(
    n_customers: int, start: int, end: int, months: int, rng: np.random.Generator
) -> People:
    n_pros = round(n_customers * P.PROSPECT_RATIO)
    n = n_customers + n_pros
    is_cust = np.arange(n) < n_customers
    segment = np.where(
        is_cust,
        rng.choice(len(P.SEGMENTS), n, p=P.SEGMENT_SHARE),
        rng.choice(len(P.SEGMENTS), n, p=P.PROSPECT_SEGMENT_SHARE),
    ).astype(np.int8)
    region = rng.choice(len(P.REGIONS), n, p=P.REGION_SHARE).astype(np.int8)
    mood = rng.normal(0.0, P.PERSON_MOOD_SD, n).astype(np.float32)

    # customers: existing before the window, or acquired during it (journey starts at t0)
    new_share = min(0.6, P.NEW_CUSTOMER_SHARE_PER_MONTH * months)
    is_new = is_cust & (rng.random(n) < new_share)
    latest = max(start + DAY, end - 3 * DAY)
    t0 = np.full(n, -1, dtype=np.int64)
    t0[is_new] = rng.integers(start, latest, int(is_new.sum()))
    # prospects: journeys that start from a month before the window until its end
    t0[~is_cust] = rng.integers(start - 30 * DAY, latest, n_pros)
    created = t0.copy()
    n_old = int((is_cust & ~is_new).sum())
    created[is_cust & ~is_new] = start - rng.integers(30 * DAY, 1500 * DAY, n_old)

    presence = np.stack(
        [
            rng.random(n) < np.where(is_cust, P.IDENTITY_PRESENCE[c][0], P.IDENTITY_PRESENCE[c][1])
            for c in IDENTITY_COLUMNS
        ],
        axis=1,
    )
    idx = np.arange(n, dtype=np.int64)
    email = _emails(idx, rng)
    phone = pc.binary_join_element_wise(
        "+1555",
        pc.utf8_lpad(
            pc.cast(pa.array((idx * 7919 + 1_234_567) % 10_000_000), pa.string()),
            width=7,
            padding="0",
        ),
        "",
    )
    device = hex_ids("dev-", _scramble48(idx), 12)
    crm = padded_ids("CRM", idx + 1_000_000, 8)
    email_idx = np.where(presence[:, 0], idx, -1)
    device_idx = np.where(presence[:, 2], idx, -1)

    merges = _plant_merges(n_customers, n_pros, t0, created, start, rng)
    for p_idx, c_idx, column in merges:  # the same person: same segment, region and mood
        segment[p_idx], region[p_idx], mood[p_idx] = segment[c_idx], region[c_idx], mood[c_idx]
        if column == "email":
            presence[p_idx, 0] = presence[c_idx, 0] = True
            email_idx[p_idx] = p_idx
            email_idx[c_idx] = p_idx
        else:
            presence[p_idx, 2] = presence[c_idx, 2] = True
            device_idx[p_idx] = p_idx
            device_idx[c_idx] = p_idx
    identities = {
        "email": take_strings(email, email_idx),
        "phone": take_strings(phone, np.where(presence[:, 1], idx, -1)),
        "device_id": take_strings(device, device_idx),
        "crm_id": take_strings(crm, np.where(presence[:, 3], idx, -1)),
    }
    width = max(6, len(str(n)))
    ids = pa.concat_arrays(
        [
            padded_ids("c-", np.arange(1, n_customers + 1), width),
            padded_ids("p-", np.arange(1, n_pros + 1), width),
        ]
    )
    return People(
        n_customers, n_pros, segment, region, created, t0, mood, presence, ids, identities, merges
    )


def _scramble48(idx: np.ndarray) -> np.ndarray:
    """A bijection on 48-bit integers (odd multipliers and xor-shifts), so ids stay unique."""
    mask = np.uint64((1 << 48) - 1)
    x = (idx.astype(np.uint64) * np.uint64(0x9E3779B97F4B) + np.uint64(0x5DEECE66D)) & mask
    x ^= x >> np.uint64(23)
    x = (x * np.uint64(0xBF58476D1CE5)) & mask
    return x ^ (x >> np.uint64(19))


def _emails(idx: np.ndarray, rng: np.random.Generator) -> pa.Array:
    first = pa.array(_FIRST).take(pa.array(rng.integers(0, len(_FIRST), len(idx))))
    last = pa.array(_LAST).take(pa.array(rng.integers(0, len(_LAST), len(idx))))
    domain = pa.array(_DOMAINS).take(pa.array(rng.integers(0, len(_DOMAINS), len(idx))))
    number = pc.cast(pa.array(idx + 1), pa.string())
    local = pc.binary_join_element_wise(first, ".", last, number, "")
    return pc.binary_join_element_wise(local, "@", domain, "")


def _plant_merges(
    n_customers: int,
    n_pros: int,
    t0: np.ndarray,
    created: np.ndarray,
    start: int,
    rng: np.random.Generator,
) -> list[tuple[int, int, str]]:
    """Pick prospects that later buy under a new customer record sharing an e-mail or device.

    The prospect's journey is moved to 1-60 days before the customer's first journey.
    """
    want = round(n_pros * P.MERGE_SHARE)
    candidates = np.flatnonzero(t0[:n_customers] >= start + 14 * DAY)
    k = min(want, len(candidates))
    if k == 0:
        return []
    customers = np.sort(rng.choice(candidates, k, replace=False))
    prospects = np.sort(rng.choice(np.arange(n_customers, n_customers + n_pros), k, replace=False))
    room = np.minimum(60 * DAY, t0[customers] - start)
    lead = (rng.uniform(0.2, 1.0, k) * room).astype(np.int64)
    t0[prospects] = t0[customers] - np.maximum(lead, DAY)
    created[prospects] = t0[prospects]
    column = np.where(rng.random(k) < 0.6, "email", "device_id")
    return [
        (int(p), int(c), str(col)) for p, c, col in zip(prospects, customers, column, strict=True)
    ]
