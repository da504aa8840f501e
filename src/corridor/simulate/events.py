"""Operational events (planted ripples and harmless distractors), market events (one planted
expectation drift plus distractors) and employee predictions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from . import params as P
from .arrowutil import DAY, TS_TYPE, US, timestamps
from .corridor_map import TOUCHPOINTS, TP_INDEX

_OPS_DISTRACTORS: tuple[tuple[str, str, str, str], ...] = (
    (
        "inventory",
        "stockout",
        "store_purchase;checkout;store_pickup",
        "Stock-out of the accessory range at the central warehouse",
    ),
    ("logistics", "carrier_change", "home_delivery", "Pilot of a new parcel locker partner"),
    (
        "finance",
        "price_change",
        "checkout;store_purchase;dealer_purchase",
        "Price list update: +3% on accessories",
    ),
    ("hr", "staffing", "support_call;support_chat", "Seasonal hiring wave in the contact centre"),
    (
        "billing",
        "billing_error",
        "invoice",
        "Rounding issue on a handful of invoices, corrected the same day",
    ),
    ("ecommerce", "policy_change", "checkout;app_onboarding", "New consent banner on web and app"),
    ("marketing", "policy_change", "loyalty_program", "Loyalty points expiry rule clarified"),
    (
        "sales",
        "staffing",
        "store_visit;store_purchase",
        "Store opening hours extended on Saturdays",
    ),
    ("service", "policy_change", "warranty_claim;repair_visit", "Warranty claim form moved online"),
    (
        "inventory",
        "stockout",
        "store_pickup",
        "Short stock-out of a popular model in regional stores",
    ),
    (
        "finance",
        "policy_change",
        "financing_application;payment",
        "New payment provider for card payments",
    ),
    ("hr", "staffing", "store_visit;product_demo", "Product training day for store staff"),
)
_MARKET_DISTRACTORS: tuple[tuple[str, str, str], ...] = (
    ("campaign", "ad_click;social_post", "Competitor launches a national TV campaign"),
    ("competitor_move", "checkout;store_purchase", "Competitor cuts list prices by 10%"),
    ("innovation", "app_usage", "Phone makers ship passkey logins for all apps"),
    ("other", "payment", "Interest rates rise again"),
    ("campaign", "store_visit", "Shopping-centre spring festival"),
    ("innovation", "home_delivery;shipping_notice", "Live courier tracking becomes common"),
    ("other", "renewal_offer", "Consumer confidence index falls"),
)


@dataclass
class Ripple:
    event_id: str
    department: str
    kind: str
    tps: np.ndarray  # int16 touch point indices
    region: int  # -1: all regions
    start: int
    end: int
    effect: float
    duration_factor: float
    value_factor: float


@dataclass
class Drift:
    event_id: str
    tp: int
    at: int
    size: float


@dataclass
class Events:
    ripples: list[Ripple]
    drift: Drift
    operational: pa.Table
    market: pa.Table
    null_operational: list[str]
    null_market: list[str]


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_events(start: int, end: int, months: int, rng: np.random.Generator) -> Events:
    span = end - start
    ops: list[dict[str, Any]] = []
    ripples: list[Ripple] = []
    for spec in P.RIPPLES:
        r_start = start + int(spec["start_fraction"] * span + rng.uniform(-3, 3) * DAY)
        length = int(np.clip(spec["length_fraction"] * span, 14 * DAY, 120 * DAY))
        r_end = min(end, r_start + length)
        ops.append(
            {
                "department": spec["department"],
                "kind": spec["kind"],
                "started_at": r_start,
                "ended_at": r_end,
                "touchpoints": ";".join(spec["touchpoints"]),
                "region": spec["region"],
                "description": spec["description"],
                "planted": len(ripples),
            }
        )
        ripples.append(
            Ripple(
                "",
                spec["department"],
                spec["kind"],
                np.array([TP_INDEX[t] for t in spec["touchpoints"]], dtype=np.int16),
                P.REGIONS.index(spec["region"]) if spec["region"] else -1,
                r_start,
                r_end,
                float(spec["experience_effect"]),
                float(spec.get("duration_factor", 1.0)),
                float(spec.get("value_factor", 1.0)),
            )
        )
    n_ops = int(np.clip(round(1.5 * months), 10, 30)) - len(ripples)
    for _ in range(n_ops):
        dept, kind, tps, desc = _OPS_DISTRACTORS[rng.integers(len(_OPS_DISTRACTORS))]
        keys = set(tps.split(";"))
        for _attempt in range(50):  # keep clear of planted windows on the same touch points
            s = int(rng.integers(start, max(start + 1, end - 3 * DAY)))
            e = s + int(rng.uniform(3, 45) * DAY)
            clash = any(
                keys & {TOUCHPOINTS[t].key for t in r.tps}
                and s < r.end + 14 * DAY
                and e > r.start - 14 * DAY
                for r in ripples
            )
            if not clash:
                break
        region = P.REGIONS[rng.integers(len(P.REGIONS))] if rng.random() < 0.5 else None
        ended = None if rng.random() < 0.15 else e
        ops.append(
            {
                "department": dept,
                "kind": kind,
                "started_at": s,
                "ended_at": ended,
                "touchpoints": tps,
                "region": region,
                "description": desc + (f" ({region} region)" if region else ""),
                "planted": -1,
            }
        )
    ops.sort(key=lambda o: (o["started_at"], o["department"]))
    null_ops: list[str] = []
    for i, o in enumerate(ops):
        o["event_id"] = f"ops-{i + 1:03d}"
        if o["planted"] >= 0:
            ripples[o["planted"]].event_id = o["event_id"]
        else:
            null_ops.append(o["event_id"])

    drift_at = start + int(P.DRIFT["at_fraction"] * span + rng.uniform(-3, 3) * DAY)
    mkt: list[dict[str, Any]] = [
        {
            "occurred_at": drift_at,
            "kind": P.DRIFT["kind"],
            "touchpoints": P.DRIFT["touchpoint"],
            "description": P.DRIFT["description"],
            "planted": True,
        }
    ]
    n_mkt = int(np.clip(round(0.5 * months), 4, 12)) - 1
    for k in rng.permutation(len(_MARKET_DISTRACTORS))[:n_mkt]:
        kind, tps, desc = _MARKET_DISTRACTORS[k]
        mkt.append(
            {
                "occurred_at": int(rng.integers(start, end)),
                "kind": kind,
                "touchpoints": tps,
                "description": desc,
                "planted": False,
            }
        )
    mkt.sort(key=lambda m: m["occurred_at"])
    drift = Drift("", TP_INDEX[P.DRIFT["touchpoint"]], drift_at, float(P.DRIFT["size"]))
    null_mkt: list[str] = []
    for i, m in enumerate(mkt):
        m["event_id"] = f"mkt-{i + 1:03d}"
        if m["planted"]:
            drift.event_id = m["event_id"]
        else:
            null_mkt.append(m["event_id"])
    return Events(ripples, drift, _ops_table(ops), _market_table(mkt), null_ops, null_mkt)


def _ops_table(ops: list[dict[str, Any]]) -> pa.Table:
    ended = np.array([o["ended_at"] if o["ended_at"] is not None else 0 for o in ops], np.int64)
    return pa.table(
        {
            "event_id": pa.array([o["event_id"] for o in ops], pa.string()),
            "department": pa.array([o["department"] for o in ops], pa.string()),
            "kind": pa.array([o["kind"] for o in ops], pa.string()),
            "started_at": timestamps(np.array([o["started_at"] for o in ops], np.int64)),
            "ended_at": pa.array(
                ended * US, TS_TYPE, mask=np.array([o["ended_at"] is None for o in ops])
            ),
            "touchpoints": pa.array([o["touchpoints"] for o in ops], pa.string()),
            "region": pa.array([o["region"] for o in ops], pa.string()),
            "description": pa.array([o["description"] for o in ops], pa.string()),
        }
    )


def _market_table(mkt: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "event_id": pa.array([m["event_id"] for m in mkt], pa.string()),
            "occurred_at": timestamps(np.array([m["occurred_at"] for m in mkt], np.int64)),
            "kind": pa.array([m["kind"] for m in mkt], pa.string()),
            "touchpoints": pa.array([m["touchpoints"] for m in mkt], pa.string()),
            "description": pa.array([m["description"] for m in mkt], pa.string()),
        }
    )


def employee_predictions(start: int, end: int, rng: np.random.Generator) -> pa.Table:
    """One prediction per department x owned touch point x calendar month of the window."""
    first, last = np.array([start, end - 1], dtype="datetime64[s]").astype("datetime64[M]")
    periods = np.arange(first, last + 1).astype(str)
    dept, tpk, per, pred = [], [], [], []
    for t in TOUCHPOINTS:
        bias = P.DEPARTMENT_OPTIMISM.get(t.department, 0.0)
        noise = rng.normal(0.0, P.PREDICTION_NOISE_SD, len(periods))
        dept += [t.department] * len(periods)
        tpk += [t.key] * len(periods)
        per += list(periods)
        pred.append(np.clip(np.round(t.quality + bias + noise, 1), 0.0, 10.0))
    order = np.lexsort((np.array(tpk), np.array(dept), np.array(per)))
    n = len(order)
    return pa.table(
        {
            "prediction_id": pa.array([f"pred-{i + 1:06d}" for i in range(n)], pa.string()),
            "department": pa.array(np.array(dept)[order], pa.string()),
            "touchpoint": pa.array(np.array(tpk)[order], pa.string()),
            "period": pa.array(np.array(per)[order], pa.string()),
            "predicted_experience": pa.array(np.concatenate(pred)[order], pa.float64()),
        }
    )
