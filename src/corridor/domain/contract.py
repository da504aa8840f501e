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


# the fields several kinds declare alike
def _unique_id(name: str) -> Field:
    return Field(name, FieldType.STRING, "unique id", required=True)


def _text(name: str, description: str) -> Field:
    return Field(name, FieldType.TEXT, description)


def _label(name: str, description: str, *, required: bool = False) -> Field:
    """A free label, stored lowercase (``outcome``, an event's ``kind``)."""
    return Field(name, FieldType.STRING, description, required=required, lowercase=True)


def _choice(name: str, description: str, choices: tuple[str, ...]) -> Field:
    """A required value out of a fixed list, matched lowercase."""
    return Field(
        name, FieldType.STRING, description, required=True, choices=choices, lowercase=True
    )


def _scale(
    name: str,
    description: str,
    low: float,
    high: float,
    *,
    field_type: FieldType = FieldType.NUMBER,
    required: bool = False,
) -> Field:
    """A score between ``low`` and ``high``."""
    return Field(name, field_type, description, required=required, minimum=low, maximum=high)


def _touchpoint(description: str, *, required: bool = False) -> Field:
    """A touch point key of the corridor map."""
    return Field(
        "touchpoint", FieldType.STRING, description, required=required,
        vocabulary=Vocabulary.TOUCHPOINT,
    )  # fmt: skip


def _touchpoints(description: str) -> Field:
    """';'-separated touch point keys of the corridor map."""
    return Field("touchpoints", FieldType.KEY_LIST, description, vocabulary=Vocabulary.TOUCHPOINT)


def _in_map(name: str, description: str, vocabulary: Vocabulary) -> Field:
    """A required channel or department of the corridor map, matched lowercase."""
    return Field(
        name, FieldType.STRING, description, required=True, vocabulary=vocabulary, lowercase=True
    )


PEOPLE = RecordKind(
    name="people",
    id_field="person_id",
    description="Customers and prospects, with the identities that resolve them to one person.",
    has_person=True,
    upsert=True,
    time_field="created_at",
    fields=(
        Field("person_id", FieldType.STRING, "sender's id", required=True),
        _choice("kind", "customer or prospect", PERSON_KINDS),
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
        _unique_id("interaction_id"),
        Field("person_id", FieldType.STRING, "sender's person id (or give an identity column)"),
        Field("occurred_at", FieldType.TIMESTAMP, "when", required=True),
        _touchpoint("touch point key from the corridor map", required=True),
        _in_map("channel", "channel", Vocabulary.CHANNEL),
        Field("partner_id", FieldType.STRING, "partner that delivered it for the brand"),
        Field("agent_id", FieldType.STRING, "employee or partner agent who handled it"),
        _label("outcome", "e.g. purchase, abandon, resolved, cancel"),
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
        _unique_id("feedback_id"),
        Field("person_id", FieldType.STRING, "absent for anonymous reviews"),
        Field("occurred_at", FieldType.TIMESTAMP, "when given", required=True),
        _touchpoint("touch point key from the corridor map"),
        Field("interaction_id", FieldType.STRING, "the interaction it is about"),
        Field("partner_id", FieldType.STRING, "partner that delivered it for the brand"),
        _choice("source", "survey, review, social, transcript or field_note", FEEDBACK_SOURCES),
        _scale("expectation", "0-10: what the customer expected", 0.0, 10.0),
        _scale("experience", "0-10: what the customer experienced", 0.0, 10.0),
        _scale("nps", "0-10 likelihood to recommend", 0.0, 10.0, field_type=FieldType.INTEGER),
        _scale("csat", "1-5 satisfaction", 1.0, 5.0, field_type=FieldType.INTEGER),
        _scale("ces", "1-7 ease (7 = very easy)", 1.0, 7.0, field_type=FieldType.INTEGER),
        _scale("emotion", "-3..+3 how it made them feel", -3.0, 3.0, field_type=FieldType.INTEGER),
        _text("text", "free text"),
    ),
)

OPERATIONAL_EVENTS = RecordKind(
    name="operational_events",
    id_field="event_id",
    description="What departments did inside the company (stock-outs, billing errors, ...).",
    time_field="started_at",
    fields=(
        _unique_id("event_id"),
        _in_map("department", "who inside the company", Vocabulary.DEPARTMENT),
        _label("kind", "e.g. stockout, billing_error, carrier_change", required=True),
        Field("started_at", FieldType.TIMESTAMP, "start", required=True),
        Field("ended_at", FieldType.TIMESTAMP, "end; open-ended if absent"),
        _touchpoints("';'-separated touch point keys it may affect"),
        Field("region", FieldType.STRING, "scope"),
        _text("description", "what happened"),
    ),
)

MARKET_EVENTS = RecordKind(
    name="market_events",
    id_field="event_id",
    description="Things outside the company that move expectations.",
    time_field="occurred_at",
    fields=(
        _unique_id("event_id"),
        Field("occurred_at", FieldType.TIMESTAMP, "when", required=True),
        _choice("kind", "competitor_move, innovation, campaign or other", MARKET_EVENT_KINDS),
        _touchpoints("';'-separated touch point keys"),
        _text("description", "what happened"),
    ),
)

EMPLOYEE_PREDICTIONS = RecordKind(
    name="employee_predictions",
    id_field="prediction_id",
    description="What staff believe customers experience, to compare with what customers say.",
    fields=(
        _unique_id("prediction_id"),
        _in_map("department", "department", Vocabulary.DEPARTMENT),
        _touchpoint("touch point key", required=True),
        Field("period", FieldType.PERIOD, "month, YYYY-MM", required=True),
        _scale("predicted_experience", "0-10", 0.0, 10.0, required=True),
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
