"""Base rates and effect sizes of the simulated company (all reported in ``truth.json``)."""

from __future__ import annotations

from typing import Any

SEGMENTS: tuple[str, ...] = ("consumer", "small_business", "enterprise")
SEGMENT_SHARE: tuple[float, ...] = (0.75, 0.20, 0.05)
PROSPECT_SEGMENT_SHARE: tuple[float, ...] = (0.85, 0.12, 0.03)
SEGMENT_EXPECTATION: tuple[float, ...] = (0.0, 0.4, 0.9)  # added to expectation
SEGMENT_PURCHASE_MEDIAN: tuple[float, ...] = (180.0, 650.0, 4200.0)
SEGMENT_MONTHLY_BILL: tuple[float, ...] = (45.0, 180.0, 1500.0)
# purchase path mix per segment: online (checkout), store, dealer
SEGMENT_PATH_MIX: tuple[tuple[float, float, float], ...] = (
    (0.55, 0.30, 0.15),
    (0.45, 0.20, 0.35),
    (0.20, 0.10, 0.70),
)

REGIONS: tuple[str, ...] = ("north", "south", "east", "west", "central")
REGION_SHARE: tuple[float, ...] = (0.22, 0.20, 0.18, 0.22, 0.18)

PROSPECT_RATIO = 0.40  # prospects per customer
MERGE_SHARE = 0.015  # share of prospects that come back as a customer under a new person_id
IDENTITY_ONLY_SHARE = 0.01  # interactions carrying only an identity column, no person_id
NEW_CUSTOMER_SHARE_PER_MONTH = 0.025  # customers acquired during the window (capped at 60 %)

# identity presence: customers, prospects
IDENTITY_PRESENCE: dict[str, tuple[float, float]] = {
    "email": (0.95, 0.70),
    "phone": (0.80, 0.20),
    "device_id": (0.70, 0.80),
    "crm_id": (0.90, 0.30),
}
# identity column an identity-only interaction carries, by channel
CHANNEL_IDENTITY: dict[str, str] = {
    "web": "device_id",
    "app": "device_id",
    "chat": "email",
    "voice": "phone",
    "email": "email",
    "store": "crm_id",
    "social": "email",
    "partner": "crm_id",
}

# lifecycle touch points of an active customer: expected interactions per 30.4 days
LIFECYCLE_RATES: dict[str, float] = {
    "app_usage": 0.70,
    "account_portal": 0.25,
    "loyalty_program": 0.08,
    "help_center": 0.20,
    "support_chat": 0.12,
    "support_call": 0.12,
    "support_email": 0.06,
    "social_care": 0.015,
    "warranty_claim": 0.015,
    "repair_visit": 0.02,
    "returns": 0.015,
    "renewal_offer": 0.06,
}
INVOICE_PER_MONTH = 1.0  # one invoice a month on the customer's billing day
PAYMENT_SHARE = 0.97  # invoices followed by a payment interaction
REPEAT_PURCHASE_PER_MONTH = (0.04, 0.06, 0.08)  # by segment; each is a small journey
RETENTION_CONTACT_FACTOR = 0.5  # saved cancellation contacts per churn (outcome "retained")

# experience model
EXPERIENCE_NOISE_SD = 1.4
EXPECTATION_NOISE_SD = 1.1
PERSON_MOOD_SD = 0.5
CHANNEL_EXPERIENCE: dict[str, float] = {
    "web": 0.0,
    "app": 0.3,
    "chat": 0.0,
    "voice": -0.3,
    "email": 0.0,
    "store": 0.2,
    "social": -0.2,
    "partner": 0.0,
}
PARTNER_OFFSET_SD = 1.0

# churn
CHURN_BASE_MONTHLY = 0.01  # monthly hazard at zero driver gaps
CHURN_DRIVERS: dict[str, float] = {  # logit coefficient per point of latest gap at touch point
    "support_call": -0.35,
    "home_delivery": -0.30,
    "invoice": -0.25,
}
CHURN_GAP_DECAY = 0.8  # monthly decay of a driver gap without a new interaction there

# churn precursors (corridor.simulate.precursors): a customer who decides to leave (the hazard
# above) cancels a notice period later, and shows it in the meantime
NOTICE_WEEKS: tuple[float, float] = (10.0, 13.0)  # uniform: decision to leave -> cancellation
PRECURSOR_TRIGGER_SHARE = 0.9  # decisions that begin with an unresolved contact, made twice
PRECURSOR_RETENTION_SHARE = 0.7  # at-risk customers who ask to cancel and are "retained" first
PRECURSOR_CONTACTS_PER_MONTH = 1.5  # further support contacts while at risk
PRECURSOR_UNRESOLVED_SHARE = 0.7  # of those, ending "unresolved" (others: by experience)
PRECURSOR_TOUCHPOINTS: dict[str, float] = {  # where they are made (no churn-driver touch point)
    "support_chat": 0.40,
    "support_email": 0.25,
    "help_center": 0.20,
    "social_care": 0.15,
}
PRECURSOR_USAGE_TOUCHPOINTS: tuple[str, ...] = ("app_usage", "account_portal", "loyalty_program")
PRECURSOR_USAGE_KEPT = 0.2  # share of those interactions an at-risk customer still has
PRECURSOR_SLOW_TOUCHPOINTS: tuple[str, ...] = (
    "support_chat",
    "support_call",
    "support_email",
    "social_care",
)
PRECURSOR_DURATION_FACTOR = 1.6  # an at-risk customer's support contacts take longer
# the ceiling in truth.json: the horizon of the product's churn risk (analytics churn_risk)
CEILING_HORIZON_MONTHS = 3.0
CEILING_MONTH_DAYS = 30.44

# feedback
FEEDBACK_SOURCES: tuple[str, ...] = ("survey", "review", "social", "transcript", "field_note")
FEEDBACK_FIELDS: tuple[str, ...] = (
    "expectation",
    "experience",
    "nps",
    "csat",
    "ces",
    "emotion",
    "text",
)
# probability that a field is filled, by source (order of FEEDBACK_FIELDS)
FEEDBACK_PRESENCE: dict[str, tuple[float, ...]] = {
    "survey": (0.85, 0.90, 0.55, 0.70, 0.50, 0.35, 0.30),
    "review": (0.50, 0.60, 0.00, 1.00, 0.00, 0.30, 1.00),
    "social": (0.40, 0.50, 0.00, 0.00, 0.00, 0.80, 1.00),
    "transcript": (0.00, 0.00, 0.00, 0.00, 0.00, 1.00, 1.00),
    "field_note": (0.50, 0.80, 0.00, 0.00, 0.00, 0.70, 1.00),
}
TRANSCRIPT_SHARE = 0.30  # voice/chat support, sales and cancellation contacts with a transcript
TRANSCRIPT_TOUCHPOINTS: tuple[str, ...] = (
    "support_call",
    "support_chat",
    "sales_call",
    "cancellation",
    "social_care",
)
FIELD_NOTE_SHARE = 0.01  # store/partner interactions observed by an ethnographer
REVIEW_BASE = 0.004  # per interaction at review propensity 1 and zero gap
SOCIAL_BASE = 0.002
REVIEW_ANONYMOUS = 0.70
SOCIAL_ANONYMOUS = 0.85
SOCIAL_NO_TOUCHPOINT = 0.20
PII_IN_TEXT_SHARE = 0.03  # texts that mention the writer's e-mail or phone

# share of wallet: brands_used and brand_rank on customers' relationship (NPS) surveys
WALLET_ASKED_SHARE = 0.5  # customers' surveys with an NPS answer that also ask the ranking
WALLET_MAX_BRANDS = 5
WALLET_BRANDS: tuple[tuple[float, ...], ...] = (  # P(brands_used = 1..5) by segment
    (0.35, 0.30, 0.20, 0.10, 0.05),
    (0.20, 0.30, 0.25, 0.15, 0.10),
    (0.10, 0.20, 0.30, 0.25, 0.15),
)
WALLET_STANDING: tuple[float, ...] = (0.3, 0.0, -0.3)  # our mean standing by segment (rivals: 0)
WALLET_MOOD_WEIGHT = 1.0  # standing per standard deviation of the person's experience offset
WALLET_PERSON_SD = 0.5  # a person's lasting preference beyond their experiences
WALLET_ANSWER_SD = 0.5  # from one answer to the next

# employee predictions: department optimism (points added to the touch point's true quality)
DEPARTMENT_OPTIMISM: dict[str, float] = {
    "sales": 1.5,
    "marketing": 1.2,
    "logistics": 0.9,
    "ecommerce": 0.6,
    "inventory": 0.5,
    "service": 0.4,
    "billing": 0.3,
    "finance": 0.2,
    "hr": 0.8,
}
PREDICTION_NOISE_SD = 0.3

# planted effects
RIPPLES: tuple[dict[str, Any], ...] = (
    {
        "department": "logistics",
        "kind": "carrier_change",
        "region": "north",
        "touchpoints": ("home_delivery", "shipping_notice"),
        "experience_effect": -2.0,
        "duration_factor": 1.6,
        "start_fraction": 0.35,
        "length_fraction": 0.25,
        "description": "Switched the northern parcel carrier to a cheaper regional firm",
    },
    {
        "department": "billing",
        "kind": "billing_error",
        "region": None,
        "touchpoints": ("invoice",),
        "experience_effect": -1.5,
        "value_factor": 1.25,
        "start_fraction": 0.70,
        "length_fraction": 0.06,
        "description": "Invoice run applied last year's tariff to part of the base",
    },
)
DRIFT: dict[str, Any] = {
    "touchpoint": "support_chat",
    "size": 1.5,
    "at_fraction": 0.5,
    "kind": "competitor_move",
    "description": "Main competitor launches 24/7 instant chat answered in under a minute",
}
