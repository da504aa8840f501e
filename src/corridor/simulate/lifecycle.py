"""Month-by-month life of customers after their purchase: use, billing, support, renewal,
repeat purchases, and churn driven by experienced gaps.

Churn (monthly, for customers onboarded before the month starts)::

    logit h = logit(CHURN_BASE_MONTHLY) + sum_k beta_k * g_k

where g_k is the customer's latest latent gap (experience - expectation, integers) at driver
touch point k, decaying by CHURN_GAP_DECAY per month without a new interaction there (0 before
the first). A churner gets a ``cancellation`` interaction with outcome ``cancel`` at a random
time in the month and nothing after it. With precursors (:mod:`corridor.simulate.precursors`)
a fired hazard is the decision to leave: the cancellation follows a notice period later, and
the customer is at risk, and shows it, in between.
"""

from __future__ import annotations

import numpy as np

from . import params as P
from .arrowutil import DAY
from .corridor_map import OUTCOME_INDEX, TP_INDEX
from .interactions import Batch
from .journeys import REPEAT, REPEAT_MIX, Rows, daytime, expand_mix
from .precursors import AtRisk

NEVER = np.iinfo(np.int64).max
MONTH = 30.44 * DAY
_LC_TPS = np.array([TP_INDEX[k] for k in P.LIFECYCLE_RATES], np.int16)
_LC_RATES = np.array(list(P.LIFECYCLE_RATES.values()))
_DRIVER_TPS = np.array([TP_INDEX[k] for k in P.CHURN_DRIVERS], np.int16)
_DRIVER_BETA = np.array(list(P.CHURN_DRIVERS.values()))
_CANCEL = OUTCOME_INDEX["cancel"]
CHURN_ALPHA = float(np.log(P.CHURN_BASE_MONTHLY / (1 - P.CHURN_BASE_MONTHLY)))


class Customers:
    """Lifecycle state of the ``n`` customers (person indices 0..n-1)."""

    def __init__(
        self,
        n: int,
        n_people: int,
        life_start: np.ndarray,
        segment: np.ndarray,
        rng: np.random.Generator,
        risk: AtRisk | None = None,
    ) -> None:
        self.n = n
        self.risk = risk  # None: churn is the cancellation itself, with no precursors
        self.life_start = life_start  # int64: first day of the post-purchase life
        self.segment = segment[:n]
        self.bill_offset = rng.integers(0, 28 * DAY, n)
        self.churn_time = np.full(n_people, NEVER, dtype=np.int64)  # prospects never churn
        self.gaps = np.zeros((n, len(_DRIVER_TPS)))

    def month(self, ms: int, me: int, rng: np.random.Generator) -> Rows:
        """Churn draws and the lifecycle rows of month [ms, me)."""
        n = self.n
        churn_time = self.churn_time[:n]
        eligible = (self.life_start < ms) & (churn_time == NEVER)
        hazard = 1.0 / (1.0 + np.exp(-(CHURN_ALPHA + self.gaps @ _DRIVER_BETA)))
        u = rng.random(n)
        churns = eligible & (u < hazard)
        when = ms + (rng.random(n) * (me - ms)).astype(np.int64)
        leaving = np.flatnonzero(churns)
        if self.risk is None:
            churn_time[leaving] = when[leaving]
            parts = []
        else:  # a decision to leave: the cancellation follows the notice period
            churn_time[leaving], precursors = self.risk.decide(leaving, when[leaving])
            parts = [precursors]
        saved = eligible & ~churns & (rng.random(n) < P.RETENTION_CONTACT_FACTOR * hazard)
        parts[:0] = [
            _rows(leaving, churn_time[leaving], "cancellation", "cancel"),
            _rows(
                np.flatnonzero(saved),
                ms + (rng.random(int(saved.sum())) * (me - ms)).astype(np.int64),
                "cancellation",
                "retained",
            ),
        ]

        active = np.flatnonzero((self.life_start < me) & (churn_time > ms))
        ws = np.maximum(ms, self.life_start[active])
        we = np.minimum(me, churn_time[active])
        length = (we - ws).astype(np.float64)
        counts = rng.poisson(_LC_RATES[None, :] * (length / MONTH)[:, None])
        cell = np.repeat(np.arange(counts.size), counts.ravel())
        who = cell // len(_LC_TPS)
        times = ws[who] + (rng.random(len(cell)) * length[who]).astype(np.int64)
        shaped = daytime(times, rng)
        times = np.where((shaped >= ws[who]) & (shaped < we[who]), shaped, times)
        usage = Rows(
            active[who].astype(np.int32),
            times,
            _LC_TPS[cell % len(_LC_TPS)],
            np.full(len(cell), -1, np.int8),
        )
        parts.append(usage if self.risk is None else self.risk.thin_usage(usage, churn_time))

        bill = ms + self.bill_offset[active]
        billed = (bill >= ws) & (bill < we)
        parts.append(_rows(active[billed], bill[billed], "invoice", None))
        pays = billed & (rng.random(len(active)) < P.PAYMENT_SHARE)
        paid_at = bill + (rng.uniform(1, 10, len(active)) * DAY).astype(np.int64)
        parts.append(_rows(active[pays], paid_at[pays], "payment", None))

        rate = np.array(P.REPEAT_PURCHASE_PER_MONTH)[self.segment[active]] * length / MONTH
        buys = rng.random(len(active)) < rate
        start = ws[buys] + (rng.random(int(buys.sum())) * length[buys]).astype(np.int64)
        choice = np.searchsorted(np.cumsum(REPEAT_MIX), rng.random(len(start)), side="right")
        buyer = active[buys]
        if self.risk is not None:  # an at-risk customer starts no new purchase
            keep = ~self.risk.at_risk(buyer, start, churn_time)
            buyer, start, choice = buyer[keep], start[keep], choice[keep]
        rows, _ = expand_mix(REPEAT, np.minimum(choice, len(REPEAT) - 1), buyer, start, rng)
        parts.append(rows)
        return Rows.concat(parts)

    def warm_up(self, t_start: int) -> Rows:
        """With precursors: existing customers already in their notice period at ``t_start``
        (:meth:`AtRisk.warm_up`); their precursor and cancellation rows."""
        if self.risk is None:
            return Rows.empty()
        existing = np.flatnonzero(self.life_start <= t_start)
        who, cancel, rows = self.risk.warm_up(existing, t_start, P.CHURN_BASE_MONTHLY)
        self.churn_time[who] = cancel
        return Rows.concat([rows, _rows(who, cancel, "cancellation", "cancel")])

    def projected_hazard(self, starts: np.ndarray) -> np.ndarray:
        """(month, customer): the churn hazard in the months beginning at ``starts`` if no new
        interaction came at the driver touch points (the gaps decay), 0 before the customer's
        life starts."""
        out = np.zeros((len(starts), self.n))
        for k, ms in enumerate(starts):
            eta = CHURN_ALPHA + (self.gaps * P.CHURN_GAP_DECAY**k) @ _DRIVER_BETA
            out[k] = np.where(self.life_start < ms, 1.0 / (1.0 + np.exp(-eta)), 0.0)
        return out

    def drop_after_churn(self, rows: Rows) -> Rows:
        """Remove rows of churned customers that fall after their cancellation."""
        keep = (rows.time < self.churn_time[rows.person]) | (rows.outcome == _CANCEL)
        return rows.select(np.flatnonzero(keep))

    def observe(self, person: np.ndarray, tp: np.ndarray, gap: np.ndarray) -> None:
        """End of month: decay the driver gaps, then set those seen this month to the mean
        latent gap of the month's interactions there (rows of any touch point may be passed)."""
        self.gaps *= P.CHURN_GAP_DECAY
        cust = person < self.n
        for k, code in enumerate(_DRIVER_TPS):
            sel = cust & (tp == code)
            if not sel.any():
                continue
            who = person[sel]
            total = np.bincount(who, weights=gap[sel], minlength=self.n)
            count = np.bincount(who, minlength=self.n)
            seen = count > 0
            self.gaps[seen, k] = total[seen] / count[seen]

    @staticmethod
    def driver_rows(b: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The (person, touch point, latent gap) of a batch's rows at churn-driver touch points."""
        sel = np.isin(b.tp, _DRIVER_TPS)
        gap = b.experience[sel].astype(np.float64) - b.expectation[sel].astype(np.float64)
        return b.person[sel], b.tp[sel], gap

    def churned(self, end: int) -> int:
        """Customers who cancelled before ``end`` (later cancellations are never written)."""
        return int((self.churn_time[: self.n] < end).sum())


def _rows(person: np.ndarray, time: np.ndarray, tp: str, outcome: str | None) -> Rows:
    n = len(person)
    code = OUTCOME_INDEX[outcome] if outcome else -1
    return Rows(
        person.astype(np.int32),
        time.astype(np.int64),
        np.full(n, TP_INDEX[tp], np.int16),
        np.full(n, code, np.int8),
    )
