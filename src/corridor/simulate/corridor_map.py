"""The simulated company's corridor map: stages, touch points, channels, departments, promises.

The touch points live in ``company.yaml`` beside this module. Each :class:`TouchPoint` carries the
public map fields (what ``corridor.yaml`` shows) and the hidden generator parameters (base
expectation, true quality, durations, outcomes, partner mix, feedback propensities) that the
truth manifest reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from corridor.domain.contract import CHANNELS, STAGES

#: channels where a person (agent, store staff, partner) serves the customer
ASSISTED_CHANNELS: tuple[str, ...] = ("voice", "chat", "store", "partner")


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


def _touchpoint(doc: dict[str, Any]) -> TouchPoint:
    doc = dict(doc)
    doc["promises"] = tuple(Promise(*p) for p in doc.get("promises", ()))
    for key in ("duration", "by_experience"):
        if key in doc:
            doc[key] = tuple(doc[key])
    return TouchPoint(**doc)


def _load() -> tuple[TouchPoint, ...]:
    with resources.files(__package__).joinpath("company.yaml").open("r", encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return tuple(_touchpoint(t) for t in doc["touchpoints"])


TOUCHPOINTS: tuple[TouchPoint, ...] = _load()

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
