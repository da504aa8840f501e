"""The data contract (v1): every record kind Corridor accepts, field by field.

This module is the single definition of what a valid record is. Every entry point (HTTP,
``corridor import``, the simulator's loader) validates against these specs through
:mod:`corridor.ingest.validate`, which compiles them into one vectorised check, so a record is
judged the same way whichever door it came through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

STAGES: tuple[str, ...] = (
    "awareness",
    "research",
    "purchase",
    "delivery",
    "use",
    "support",
    "renewal",
)
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
CHANNELS: tuple[str, ...] = ("web", "app", "chat", "voice", "email", "store", "social", "partner")
FEEDBACK_SOURCES: tuple[str, ...] = ("survey", "review", "social", "transcript", "field_note")
PERSON_KINDS: tuple[str, ...] = ("customer", "prospect")
MARKET_EVENT_KINDS: tuple[str, ...] = ("competitor_move", "innovation", "campaign", "other")
PROMISE_SOURCES: tuple[str, ...] = (
    "advertising",
    "sales",
    "service",
    "reviewers",
    "peers",
    "history",
)
IDENTITY_TYPES: tuple[str, ...] = ("crm_id", "email", "phone", "device_id")
#: characters dropped from phone numbers before they are stored or looked up (a regex class)
PHONE_SEPARATORS = r"[\s\-().]"

MAX_ID_LENGTH = 256
MAX_TEXT_LENGTH = 20_000


class FieldType(StrEnum):
    STRING = "string"
    TEXT = "text"  # free text: longer limit, not trimmed to a label
    TIMESTAMP = "timestamp"
    NUMBER = "number"
    INTEGER = "integer"
    KEY_LIST = "key_list"  # ';'-separated keys, e.g. touch points
    PERIOD = "period"  # YYYY-MM


class Vocabulary(StrEnum):
    """Vocabularies whose allowed values come from the loaded corridor map."""

    TOUCHPOINT = "touchpoint"
    CHANNEL = "channel"
    DEPARTMENT = "department"


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    description: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    vocabulary: Vocabulary | None = None
    identity: bool = False
    lowercase: bool = False

    @property
    def sql_type(self) -> str:
        return {
            FieldType.TIMESTAMP: "TIMESTAMPTZ",
            FieldType.NUMBER: "DOUBLE",
            FieldType.INTEGER: "INTEGER",
        }.get(self.type, "VARCHAR")


@dataclass(frozen=True)
class RecordKind:
    """One kind of record: its name in URLs and files, its id field and its fields."""

    name: str
    id_field: str
    fields: tuple[Field, ...]
    description: str
    #: records of this kind name a person (person_id or an identity column)
    has_person: bool = False
    #: a person reference (person_id or one identity) is required
    person_required: bool = False
    #: a later record with the same id replaces the earlier one (profiles); otherwise kept once
    upsert: bool = False
    time_field: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def get(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def identity_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.identity)

    @property
    def stored_fields(self) -> tuple[Field, ...]:
        """Fields kept as columns of the kind's table (identities live in ``identities``)."""
        return tuple(f for f in self.fields if not f.identity)


def _ids(*, email_phone: bool = True) -> tuple[Field, ...]:
    fields = [
        Field(
            "email", FieldType.STRING, "e-mail address (identity)", identity=True, lowercase=True
        ),
        Field("phone", FieldType.STRING, "phone number (identity)", identity=True),
        Field("device_id", FieldType.STRING, "device or cookie id (identity)", identity=True),
        Field("crm_id", FieldType.STRING, "id in the CRM (identity)", identity=True),
    ]
    return tuple(fields) if email_phone else ()


PEOPLE = RecordKind(
    name="people",
    id_field="person_id",
    description="Customers and prospects, with the identities that resolve them to one person.",
    has_person=True,
    upsert=True,
    time_field="created_at",
    fields=(
        Field("person_id", FieldType.STRING, "sender's id", required=True),
        Field(
            "kind",
            FieldType.STRING,
            "customer or prospect",
            required=True,
            choices=PERSON_KINDS,
            lowercase=True,
        ),
        Field("created_at", FieldType.TIMESTAMP, "first seen"),
        Field("segment", FieldType.STRING, "free label used for slicing"),
        Field("region", FieldType.STRING, "free label used for slicing"),
        *_ids(),
    ),
)

INTERACTIONS = RecordKind(
    name="interactions",
    id_field="interaction_id",
    description="Every interaction in an addressable channel, delivered by the brand or a partner.",
    has_person=True,
    person_required=True,
    time_field="occurred_at",
    fields=(
        Field("interaction_id", FieldType.STRING, "unique id", required=True),
        Field("person_id", FieldType.STRING, "sender's person id (or give an identity column)"),
        Field("occurred_at", FieldType.TIMESTAMP, "when", required=True),
        Field(
            "touchpoint",
            FieldType.STRING,
            "touch point key from the corridor map",
            required=True,
            vocabulary=Vocabulary.TOUCHPOINT,
        ),
        Field(
            "channel",
            FieldType.STRING,
            "channel",
            required=True,
            vocabulary=Vocabulary.CHANNEL,
            lowercase=True,
        ),
        Field("partner_id", FieldType.STRING, "partner that delivered it for the brand"),
        Field("agent_id", FieldType.STRING, "employee or partner agent who handled it"),
        Field(
            "outcome", FieldType.STRING, "e.g. purchase, abandon, resolved, cancel", lowercase=True
        ),
        Field("value", FieldType.NUMBER, "money involved, in the account currency"),
        Field("duration_minutes", FieldType.NUMBER, "how long it took the customer", minimum=0.0),
        *_ids(),
    ),
)

FEEDBACK = RecordKind(
    name="feedback",
    id_field="feedback_id",
    description="Surveys, reviews, social posts, transcripts and field notes.",
    has_person=True,
    time_field="occurred_at",
    fields=(
        Field("feedback_id", FieldType.STRING, "unique id", required=True),
        Field("person_id", FieldType.STRING, "absent for anonymous reviews"),
        Field("occurred_at", FieldType.TIMESTAMP, "when given", required=True),
        Field(
            "touchpoint",
            FieldType.STRING,
            "touch point key from the corridor map",
            vocabulary=Vocabulary.TOUCHPOINT,
        ),
        Field("interaction_id", FieldType.STRING, "the interaction it is about"),
        Field("partner_id", FieldType.STRING, "partner that delivered it for the brand"),
        Field(
            "source",
            FieldType.STRING,
            "survey, review, social, transcript or field_note",
            required=True,
            choices=FEEDBACK_SOURCES,
            lowercase=True,
        ),
        Field(
            "expectation",
            FieldType.NUMBER,
            "0-10: what the customer expected",
            minimum=0.0,
            maximum=10.0,
        ),
        Field(
            "experience",
            FieldType.NUMBER,
            "0-10: what the customer experienced",
            minimum=0.0,
            maximum=10.0,
        ),
        Field("nps", FieldType.INTEGER, "0-10 likelihood to recommend", minimum=0.0, maximum=10.0),
        Field("csat", FieldType.INTEGER, "1-5 satisfaction", minimum=1.0, maximum=5.0),
        Field("ces", FieldType.INTEGER, "1-7 ease (7 = very easy)", minimum=1.0, maximum=7.0),
        Field(
            "emotion", FieldType.INTEGER, "-3..+3 how it made them feel", minimum=-3.0, maximum=3.0
        ),
        Field("text", FieldType.TEXT, "free text"),
    ),
)

OPERATIONAL_EVENTS = RecordKind(
    name="operational_events",
    id_field="event_id",
    description="What departments did inside the company (stock-outs, billing errors, ...).",
    time_field="started_at",
    fields=(
        Field("event_id", FieldType.STRING, "unique id", required=True),
        Field(
            "department",
            FieldType.STRING,
            "who inside the company",
            required=True,
            vocabulary=Vocabulary.DEPARTMENT,
            lowercase=True,
        ),
        Field(
            "kind",
            FieldType.STRING,
            "e.g. stockout, billing_error, carrier_change",
            required=True,
            lowercase=True,
        ),
        Field("started_at", FieldType.TIMESTAMP, "start", required=True),
        Field("ended_at", FieldType.TIMESTAMP, "end; open-ended if absent"),
        Field(
            "touchpoints",
            FieldType.KEY_LIST,
            "';'-separated touch point keys it may affect",
            vocabulary=Vocabulary.TOUCHPOINT,
        ),
        Field("region", FieldType.STRING, "scope"),
        Field("description", FieldType.TEXT, "what happened"),
    ),
)

MARKET_EVENTS = RecordKind(
    name="market_events",
    id_field="event_id",
    description="Things outside the company that move expectations.",
    time_field="occurred_at",
    fields=(
        Field("event_id", FieldType.STRING, "unique id", required=True),
        Field("occurred_at", FieldType.TIMESTAMP, "when", required=True),
        Field(
            "kind",
            FieldType.STRING,
            "competitor_move, innovation, campaign or other",
            required=True,
            choices=MARKET_EVENT_KINDS,
            lowercase=True,
        ),
        Field(
            "touchpoints",
            FieldType.KEY_LIST,
            "';'-separated touch point keys",
            vocabulary=Vocabulary.TOUCHPOINT,
        ),
        Field("description", FieldType.TEXT, "what happened"),
    ),
)

EMPLOYEE_PREDICTIONS = RecordKind(
    name="employee_predictions",
    id_field="prediction_id",
    description="What staff believe customers experience, to compare with what customers say.",
    fields=(
        Field("prediction_id", FieldType.STRING, "unique id", required=True),
        Field(
            "department",
            FieldType.STRING,
            "department",
            required=True,
            vocabulary=Vocabulary.DEPARTMENT,
            lowercase=True,
        ),
        Field(
            "touchpoint",
            FieldType.STRING,
            "touch point key",
            required=True,
            vocabulary=Vocabulary.TOUCHPOINT,
        ),
        Field("period", FieldType.PERIOD, "month, YYYY-MM", required=True),
        Field(
            "predicted_experience",
            FieldType.NUMBER,
            "0-10",
            required=True,
            minimum=0.0,
            maximum=10.0,
        ),
    ),
)

KINDS: dict[str, RecordKind] = {
    k.name: k
    for k in (
        PEOPLE,
        INTERACTIONS,
        FEEDBACK,
        OPERATIONAL_EVENTS,
        MARKET_EVENTS,
        EMPLOYEE_PREDICTIONS,
    )
}


def get_kind(name: str) -> RecordKind:
    """The record kind called ``name``; a clear error listing the kinds when it is unknown."""
    from corridor.errors import UnknownKindError

    try:
        return KINDS[name]
    except KeyError:
        raise UnknownKindError(
            f"unknown record kind {name!r}; allowed: {', '.join(KINDS)}"
        ) from None
