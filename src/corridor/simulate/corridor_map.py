"""The simulated company's corridor map: stages, touch points, channels, departments, promises.

Each :class:`TouchPoint` carries the public map fields (what ``corridor.yaml`` shows) and the
hidden generator parameters (base expectation, true quality, durations, outcomes, partner mix,
feedback propensities) that the truth manifest reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STAGES: tuple[str, ...] = (
    "awareness",
    "research",
    "purchase",
    "delivery",
    "use",
    "support",
    "renewal",
)
CHANNELS: tuple[str, ...] = ("web", "app", "chat", "voice", "email", "store", "social", "partner")
ASSISTED_CHANNELS: tuple[str, ...] = ("voice", "chat", "store", "partner")
DEPARTMENTS: tuple[str, ...] = (
    "finance",
    "ecommerce",
    "inventory",
    "logistics",
    "billing",
    "hr",
    "marketing",
    "sales",
    "service",
)


@dataclass(frozen=True)
class Promise:
    key: str
    metric: str  # "duration_minutes" or a feedback field such as "experience"
    target: str  # e.g. "<= 3" or ">= 7"
    source: str  # advertising|sales|service|reviewers|peers|history


@dataclass(frozen=True)
class TouchPoint:
    key: str
    name: str
    stage: str
    department: str
    channels: dict[str, float]  # channel -> share of this touch point's interactions
    expectation: float  # base expectation (0-10) before segment effect and drift
    quality: float  # true mean experience (0-10) before partner/channel/ripple effects
    duration: tuple[float, float] | None = None  # (median minutes, log-sd); None = not measured
    partners: dict[str, float] = field(default_factory=dict)  # partner type mix on channel partner
    outsourced: float = 0.0  # share of non-partner contacts handled by an agency
    outcomes: dict[str, float] = field(default_factory=dict)  # fixed outcome mix
    by_experience: tuple[str, str] | None = None  # (good, bad) outcome decided by experience
    value: str | None = None  # purchase|bill|refund|renewal|financing
    survey: float = 0.10  # probability that an interaction gets a (responded) survey
    review: float = 0.0  # relative propensity for unsolicited public reviews
    social: float = 0.3  # relative propensity for unsolicited social posts
    promises: tuple[Promise, ...] = ()


def _p(key: str, metric: str, target: str, source: str) -> Promise:
    return Promise(key, metric, target, source)


TOUCHPOINTS: tuple[TouchPoint, ...] = (
    # --- awareness -------------------------------------------------------------------------
    TouchPoint(
        "ad_click",
        "Clicked an online ad",
        "awareness",
        "marketing",
        {"web": 0.5, "app": 0.2, "social": 0.3},
        6.0,
        6.5,
        (0.5, 0.6),
        outsourced=0.4,
        survey=0.01,
        social=0.1,
    ),
    TouchPoint(
        "social_post",
        "Engaged with a brand social post",
        "awareness",
        "marketing",
        {"social": 1.0},
        5.5,
        6.2,
        (1.0, 0.7),
        outsourced=0.5,
        survey=0.01,
    ),
    TouchPoint(
        "store_visit",
        "Walked into a store or showroom",
        "awareness",
        "sales",
        {"store": 0.6, "partner": 0.4},
        7.0,
        7.2,
        (18.0, 0.6),
        partners={"retailer": 0.6, "dealer": 0.4},
        survey=0.05,
        review=0.3,
    ),
    # --- research --------------------------------------------------------------------------
    TouchPoint(
        "product_page",
        "Read a product page",
        "research",
        "ecommerce",
        {"web": 0.7, "app": 0.3},
        7.0,
        7.3,
        (3.0, 0.7),
        survey=0.03,
    ),
    TouchPoint(
        "comparison_tool",
        "Used the comparison tool",
        "research",
        "ecommerce",
        {"web": 1.0},
        6.8,
        6.6,
        (6.0, 0.6),
        survey=0.05,
    ),
    TouchPoint(
        "sales_call",
        "Talked to sales",
        "research",
        "sales",
        {"voice": 0.7, "partner": 0.3},
        7.2,
        6.8,
        (12.0, 0.5),
        partners={"dealer": 1.0},
        outsourced=0.3,
        outcomes={"interested": 0.55, "not_interested": 0.45},
        survey=0.12,
        promises=(_p("sales-expert-advice", "experience", ">= 7", "sales"),),
    ),
    TouchPoint(
        "quote_request",
        "Asked for a quote",
        "research",
        "sales",
        {"web": 0.4, "email": 0.3, "partner": 0.3},
        7.0,
        6.9,
        (8.0, 0.6),
        partners={"dealer": 1.0},
        survey=0.08,
        review=0.2,
    ),
    TouchPoint(
        "product_demo",
        "Saw a product demo",
        "research",
        "sales",
        {"store": 0.5, "partner": 0.5},
        7.5,
        7.8,
        (30.0, 0.5),
        partners={"dealer": 0.6, "retailer": 0.4},
        survey=0.12,
        review=0.3,
    ),
    # --- purchase --------------------------------------------------------------------------
    TouchPoint(
        "checkout",
        "Online checkout",
        "purchase",
        "ecommerce",
        {"web": 0.65, "app": 0.35},
        7.8,
        7.6,
        (4.0, 0.5),
        outcomes={"purchase": 0.75, "abandon": 0.25},
        value="purchase",
        survey=0.15,
        review=0.4,
        promises=(_p("checkout-5min", "duration_minutes", "<= 5", "advertising"),),
    ),
    TouchPoint(
        "store_purchase",
        "Bought in a store",
        "purchase",
        "sales",
        {"store": 0.6, "partner": 0.4},
        7.5,
        7.6,
        (25.0, 0.5),
        partners={"retailer": 1.0},
        outcomes={"purchase": 1.0},
        value="purchase",
        survey=0.15,
        review=0.8,
        promises=(_p("store-friendly-staff", "experience", ">= 8", "peers"),),
    ),
    TouchPoint(
        "dealer_purchase",
        "Bought from a dealer",
        "purchase",
        "sales",
        {"partner": 1.0},
        7.6,
        7.2,
        (60.0, 0.5),
        partners={"dealer": 1.0},
        outcomes={"purchase": 1.0},
        value="purchase",
        survey=0.2,
        review=1.0,
        promises=(_p("dealer-experience", "experience", ">= 7", "sales"),),
    ),
    TouchPoint(
        "financing_application",
        "Applied for financing",
        "purchase",
        "finance",
        {"web": 0.5, "partner": 0.5},
        6.8,
        6.2,
        (15.0, 0.5),
        partners={"dealer": 1.0},
        by_experience=("approved", "declined"),
        value="financing",
        survey=0.12,
        review=0.3,
    ),
    # --- delivery --------------------------------------------------------------------------
    TouchPoint(
        "order_confirmation",
        "Order confirmation",
        "delivery",
        "inventory",
        {"email": 0.7, "app": 0.3},
        7.5,
        7.9,
        survey=0.05,
    ),
    TouchPoint(
        "shipping_notice",
        "Shipping and tracking notice",
        "delivery",
        "logistics",
        {"email": 0.6, "app": 0.4},
        7.3,
        7.4,
        survey=0.25,
    ),
    TouchPoint(
        "home_delivery",
        "Home delivery",
        "delivery",
        "logistics",
        {"partner": 1.0},
        7.8,
        7.0,
        (3000.0, 0.35),
        partners={"service": 1.0},
        outcomes={"delivered": 0.97, "failed": 0.03},
        survey=0.3,
        review=1.0,
        social=1.0,
        promises=(
            _p("delivery-2-days", "duration_minutes", "<= 2880", "advertising"),
            _p("delivery-experience", "experience", ">= 7", "reviewers"),
        ),
    ),
    TouchPoint(
        "installation",
        "Installation at home",
        "delivery",
        "service",
        {"partner": 1.0},
        7.6,
        7.1,
        (120.0, 0.5),
        partners={"service": 0.8, "dealer": 0.2},
        outcomes={"completed": 1.0},
        survey=0.3,
        review=0.8,
        promises=(_p("install-3h", "duration_minutes", "<= 180", "sales"),),
    ),
    TouchPoint(
        "store_pickup",
        "Picked up in store",
        "delivery",
        "inventory",
        {"store": 0.6, "partner": 0.4},
        7.2,
        7.5,
        (10.0, 0.6),
        partners={"retailer": 1.0},
        survey=0.15,
        review=0.3,
    ),
    # --- use -------------------------------------------------------------------------------
    TouchPoint(
        "first_use",
        "First use of the product",
        "use",
        "service",
        {"app": 0.6, "web": 0.4},
        8.0,
        7.4,
        (20.0, 0.7),
        survey=0.2,
        review=0.5,
    ),
    TouchPoint(
        "app_onboarding",
        "App onboarding",
        "use",
        "ecommerce",
        {"app": 1.0},
        7.2,
        6.9,
        (6.0, 0.5),
        survey=0.15,
        review=0.3,
        promises=(_p("onboarding-5min", "duration_minutes", "<= 5", "advertising"),),
    ),
    TouchPoint(
        "app_usage",
        "Everyday app use",
        "use",
        "ecommerce",
        {"app": 0.75, "web": 0.25},
        7.0,
        7.2,
        (5.0, 0.8),
        survey=0.03,
        review=0.2,
    ),
    TouchPoint(
        "account_portal",
        "Self-service account portal",
        "use",
        "ecommerce",
        {"web": 1.0},
        6.8,
        6.6,
        (4.0, 0.6),
        survey=0.05,
    ),
    TouchPoint(
        "loyalty_program",
        "Loyalty programme",
        "use",
        "marketing",
        {"app": 0.6, "email": 0.4},
        6.5,
        6.8,
        (2.0, 0.6),
        survey=0.05,
    ),
    TouchPoint(
        "invoice",
        "Monthly invoice",
        "use",
        "billing",
        {"email": 0.7, "web": 0.3},
        7.0,
        6.5,
        value="bill",
        survey=0.06,
        social=0.5,
        promises=(_p("invoice-clear", "experience", ">= 7", "history"),),
    ),
    TouchPoint(
        "payment",
        "Payment",
        "use",
        "finance",
        {"web": 0.5, "app": 0.4, "voice": 0.1},
        7.2,
        7.6,
        (2.0, 0.5),
        outcomes={"paid": 0.97, "failed": 0.03},
        value="bill",
        survey=0.03,
    ),
    # --- support ---------------------------------------------------------------------------
    TouchPoint(
        "help_center",
        "Help centre article",
        "support",
        "service",
        {"web": 0.7, "app": 0.3},
        6.5,
        5.9,
        (5.0, 0.6),
        by_experience=("resolved", "unresolved"),
        survey=0.08,
    ),
    TouchPoint(
        "support_chat",
        "Support chat",
        "support",
        "service",
        {"chat": 1.0},
        7.0,
        6.4,
        (9.0, 0.6),
        outsourced=0.2,
        by_experience=("resolved", "unresolved"),
        survey=0.2,
        social=0.6,
        promises=(_p("chat-10min", "duration_minutes", "<= 10", "service"),),
    ),
    TouchPoint(
        "support_call",
        "Support call",
        "support",
        "service",
        {"voice": 1.0},
        7.3,
        5.9,
        (11.0, 0.6),
        outsourced=0.35,
        by_experience=("resolved", "unresolved"),
        survey=0.2,
        review=0.5,
        social=1.0,
        promises=(
            _p("call-12min", "duration_minutes", "<= 12", "service"),
            _p("call-helpful", "experience", ">= 7", "service"),
        ),
    ),
    TouchPoint(
        "support_email",
        "Support e-mail",
        "support",
        "service",
        {"email": 1.0},
        6.5,
        5.6,
        (2.0, 0.6),
        by_experience=("resolved", "unresolved"),
        survey=0.15,
    ),
    TouchPoint(
        "social_care",
        "Customer care on social media",
        "support",
        "marketing",
        {"social": 1.0},
        6.0,
        5.8,
        (30.0, 0.8),
        outsourced=0.5,
        by_experience=("resolved", "unresolved"),
        survey=0.05,
        social=2.0,
    ),
    TouchPoint(
        "warranty_claim",
        "Warranty claim",
        "support",
        "service",
        {"web": 0.4, "voice": 0.3, "partner": 0.3},
        7.0,
        5.8,
        (20.0, 0.6),
        partners={"dealer": 0.5, "service": 0.5},
        by_experience=("approved", "rejected"),
        survey=0.25,
        review=1.0,
        social=1.0,
    ),
    TouchPoint(
        "repair_visit",
        "Repair visit",
        "support",
        "service",
        {"partner": 0.8, "store": 0.2},
        7.4,
        6.6,
        (100.0, 0.5),
        partners={"service": 1.0},
        by_experience=("resolved", "unresolved"),
        survey=0.3,
        review=1.0,
        promises=(_p("repair-2h", "duration_minutes", "<= 120", "service"),),
    ),
    TouchPoint(
        "returns",
        "Returned a product",
        "support",
        "logistics",
        {"store": 0.3, "web": 0.4, "partner": 0.3},
        7.2,
        6.4,
        (15.0, 0.6),
        partners={"retailer": 1.0},
        outcomes={"refund": 0.9, "rejected": 0.1},
        value="refund",
        survey=0.2,
        review=0.8,
        promises=(_p("returns-easy", "experience", ">= 7", "advertising"),),
    ),
    # --- renewal ---------------------------------------------------------------------------
    TouchPoint(
        "renewal_offer",
        "Renewal or upgrade offer",
        "renewal",
        "sales",
        {"email": 0.5, "voice": 0.3, "app": 0.2},
        6.5,
        6.3,
        (6.0, 0.6),
        outsourced=0.3,
        outcomes={"accepted": 0.35, "declined": 0.65},
        value="renewal",
        survey=0.1,
        promises=(_p("renewal-fair-price", "experience", ">= 6", "history"),),
    ),
    TouchPoint(
        "cancellation",
        "Cancellation request",
        "renewal",
        "sales",
        {"voice": 0.5, "web": 0.3, "chat": 0.2},
        6.0,
        5.0,
        (14.0, 0.5),
        outcomes={"cancel": 1.0},
        survey=0.25,
        review=0.5,
        social=1.0,
    ),
)

TP_KEYS: tuple[str, ...] = tuple(tp.key for tp in TOUCHPOINTS)
TP_INDEX: dict[str, int] = {k: i for i, k in enumerate(TP_KEYS)}
OUTCOMES: tuple[str, ...] = (
    "purchase",
    "abandon",
    "resolved",
    "unresolved",
    "cancel",
    "retained",
    "paid",
    "failed",
    "delivered",
    "approved",
    "declined",
    "rejected",
    "accepted",
    "refund",
    "completed",
    "interested",
    "not_interested",
)
OUTCOME_INDEX: dict[str, int] = {k: i for i, k in enumerate(OUTCOMES)}


def tp(key: str) -> TouchPoint:
    return TOUCHPOINTS[TP_INDEX[key]]


def map_document() -> dict[str, Any]:
    """The corridor map as the contract's YAML/JSON document (public fields only)."""
    touchpoints: list[dict[str, Any]] = []
    for t in TOUCHPOINTS:
        doc: dict[str, Any] = {
            "key": t.key,
            "name": t.name,
            "stage": t.stage,
            "channels": [c for c in CHANNELS if c in t.channels],
            "department": t.department,
        }
        if t.promises:
            doc["promises"] = [
                {"key": p.key, "metric": p.metric, "target": p.target, "source": p.source}
                for p in t.promises
            ]
        touchpoints.append(doc)
    return {"stages": list(STAGES), "touchpoints": touchpoints}


def write_map(path: Path) -> Path:
    text = yaml.safe_dump(map_document(), sort_keys=False, default_flow_style=None, width=100)
    path.write_text("# Corridor map of the simulated company (corridor.simulate)\n" + text)
    return path
