"""Journey templates and their vectorised expansion into interaction rows.

A journey is a sequence of steps; each step happens with a probability, picks one touch point
from a small mix and follows the previous step after a random delay, so stages come in order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrowutil import DAY
from .corridor_map import OUTCOME_INDEX, TP_INDEX


@dataclass
class Rows:
    """Raw interaction rows before attributes: who, when, where, and a forced outcome."""

    person: np.ndarray  # int32
    time: np.ndarray  # int64 seconds
    tp: np.ndarray  # int16 touch point index
    outcome: np.ndarray  # int8 forced outcome index, -1 = decided by the touch point

    def __len__(self) -> int:
        return len(self.person)

    @staticmethod
    def empty() -> Rows:
        return Rows(
            np.empty(0, np.int32),
            np.empty(0, np.int64),
            np.empty(0, np.int16),
            np.empty(0, np.int8),
        )

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        parts = [p for p in parts if len(p)] or [Rows.empty()]
        return Rows(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("person", "time", "tp", "outcome")
            )
        )

    def select(self, index: np.ndarray) -> Rows:
        return Rows(self.person[index], self.time[index], self.tp[index], self.outcome[index])

    def sorted(self) -> Rows:
        return self.select(np.lexsort((self.tp, self.person, self.time)))


@dataclass(frozen=True)
class Step:
    choices: dict[str, float]  # touch point -> weight
    prob: float = 1.0
    delay_days: tuple[float, float] = (0.0, 1.0)
    outcome: str | None = None


_AWARE = {"ad_click": 0.6, "social_post": 0.4}
ONLINE: tuple[Step, ...] = (
    Step(_AWARE, 0.7, (0, 0)),
    Step({"product_page": 1}, 0.95, (0, 3)),
    Step({"comparison_tool": 1}, 0.5, (0, 2)),
    Step({"product_page": 1}, 0.4, (0, 4)),
    Step({"sales_call": 1}, 0.15, (0, 3)),
    Step({"checkout": 1}, 1.0, (0, 5), "purchase"),
    Step({"order_confirmation": 1}, 1.0, (0.0005, 0.01)),
    Step({"shipping_notice": 1}, 0.95, (0.3, 1.5)),
    Step({"home_delivery": 1}, 1.0, (1, 3)),
    Step({"installation": 1}, 0.3, (0.5, 3)),
    Step({"first_use": 1}, 0.9, (0, 2)),
    Step({"app_onboarding": 1}, 0.6, (0, 3)),
)
STORE: tuple[Step, ...] = (
    Step({"store_visit": 0.6, "ad_click": 0.4}, 0.7, (0, 0)),
    Step({"product_page": 1}, 0.6, (0, 4)),
    Step({"product_demo": 1}, 0.4, (0, 5)),
    Step({"store_purchase": 1}, 1.0, (0, 5), "purchase"),
    Step({"store_pickup": 0.5, "home_delivery": 0.5}, 1.0, (0.05, 3)),
    Step({"installation": 1}, 0.2, (0.5, 3)),
    Step({"first_use": 1}, 0.9, (0, 2)),
    Step({"app_onboarding": 1}, 0.5, (0, 3)),
)
DEALER: tuple[Step, ...] = (
    Step({"ad_click": 0.5, "store_visit": 0.5}, 0.6, (0, 0)),
    Step({"product_page": 1}, 0.7, (0, 4)),
    Step({"quote_request": 1}, 0.7, (0, 5)),
    Step({"sales_call": 1}, 0.4, (0, 5)),
    Step({"product_demo": 1}, 0.5, (0, 7)),
    Step({"financing_application": 1}, 0.4, (0, 3)),
    Step({"dealer_purchase": 1}, 1.0, (0, 7), "purchase"),
    Step({"order_confirmation": 1}, 0.8, (0.0005, 0.05)),
    Step({"home_delivery": 1}, 0.6, (2, 10)),
    Step({"installation": 1}, 0.6, (0.5, 5)),
    Step({"first_use": 1}, 0.9, (0, 2)),
    Step({"app_onboarding": 1}, 0.5, (0, 3)),
)
ACQUISITION: tuple[tuple[Step, ...], ...] = (ONLINE, STORE, DEALER)

REPEAT_ONLINE: tuple[Step, ...] = (
    Step({"product_page": 1}, 0.7, (0, 0)),
    Step({"checkout": 1}, 1.0, (0, 2), "purchase"),
    Step({"order_confirmation": 1}, 1.0, (0.0005, 0.01)),
    Step({"shipping_notice": 1}, 0.95, (0.3, 1.5)),
    Step({"home_delivery": 1}, 1.0, (1, 3)),
)
REPEAT_STORE: tuple[Step, ...] = (
    Step({"store_visit": 1}, 0.5, (0, 0)),
    Step({"store_purchase": 1}, 1.0, (0, 1), "purchase"),
    Step({"store_pickup": 0.5, "home_delivery": 0.5}, 1.0, (0.05, 3)),
)
REPEAT: tuple[tuple[Step, ...], ...] = (REPEAT_ONLINE, REPEAT_STORE)
REPEAT_MIX: tuple[float, ...] = (0.7, 0.3)

PROSPECT: tuple[Step, ...] = (
    Step({"ad_click": 0.5, "social_post": 0.3, "store_visit": 0.2}, 0.9, (0, 0)),
    Step({"product_page": 1}, 0.7, (0, 7)),
    Step({"comparison_tool": 1}, 0.35, (0, 5)),
    Step({"product_page": 1}, 0.3, (0, 10)),
    Step({"sales_call": 1}, 0.12, (0, 5)),
    Step({"quote_request": 1}, 0.1, (0, 5)),
    Step({"product_demo": 1}, 0.06, (0, 7)),
    Step({"checkout": 1}, 0.08, (0, 5), "abandon"),
)


# relative activity by hour of day (UTC), used to place interactions at believable times
_HOURS_0_11 = (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4, 5, 5.5, 5.5)
_HOURS_12_23 = (6, 5.5, 5.2, 5, 5, 5.2, 5.5, 6, 5.5, 4.5, 3, 1.8)
HOURLY = np.array(_HOURS_0_11 + _HOURS_12_23)
_HOURLY_CUM = np.cumsum(HOURLY) / HOURLY.sum()


def daytime(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Move each time to a believable hour of the same day (by :data:`HOURLY`)."""
    hour = np.minimum(np.searchsorted(_HOURLY_CUM, rng.random(len(t)), side="right"), 23)
    return (t // DAY) * DAY + hour * 3600 + rng.integers(0, 3600, len(t))


def expand(
    steps: tuple[Step, ...], person: np.ndarray, t0: np.ndarray, rng: np.random.Generator
) -> tuple[Rows, np.ndarray]:
    """Rows of ``steps`` for each person starting at ``t0``; also when each journey ends (the
    time of its last step)."""
    n = len(person)
    cur = t0.astype(np.int64).copy()
    parts: list[Rows] = []
    for step in steps:
        took = rng.random(n) < step.prob
        lo, hi = step.delay_days
        when = cur + 60 + (rng.uniform(lo, hi, n) * DAY).astype(np.int64)
        if hi >= 0.5:  # steps a day or more apart happen at a believable hour
            when = np.maximum(daytime(when, rng), cur + 60)
        keys = list(step.choices)
        if len(keys) == 1:
            tps = np.full(n, TP_INDEX[keys[0]], dtype=np.int16)
        else:
            w = np.array([step.choices[k] for k in keys])
            pick = np.searchsorted(np.cumsum(w) / w.sum(), rng.random(n), side="right")
            tps = np.array([TP_INDEX[k] for k in keys], dtype=np.int16)[
                np.minimum(pick, len(keys) - 1)
            ]
        outcome = OUTCOME_INDEX[step.outcome] if step.outcome else -1
        idx = np.flatnonzero(took)
        parts.append(
            Rows(
                person[idx].astype(np.int32),
                when[idx],
                tps[idx],
                np.full(len(idx), outcome, dtype=np.int8),
            )
        )
        cur = np.where(took, when, cur)
    return Rows.concat(parts), cur


def expand_mix(
    templates: tuple[tuple[Step, ...], ...],
    choice: np.ndarray,
    person: np.ndarray,
    t0: np.ndarray,
    rng: np.random.Generator,
) -> tuple[Rows, np.ndarray]:
    """Like :func:`expand`, with template ``choice[i]`` for person ``i``."""
    parts: list[Rows] = []
    finish = np.asarray(t0, dtype=np.int64).copy()
    for k, steps in enumerate(templates):
        sel = np.flatnonzero(choice == k)
        rows, finish[sel] = expand(steps, person[sel], t0[sel], rng)
        parts.append(rows)
    return Rows.concat(parts), finish
