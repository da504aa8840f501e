"""Interaction attributes: channel, partner, agent, latent expectation/experience, outcome,
duration, value and identity-only rows — all vectorised over a batch of :class:`Rows`.

Latent model (integers 0..10 after clipping and rounding)::

    expectation = tp.expectation + segment effect + drift(tp, t) + N(0, 1.1)
    experience  = tp.quality + partner offset + channel effect + person mood
                  + ripple(tp, region, t) + N(0, 1.4)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from . import params as P
from .arrowutil import label_array, masked_floats, padded_ids, take_strings, timestamps
from .corridor_map import ASSISTED_CHANNELS, CHANNELS, OUTCOME_INDEX, OUTCOMES, TOUCHPOINTS
from .events import Events
from .journeys import Rows
from .partners import PARTNER_TYPES, Partners
from .people import IDENTITY_COLUMNS, People

_PURCHASE_MULT = {"checkout": 1.0, "store_purchase": 0.9, "dealer_purchase": 2.5}
_VALUE_KINDS = ("purchase", "bill", "refund", "renewal", "financing")


@dataclass
class Batch:
    """One chunk of finished interactions (sorted by time) with their latent scores."""

    person: np.ndarray  # int32
    time: np.ndarray  # int64 seconds
    tp: np.ndarray  # int16
    channel: np.ndarray  # int8
    partner: np.ndarray  # int16, -1 none
    agent: np.ndarray  # int64, -1 none
    outcome: np.ndarray  # int8, -1 none
    value: np.ndarray  # float64, nan none
    duration: np.ndarray  # float64, nan none
    expectation: np.ndarray  # int8 latent
    experience: np.ndarray  # int8 latent
    id_only: np.ndarray  # int8 identity column index carried instead of person_id, -1 none
    first_id: int = 0  # number of the first interaction (ids are sequential)

    def __len__(self) -> int:
        return len(self.person)


class World:
    """Everything needed to turn raw rows into interactions, with per-touch-point lookups."""

    def __init__(
        self, people: People, partners: Partners, events: Events, rng: np.random.Generator
    ) -> None:
        self.people, self.partners, self.events = people, partners, events
        n_tp = len(TOUCHPOINTS)
        chan = np.array([[t.channels.get(c, 0.0) for c in CHANNELS] for t in TOUCHPOINTS])
        self.chan_cum = np.cumsum(chan / chan.sum(1, keepdims=True), axis=1)
        mix = np.array([[t.partners.get(p, 0.0) for p in PARTNER_TYPES] for t in TOUCHPOINTS])
        self.partner_cum = np.cumsum(mix / np.maximum(mix.sum(1, keepdims=True), 1e-12), axis=1)
        self.outsourced = np.array([t.outsourced for t in TOUCHPOINTS])
        self.expect = np.array([t.expectation for t in TOUCHPOINTS])
        self.quality = np.array([t.quality for t in TOUCHPOINTS])
        self.dur_med = np.array([t.duration[0] if t.duration else np.nan for t in TOUCHPOINTS])
        self.dur_sd = np.array([t.duration[1] if t.duration else 0.0 for t in TOUCHPOINTS])
        out = np.zeros((n_tp, len(OUTCOMES)))
        self.good_bad = np.full((n_tp, 2), -1, dtype=np.int8)
        for i, t in enumerate(TOUCHPOINTS):
            for k, w in t.outcomes.items():
                out[i, OUTCOME_INDEX[k]] = w
            if t.by_experience:
                self.good_bad[i] = [OUTCOME_INDEX[k] for k in t.by_experience]
        self.has_mix = out.sum(1) > 0
        self.outcome_cum = np.cumsum(out / np.maximum(out.sum(1, keepdims=True), 1e-12), axis=1)
        self.value_kind = np.array(
            [_VALUE_KINDS.index(t.value) if t.value else -1 for t in TOUCHPOINTS], np.int8
        )
        self.purchase_mult = np.array([_PURCHASE_MULT.get(t.key, 1.0) for t in TOUCHPOINTS])
        self.channel_eff = np.array([P.CHANNEL_EXPERIENCE[c] for c in CHANNELS])
        self.assisted = np.array([c in ASSISTED_CHANNELS for c in CHANNELS])
        self.channel_identity = np.array(
            [IDENTITY_COLUMNS.index(P.CHANNEL_IDENTITY[c]) for c in CHANNELS], np.int8
        )
        self.partner_offset = np.append(partners.offset, 0.0)  # index -1 -> no partner
        self.segment_expect = np.array(P.SEGMENT_EXPECTATION)
        seg = people.segment
        self.monthly_bill = np.round(
            np.array(P.SEGMENT_MONTHLY_BILL)[seg] * rng.lognormal(0.0, 0.35, people.n), 2
        )
        self.purchase_median = np.array(P.SEGMENT_PURCHASE_MEDIAN)[seg]

    def enrich(self, rows: Rows, rng: np.random.Generator) -> Batch:
        n = len(rows)
        person, tp, t = rows.person, rows.tp, rows.time
        region = self.people.region[person]
        channel = (rng.random(n)[:, None] >= self.chan_cum[tp]).sum(1)
        channel = np.minimum(channel, len(CHANNELS) - 1).astype(np.int8)
        is_partner_channel = channel == CHANNELS.index("partner")
        ptype = (rng.random(n)[:, None] >= self.partner_cum[tp]).sum(1)
        ptype = np.minimum(ptype, len(PARTNER_TYPES) - 1)
        agency = (~is_partner_channel) & (rng.random(n) < self.outsourced[tp])
        ptype = np.where(
            is_partner_channel, ptype, np.where(agency, PARTNER_TYPES.index("agency"), -1)
        ).astype(np.int8)
        partner = self.partners.assign(ptype, region, rng)
        agent = self.partners.agents(partner, self.assisted[channel], rng)

        expect = (
            self.expect[tp]
            + self.segment_expect[self.people.segment[person]]
            + rng.normal(0.0, P.EXPECTATION_NOISE_SD, n)
        )
        drift = self.events.drift
        expect += np.where((tp == drift.tp) & (t >= drift.at), drift.size, 0.0)
        exper = (
            self.quality[tp]
            + self.partner_offset[partner]
            + self.channel_eff[channel]
            + self.people.mood[person]
            + rng.normal(0.0, P.EXPERIENCE_NOISE_SD, n)
        )
        duration = np.exp(np.log(self.dur_med[tp]) + self.dur_sd[tp] * rng.standard_normal(n))
        value_factor = np.ones(n)
        for r in self.events.ripples:
            hit = np.isin(tp, r.tps) & (t >= r.start) & (t < r.end)
            if r.region >= 0:
                hit &= region == r.region
            exper += np.where(hit, r.effect, 0.0)
            duration = np.where(hit, duration * r.duration_factor, duration)
            value_factor = np.where(hit, r.value_factor, value_factor)
        expectation = np.clip(np.rint(expect), 0, 10).astype(np.int8)
        experience = np.clip(np.rint(exper), 0, 10).astype(np.int8)

        outcome = self._outcomes(rows, experience, rng)
        value = self._values(rows, outcome, value_factor, rng)
        duration = np.round(duration, 1)
        col = self.channel_identity[channel]
        id_only = (rng.random(n) < P.IDENTITY_ONLY_SHARE) & self.people.has_identity[person, col]
        return Batch(
            person,
            t,
            tp,
            channel,
            partner,
            agent,
            outcome,
            value,
            duration,
            expectation,
            experience,
            np.where(id_only, col, -1).astype(np.int8),
        )

    def _outcomes(self, rows: Rows, experience: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        tp = rows.tp
        n = len(tp)
        mixed = (rng.random(n)[:, None] >= self.outcome_cum[tp]).sum(1)
        mixed = np.where(self.has_mix[tp], np.minimum(mixed, len(OUTCOMES) - 1), -1)
        p_good = 1.0 / (1.0 + np.exp(-1.2 * (experience - 5.0)))
        good = rng.random(n) < p_good
        by_exp = np.where(good, self.good_bad[tp, 0], self.good_bad[tp, 1])
        out = np.where(self.good_bad[tp, 0] >= 0, by_exp, mixed)
        return np.where(rows.outcome >= 0, rows.outcome, out).astype(np.int8)

    def _values(
        self, rows: Rows, outcome: np.ndarray, factor: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        kind = self.value_kind[rows.tp]
        n = len(kind)
        person = rows.person
        noise = rng.lognormal(0.0, 0.6, n)
        bill = self.monthly_bill[person] * factor
        purchase = self.purchase_median[person] * self.purchase_mult[rows.tp] * noise
        value = np.full(n, np.nan)
        value = np.where((kind == 0) & (outcome == OUTCOME_INDEX["purchase"]), purchase, value)
        value = np.where(kind == 1, bill, value)
        value = np.where((kind == 2) & (outcome == OUTCOME_INDEX["refund"]), 80.0 * noise, value)
        value = np.where(
            (kind == 3) & (outcome == OUTCOME_INDEX["accepted"]),
            12.0 * self.monthly_bill[person],
            value,
        )
        value = np.where(
            (kind == 4) & (outcome == OUTCOME_INDEX["approved"]), 2.0 * purchase, value
        )
        return np.round(value, 2)

    def table(self, b: Batch) -> pa.Table:
        """The batch as the contract's interactions table."""
        n = len(b)
        people = self.people
        carried = b.id_only >= 0
        person_idx = np.where(carried, -1, b.person)
        identity = {
            c: take_strings(people.identities[c], np.where(b.id_only == k, b.person, -1))
            for k, c in enumerate(IDENTITY_COLUMNS)
        }
        return pa.table(
            {
                "interaction_id": interaction_ids(b.first_id, n),
                "person_id": take_strings(people.ids, person_idx),
                **identity,
                "occurred_at": timestamps(b.time),
                "touchpoint": label_array(tuple(t.key for t in TOUCHPOINTS), b.tp),
                "channel": label_array(CHANNELS, b.channel),
                "partner_id": label_array(self.partners.ids, b.partner),
                "agent_id": take_strings(self.partners.agent_ids, b.agent),
                "outcome": label_array(OUTCOMES, b.outcome),
                "value": masked_floats(b.value),
                "duration_minutes": masked_floats(b.duration),
            }
        )


def interaction_ids(first_id: int, n: int) -> pa.Array:
    """Sequential interaction ids ``ix-000000001`` … for rows ``first_id+1 .. first_id+n``."""
    return padded_ids("ix-", np.arange(first_id + 1, first_id + n + 1), 9)
