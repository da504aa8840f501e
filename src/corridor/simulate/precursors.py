"""Churn precursors: the weeks between a customer's decision to leave and the cancellation, and
what the customer does in them; and the ceiling of churn prediction on the simulated company.

**At risk.** When the monthly churn hazard (:mod:`corridor.simulate.lifecycle`, unchanged)
fires, the customer *decides* to leave at that moment and cancels a notice period later
(uniform in ``NOTICE_WEEKS``, 10-13 weeks); in between the customer is *at risk*, and shows it:

- ``PRECURSOR_TRIGGER_SHARE`` of decisions begin with a support contact that ends
  ``unresolved``, and the same contact again 0.5-4 days later, unresolved again (at one of
  ``PRECURSOR_TOUCHPOINTS``: never a churn-driver touch point, so the latest gaps that drove the
  decision stay the latest ones the store sees there);
- ``PRECURSOR_RETENTION_SHARE`` of them ask to cancel within a week and are talked round for
  now: a ``cancellation`` contact with outcome ``retained``;
- further support contacts, ``PRECURSOR_CONTACTS_PER_MONTH`` a month, ``unresolved`` with
  probability ``PRECURSOR_UNRESOLVED_SHARE`` (otherwise decided by the experience as usual);
- usage falls: only ``PRECURSOR_USAGE_KEPT`` of their app use, portal and loyalty interactions
  are kept, and they start no new repeat purchase;
- their support contacts (``PRECURSOR_SLOW_TOUCHPOINTS``) take ``PRECURSOR_DURATION_FACTOR``
  times longer, so more of them break the corridor map's duration promises.

Experiences and expectations of every interaction follow the usual latent model, so gaps and
scores mean what they meant before. Existing customers may already be in their notice period
when the window opens: each decided, with the base hazard, in the longest notice period before
the start, and cancels in the window if the notice ends there.

Every draw here comes from the simulation's own random stream for precursors, so the people,
partners, events, employee predictions, the map and the share-of-wallet model of a seed do not
change; interactions and feedback do (customers leave later, and do more first).

Why a notice this long: a churn in the next 3 months is foreseeable from behaviour only if the
customer has decided by now. With notices of 10-13 weeks, about 88 % of a horizon's churners
are at risk at its start; the rest are foretold only by their latent gaps, which the store sees
through the few rated interactions. Churners now rate support chats, e-mails and cancellation
contacts far more often, so a Cox model finds those gaps associated with churn too (the person
mood lowers every gap of a person, and drives churn through the driver gaps).

**Ceiling.** At the cut-off one horizon (``CEILING_HORIZON_MONTHS`` of ``CEILING_MONTH_DAYS``
days, the product's churn risk horizon) before the end, every customer with an interaction
before it and not yet cancelled is scored by the simulator's own probability of cancelling
within the horizon: 1 or 0 for an at-risk customer (the notice ends inside it or not); for the
others ``sum_k S_k h_k F_k`` over the months k of the horizon, where h_k is the month's hazard
from the driver gaps at the cut-off decayed ``CHURN_GAP_DECAY`` a month (as if no new
interaction came there), S_k the probability of no decision before month k, and F_k the
probability that a decision in month k cancels before the horizon ends. ``auc`` is the area
under the ROC curve of that score against who cancelled within the horizon; ``auc_gaps_only``
scores everyone by the gap part alone (the hidden state without the at-risk state).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from . import params as P
from .arrowutil import DAY
from .corridor_map import OUTCOME_INDEX, TP_INDEX
from .events import iso
from .interactions import Batch
from .journeys import Rows, daytime

_NEVER = np.iinfo(np.int64).max
_MONTH = 30.44 * DAY
_WEEK = 7 * DAY
_TPS = np.array([TP_INDEX[k] for k in P.PRECURSOR_TOUCHPOINTS], np.int16)
_TP_CUM = np.cumsum(list(P.PRECURSOR_TOUCHPOINTS.values())) / sum(P.PRECURSOR_TOUCHPOINTS.values())
_USAGE = np.array([TP_INDEX[k] for k in P.PRECURSOR_USAGE_TOUCHPOINTS], np.int16)
_SLOW = np.array([TP_INDEX[k] for k in P.PRECURSOR_SLOW_TOUCHPOINTS], np.int16)
_UNRESOLVED = OUTCOME_INDEX["unresolved"]
_RETAINED = OUTCOME_INDEX["retained"]
_CANCELLATION = TP_INDEX["cancellation"]
_GRID = 1000  # decision times per month when integrating F_k


def horizon_seconds() -> int:
    return int(P.CEILING_HORIZON_MONTHS * P.CEILING_MONTH_DAYS * DAY)


def horizon_cut(months: int) -> int | None:
    """The month index of the ceiling's cut-off: whole months that leave one horizon to the
    end; None when the window is too short for a history before it."""
    c = months - int(np.ceil(P.CEILING_HORIZON_MONTHS))
    return c if c >= 1 else None


class AtRisk:
    """Decisions to leave, notice periods and precursors of the customers among ``n_people``
    people (prospects are never at risk)."""

    def __init__(self, n_people: int, rng: np.random.Generator) -> None:
        self.rng = rng
        self.decided = np.full(n_people, _NEVER, np.int64)  # when the customer decided
        self.seen = np.zeros(n_people, bool)  # has an interaction so far
        self._projection: dict[str, Any] | None = None

    # -- the at-risk state ---------------------------------------------------------------------
    def at_risk(self, person: np.ndarray, time: np.ndarray, churn_time: np.ndarray) -> np.ndarray:
        """Whether each (person, time) falls between the decision and the cancellation."""
        return (self.decided[person] <= time) & (time < churn_time[person])

    def decide(self, who: np.ndarray, when: np.ndarray) -> tuple[np.ndarray, Rows]:
        """``who`` decide to leave at ``when``: their cancellation times and precursor rows."""
        lo, hi = P.NOTICE_WEEKS
        cancel = when + (self.rng.uniform(lo, hi, len(who)) * _WEEK).astype(np.int64)
        return cancel, self._start(who, when, cancel)

    def warm_up(
        self, existing: np.ndarray, t_start: int, base_hazard: float
    ) -> tuple[np.ndarray, np.ndarray, Rows]:
        """Existing customers already in their notice period at ``t_start``: (who, cancellation
        time, precursor rows from ``t_start`` on)."""
        lo, hi = P.NOTICE_WEEKS
        rng = self.rng
        span = hi * _WEEK
        chosen = existing[rng.random(len(existing)) < base_hazard * span / _MONTH]
        when = t_start - 1 - (rng.random(len(chosen)) * span).astype(np.int64)
        cancel = when + (rng.uniform(lo, hi, len(chosen)) * _WEEK).astype(np.int64)
        keep = cancel > t_start
        who, when, cancel = chosen[keep], when[keep], cancel[keep]
        rows = self._start(who, when, cancel)
        return who, cancel, rows.select(np.flatnonzero(rows.time >= t_start))

    def _start(self, who: np.ndarray, when: np.ndarray, cancel: np.ndarray) -> Rows:
        self.decided[who] = when
        rng = self.rng
        k = len(who)
        trigger = np.flatnonzero(rng.random(k) < P.PRECURSOR_TRIGGER_SHARE)
        first = self._contacts(who[trigger], when[trigger], np.ones(len(trigger), bool))
        again = when[trigger] + (rng.uniform(0.5, 4.0, len(trigger)) * DAY).astype(np.int64)
        again = np.minimum(again, cancel[trigger] - 1)
        retain = rng.random(k) < P.PRECURSOR_RETENTION_SHARE
        asked = when + (rng.random(k) * np.minimum(cancel - when, 7 * DAY)).astype(np.int64)
        count = rng.poisson(P.PRECURSOR_CONTACTS_PER_MONTH * (cancel - when) / _MONTH)
        i = np.repeat(np.arange(k), count)
        at = when[i] + (rng.random(len(i)) * (cancel - when)[i]).astype(np.int64)
        shaped = daytime(at, rng)
        at = np.where((shaped >= when[i]) & (shaped < cancel[i]), shaped, at)
        unresolved = rng.random(len(i)) < P.PRECURSOR_UNRESOLVED_SHARE
        return Rows.concat(
            [
                first,
                Rows(first.person, again, first.tp, first.outcome),  # the same problem again
                Rows(
                    who[retain].astype(np.int32),
                    asked[retain],
                    np.full(int(retain.sum()), _CANCELLATION, np.int16),
                    np.full(int(retain.sum()), _RETAINED, np.int8),
                ),
                self._contacts(who[i], at, unresolved),
            ]
        )

    def _contacts(self, who: np.ndarray, at: np.ndarray, unresolved: np.ndarray) -> Rows:
        pick = np.searchsorted(_TP_CUM, self.rng.random(len(who)), side="right")
        return Rows(
            who.astype(np.int32),
            at.astype(np.int64),
            _TPS[np.minimum(pick, len(_TPS) - 1)],
            np.where(unresolved, _UNRESOLVED, -1).astype(np.int8),
        )

    def thin_usage(self, rows: Rows, churn_time: np.ndarray) -> Rows:
        """Drop at-risk customers' usage rows, keeping ``PRECURSOR_USAGE_KEPT`` of them."""
        idx = np.flatnonzero(np.isin(rows.tp, _USAGE))
        idx = idx[self.at_risk(rows.person[idx], rows.time[idx], churn_time)]
        drop = idx[self.rng.random(len(idx)) >= P.PRECURSOR_USAGE_KEPT]
        keep = np.ones(len(rows), bool)
        keep[drop] = False
        return rows.select(np.flatnonzero(keep))

    def observe(self, b: Batch, churn_time: np.ndarray) -> None:
        """A finished batch: stretch at-risk customers' support contacts; note who was seen."""
        self.seen[b.person] = True
        slow = np.isin(b.tp, _SLOW)
        slow[slow] = self.at_risk(b.person[slow], b.time[slow], churn_time)
        b.duration[slow] = np.round(b.duration[slow] * P.PRECURSOR_DURATION_FACTOR, 1)

    # -- the ceiling ---------------------------------------------------------------------------
    def project(
        self, hazards: np.ndarray, starts: np.ndarray, churn_time: np.ndarray, end: int
    ) -> None:
        """Score the customers at the cut-off ``starts[0]``: ``hazards[k]`` is each customer's
        hazard in the month beginning at ``starts[k]`` (the last start ends that month)."""
        cut = int(starts[0])
        until = min(cut + horizon_seconds(), end)
        n = hazards.shape[1]
        lo, hi = (w * _WEEK for w in P.NOTICE_WEEKS)
        survive = np.ones(n)
        p_gap = np.zeros(n)
        for k in range(len(starts) - 1):
            ms, me = int(starts[k]), int(starts[k + 1])
            if ms >= until:
                break
            s = ms + (np.arange(_GRID) + 0.5) / _GRID * (me - ms)
            fits = float(np.clip((until - s - lo) / (hi - lo), 0.0, 1.0).mean())
            p_gap += survive * hazards[k] * fits
            survive *= 1.0 - hazards[k]
        ct = churn_time[:n]
        deciding = (self.decided[:n] < cut) & (ct > cut)  # at risk at the cut-off
        alive = np.flatnonzero(self.seen[:n] & (ct > cut))
        score = np.where(deciding, (ct < until).astype(float), p_gap)
        self._projection = {
            "cut": cut,
            "until": until,
            "who": alive,
            "score": score[alive],
            "gaps_only": p_gap[alive],
            "at_risk": int(deciding[alive].sum()),
        }

    def ceiling(self, churn_time: np.ndarray) -> dict[str, Any] | None:
        """The ceiling AUC (module docstring), once the run is over; None without a cut-off."""
        pr = self._projection
        if pr is None:
            return None
        label = churn_time[pr["who"]] < pr["until"]
        return {
            "cutoff": iso(pr["cut"]),
            "horizon_end": iso(pr["until"]),
            "horizon_months": P.CEILING_HORIZON_MONTHS,
            "month_days": P.CEILING_MONTH_DAYS,
            "customers": len(label),
            "churners": int(label.sum()),
            "at_risk_at_cutoff": pr["at_risk"],
            "expected_churners": round(float(pr["score"].sum()), 2),
            "auc": _round(roc_auc(pr["score"], label)),
            "auc_gaps_only": _round(roc_auc(pr["gaps_only"], label)),
            "score": "at risk at the cut-off: 1 if the notice ends within the horizon, else 0; "
            "others: sum over the horizon's months k of S_k h_k F_k (h_k: hazard from the "
            "driver gaps at the cut-off decayed per month; S_k: no decision before month k; "
            "F_k: a decision in month k cancels within the horizon)",
            "population": "customers with an interaction before the cut-off and no cancellation "
            "by then",
        }

    def truth(self, churn_time: np.ndarray) -> dict[str, Any]:
        return {
            "model": "a fired hazard is a decision to leave; the cancellation follows a notice "
            "period later; in between the customer is at risk and shows it",
            "notice_weeks": list(P.NOTICE_WEEKS),
            "trigger_unresolved_contact_share": P.PRECURSOR_TRIGGER_SHARE,
            "retention_contact_share": P.PRECURSOR_RETENTION_SHARE,
            "support_contacts_per_month": P.PRECURSOR_CONTACTS_PER_MONTH,
            "unresolved_share": P.PRECURSOR_UNRESOLVED_SHARE,
            "contact_touchpoints": P.PRECURSOR_TOUCHPOINTS,
            "usage_touchpoints": list(P.PRECURSOR_USAGE_TOUCHPOINTS),
            "usage_kept": P.PRECURSOR_USAGE_KEPT,
            "repeat_purchases": "none started while at risk",
            "slow_touchpoints": list(P.PRECURSOR_SLOW_TOUCHPOINTS),
            "duration_factor": P.PRECURSOR_DURATION_FACTOR,
            "ceiling": self.ceiling(churn_time),
        }


def roc_auc(score: np.ndarray, label: np.ndarray) -> float | None:
    """Mann–Whitney area under the ROC curve (ties count one half); None without both
    classes."""
    y = np.asarray(label, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return None
    r = stats.rankdata(score)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
