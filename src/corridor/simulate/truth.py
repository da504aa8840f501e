"""The truth manifest: everything the generator planted, for tests and analytics to recover."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa

from . import params as P
from .corridor_map import TOUCHPOINTS
from .events import Events, iso
from .feedback import selection
from .interactions import Batch
from .lifecycle import CHURN_ALPHA
from .partners import Partners
from .people import IDENTITY_COLUMNS, People
from .wallet import expected as wallet_expected

TRUTH_VERSION = 1
SAMPLE_SIZE = 50


class IdentityTally:
    """Counts interactions that carry only an identity column, and keeps a small sample."""

    def __init__(self, person_ids: pa.Array) -> None:
        self.person_ids = person_ids
        self.by_column = dict.fromkeys(IDENTITY_COLUMNS, 0)
        self.sample: list[dict[str, str]] = []

    def add(self, b: Batch, table: pa.Table) -> None:
        carried = np.flatnonzero(b.id_only >= 0)
        for k, col in enumerate(IDENTITY_COLUMNS):
            self.by_column[col] += int((b.id_only == k).sum())
        room = SAMPLE_SIZE - len(self.sample)
        if room <= 0 or len(carried) == 0:
            return
        rows = table.take(pa.array(carried[:room]))
        persons = b.person[carried[:room]]
        ids = rows.column("interaction_id").to_pylist()
        for i, row in enumerate(ids):
            col = IDENTITY_COLUMNS[int(b.id_only[carried[i]])]
            self.sample.append(
                {
                    "interaction_id": row,
                    "column": col,
                    "value": rows.column(col)[i].as_py(),
                    "person_id": self.person_ids[int(persons[i])].as_py(),
                }
            )


def build_truth(
    *,
    seed: int,
    start: date,
    end: date,
    months: int,
    fmt: str,
    counts: dict[str, int],
    people: People,
    partners: Partners,
    events: Events,
    churned: int,
    identity: IdentityTally,
    precursors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ids = people.ids
    merges = [
        {"person_ids": [ids[p].as_py(), ids[c].as_py()], "shared": col}
        for p, c, col in people.merges
    ]
    sel = selection(np.array([-4, -2, 0, 2, 4]))
    return {
        "version": TRUTH_VERSION,
        "generator": "corridor.simulate",
        "seed": seed,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "months": months,
        "format": fmt,
        "counts": dict(counts)
        | {
            "customers": people.n_customers,
            "prospects": people.n_prospects,
            "churned_customers": churned,
            "partners": len(partners.ids),
            "employees": partners.n_employees,
        },
        "base_rates": {
            "prospects_per_customer": P.PROSPECT_RATIO,
            "new_customer_share_per_month": P.NEW_CUSTOMER_SHARE_PER_MONTH,
            "lifecycle_interactions_per_active_customer_month": P.LIFECYCLE_RATES
            | {"invoice": P.INVOICE_PER_MONTH, "payment": P.PAYMENT_SHARE},
            "repeat_purchase_journeys_per_month_by_segment": dict(
                zip(P.SEGMENTS, P.REPEAT_PURCHASE_PER_MONTH, strict=True)
            ),
            "identity_only_interaction_share": P.IDENTITY_ONLY_SHARE,
            "survey_rate_by_touchpoint": {t.key: t.survey for t in TOUCHPOINTS},
            "transcript_share": P.TRANSCRIPT_SHARE,
            "field_note_share": P.FIELD_NOTE_SHARE,
            "review_base": P.REVIEW_BASE,
            "social_base": P.SOCIAL_BASE,
            "unsolicited_selection_at_gap": dict(
                zip(["-4", "-2", "0", "2", "4"], np.round(sel, 3).tolist(), strict=True)
            ),
            "feedback_field_presence": {
                s: dict(zip(P.FEEDBACK_FIELDS, v, strict=True))
                for s, v in P.FEEDBACK_PRESENCE.items()
            },
            "pii_in_text_share": P.PII_IN_TEXT_SHARE,
        },
        "model": {
            "expectation": "clip(rint(tp.base_expectation + segment_effect + drift + "
            f"N(0, {P.EXPECTATION_NOISE_SD})), 0, 10)",
            "experience": "clip(rint(tp.quality + partner_offset + channel_effect + "
            f"person_mood N(0, {P.PERSON_MOOD_SD}) + ripple + "
            f"N(0, {P.EXPERIENCE_NOISE_SD})), 0, 10)",
            "touchpoints": {
                t.key: {"base_expectation": t.expectation, "quality": t.quality}
                for t in TOUCHPOINTS
            },
            "segment_expectation_effect": dict(zip(P.SEGMENTS, P.SEGMENT_EXPECTATION, strict=True)),
            "channel_experience_effect": P.CHANNEL_EXPERIENCE,
            "region_effects": None,
            "scores": {
                "nps": "2.8 + 0.6 E + 0.5 G + N(0, 1.3), 0..10",
                "csat": "3.4 + 0.15 (E - 6) + 0.45 G + N(0, 0.6), 1..5",
                "ces": "5.0 + 0.10 (E - 6) + 0.35 G + N(0, 0.9), 1..7",
                "emotion": "0.10 (E - 6) + 0.5 G + N(0, 0.7), -3..3",
            },
        },
        "ripples": [
            {
                "event_id": r.event_id,
                "department": r.department,
                "kind": r.kind,
                "touchpoints": [TOUCHPOINTS[int(t)].key for t in r.tps],
                "region": P.REGIONS[r.region] if r.region >= 0 else None,
                "start": iso(r.start),
                "end": iso(r.end),
                "experience_effect": r.effect,
                "duration_factor": r.duration_factor,
                "value_factor": r.value_factor,
            }
            for r in events.ripples
        ],
        "drift": {
            "touchpoint": TOUCHPOINTS[events.drift.tp].key,
            "date": iso(events.drift.at),
            "size": events.drift.size,
            "market_event_id": events.drift.event_id,
            "metric": "expectation",
        },
        "null_events": {"operational": events.null_operational, "market": events.null_market},
        "partners": partners.truth(),
        "churn": {
            "definition": "a cancellation interaction with outcome 'cancel'; no interactions "
            "of that person after it",
            "base_monthly_hazard": P.CHURN_BASE_MONTHLY,
            "intercept_logit": round(CHURN_ALPHA, 6),
            "drivers": [{"touchpoint": k, "coefficient": v} for k, v in P.CHURN_DRIVERS.items()],
            "gap_definition": "latest latent experience - expectation at the touch point "
            f"(month mean), decaying x{P.CHURN_GAP_DECAY} per month without a "
            "new interaction there; 0 before the first",
            "hazard": "logit(monthly hazard) = intercept_logit + sum(coefficient * gap)",
            "precursors": precursors,
        },
        "identity": {
            "merges": merges,
            "identity_only_interactions": {
                "count": int(sum(identity.by_column.values())),
                "by_column": identity.by_column,
                "sample": identity.sample,
            },
        },
        "employee_optimism": P.DEPARTMENT_OPTIMISM,
        "employee_prediction": "round(tp.quality + department optimism + "
        f"N(0, {P.PREDICTION_NOISE_SD}), 1)",
        "wallet": wallet_expected(),
    }
