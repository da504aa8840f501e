"""What the API says in its OpenAPI document: record models per kind (generated from the
contract, for documentation only: validation is the contract's, vectorised) and reply models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from corridor.domain.contract import KINDS, FieldType, RecordKind
from corridor.store.people_search import MIN_PARTIAL

_PY: dict[FieldType, Any] = {
    FieldType.STRING: str,
    FieldType.TEXT: str,
    FieldType.KEY_LIST: str,
    FieldType.PERIOD: str,
    FieldType.TIMESTAMP: datetime,
    FieldType.NUMBER: float,
    FieldType.INTEGER: int,
}

_NAMES = {
    "people": "PersonRecord",
    "interactions": "InteractionRecord",
    "feedback": "FeedbackRecord",
    "operational_events": "OperationalEventRecord",
    "market_events": "MarketEventRecord",
    "employee_predictions": "EmployeePredictionRecord",
}

EXAMPLES: dict[str, dict[str, Any]] = {
    "people": {
        "person_id": "c-1001",
        "kind": "customer",
        "segment": "premium",
        "region": "north",
        "email": "ana@example.com",
    },
    "interactions": {
        "interaction_id": "i-50001",
        "person_id": "c-1001",
        "occurred_at": "2025-03-01T14:30:00Z",
        "touchpoint": "checkout",
        "channel": "web",
        "outcome": "purchase",
        "value": 59.9,
        "duration_minutes": 4.5,
        "basket_size": 3,
    },
    "feedback": {
        "feedback_id": "f-9001",
        "person_id": "c-1001",
        "occurred_at": "2025-03-02T09:00:00Z",
        "touchpoint": "checkout",
        "interaction_id": "i-50001",
        "source": "survey",
        "expectation": 8,
        "experience": 6,
        "nps": 7,
        "text": "Checkout took longer than promised.",
    },
    "operational_events": {
        "event_id": "op-17",
        "department": "inventory",
        "kind": "stockout",
        "started_at": "2025-03-01T00:00:00Z",
        "ended_at": "2025-03-04T00:00:00Z",
        "touchpoints": "checkout;home_delivery",
    },
    "market_events": {
        "event_id": "mk-3",
        "occurred_at": "2025-02-15T00:00:00Z",
        "kind": "competitor_move",
        "touchpoints": "home_delivery",
        "description": "A competitor now delivers next day for free.",
    },
    "employee_predictions": {
        "prediction_id": "ep-1",
        "department": "ecommerce",
        "touchpoint": "checkout",
        "period": "2025-03",
        "predicted_experience": 8.5,
    },
}


def _description(kind: RecordKind, name: str) -> str:
    f = kind.get(name)
    text = f.description
    if f.choices:
        text += f" (one of: {', '.join(f.choices)})"
    if f.vocabulary is not None:
        text += f" (must be a {f.vocabulary.value} known to the loaded corridor map)"
    if f.identity:
        text += "; records that share it resolve to one person"
    return text


def record_model(kind: RecordKind) -> type[BaseModel]:
    """A pydantic model of one record of ``kind``, for the OpenAPI document."""
    fields: dict[str, Any] = {}
    for f in kind.fields:
        kw: dict[str, Any] = {"description": _description(kind, f.name)}
        if f.minimum is not None:
            kw["ge"] = f.minimum
        if f.maximum is not None:
            kw["le"] = f.maximum
        if f.type is FieldType.PERIOD:
            kw["pattern"] = r"^\d{4}-(0[1-9]|1[0-2])$"
        t = _PY[f.type]
        fields[f.name] = (t, Field(..., **kw)) if f.required else (t | None, Field(None, **kw))
    fields["attributes"] = (
        dict[str, Any] | None,
        Field(
            None,
            description="free-form attributes; merged with any other field not in the "
            "contract (every unknown field is kept as an attribute)",
        ),
    )
    doc = kind.description
    if kind.person_required:
        doc += " Name the person with person_id or one identity (email, phone, device_id, crm_id)."
    if kind.upsert:
        doc += " A later record with the same id updates the earlier one."
    else:
        doc += " A record whose id is already stored is not stored again (idempotent retries)."
    model: type[BaseModel] = create_model(
        _NAMES.get(kind.name, kind.name.title().replace("_", "") + "Record"),
        __config__=ConfigDict(
            extra="allow",
            json_schema_extra={"examples": [EXAMPLES[kind.name]]}
            if kind.name in EXAMPLES
            else None,
        ),
        __doc__=doc,
        **fields,
    )
    return model


RECORD_MODELS: dict[str, type[BaseModel]] = {name: record_model(k) for name, k in KINDS.items()}


# -- replies --------------------------------------------------------------------------------
class RejectionOut(BaseModel):
    item: int = Field(description="1-based item number: array position, or NDJSON line number")
    id: str | None = Field(description="the record's id, when it had one")
    field: str = Field(description="the field at fault, or '(record)' for the item as a whole")
    reason: str = Field(description="why, and what to send instead")


class MergeOut(BaseModel):
    from_person: str
    into_person: str
    id_type: str | None
    record_id: str | None


class IngestReply(BaseModel):
    """What happened to every item of one ingest request.

    Status 200: at least one record was accepted, or nothing was wrong (an empty array).
    Status 422: nothing was accepted and something was rejected. Same shape either way.
    ``received = accepted + rejected``; ``accepted = inserted + duplicates``. A 2xx reply
    means the accepted records are committed.
    """

    kind: str
    received: int = Field(description="items in the request, good and bad")
    accepted: int = Field(description="valid records, now stored (new plus already stored)")
    inserted: int = Field(description="of the accepted, how many were new")
    duplicates: int = Field(
        description="of the accepted, how many were already stored or repeated in the batch"
    )
    rejected: int = Field(description="items not stored; each is listed in errors")
    errors: list[RejectionOut] = Field(description="one entry per problem, in item order")
    errors_truncated: bool = Field(
        description="true when more problems were found than listed (CORRIDOR_MAX_ERRORS_REPORTED)"
    )
    merges: list[MergeOut] = Field(
        description="persons merged because a record linked them through a shared identity"
    )


class IdentityOut(BaseModel):
    id_type: str
    id_value: str
    person_id: str
    first_seen_at: datetime | None


class PersonMergeOut(BaseModel):
    from_person: str
    into_person: str
    id_type: str | None
    id_value: str | None
    merged_at: datetime | None
    record_kind: str | None
    record_id: str | None


class PersonOut(BaseModel):
    person_id: str
    kind: str
    segment: str | None
    region: str | None
    created_at: datetime | None
    first_seen_at: datetime | None
    attributes: dict[str, Any] | None


class PersonView(BaseModel):
    """One person, the canonical person it resolves to, and the whole merged group."""

    person: PersonOut
    canonical_id: str = Field(description="the person this one's history is merged into")
    merged: bool = Field(description="true when this person was merged into another")
    members: list[str] = Field(description="every person id merged into the same canonical")
    identities: list[IdentityOut]
    merges: list[PersonMergeOut] = Field(description="the merges that formed the group")
    interactions: int = Field(description="interactions of the whole group")
    feedback: int = Field(description="feedback of the whole group")


class PersonFound(BaseModel):
    """One person group a search found (identities masked for scoped roles)."""

    person_id: str = Field(description="the canonical person: open its timeline with this id")
    kind: str
    segment: str | None
    region: str | None
    matched: Literal["person_id", "email", "phone", "crm_id", "device_id"] = Field(
        description="what matched the query"
    )
    matched_value: str = Field(description="the value that matched")
    match: Literal["whole", "start", "part", "anywhere"] = Field(
        description="how: the whole value, its start, its end or the start of a part of it "
        "(a phone's last digits, the surname in an e-mail), or anywhere; results are ranked so"
    )
    email: str | None = Field(description="the matched e-mail, else the person's first")
    phone: str | None = Field(description="the matched phone, else the person's first")
    last_activity: datetime | None = Field(
        description="the latest interaction or feedback (of those the caller may see)"
    )
    interactions: int = Field(description="interactions of the group the caller may see")
    feedback: int = Field(description="feedback of the group the caller may see")


class PeopleFound(BaseModel):
    """The people matching a search, best match first."""

    query: str
    people: list[PersonFound]
    more: bool = Field(description="more people matched than were returned: refine the query")
    limit: int
    partial: bool = Field(
        description=f"whether the query was long enough (at least {MIN_PARTIAL} characters) to "
        "match anywhere in a value; shorter ones match whole values and their starts"
    )


class StoreInfo(BaseModel):
    url: str = Field(description="store URL, password redacted")
    engine: str
    schema_version: int


class MapInfo(BaseModel):
    loaded: bool
    stages: int
    touchpoints: int
    promises: int


class ModelInfo(BaseModel):
    """How one of the per-person models (churn risk, lifetime value) stands in this server."""

    status: Literal["not_fitted", "fitting", "ready", "failed"] = Field(
        description="not_fitted (no fit yet), fitting (in progress; a kept older model, if "
        "any, is still served), ready, failed (the latest fit; retried, the log says why)"
    )
    fitted_at: datetime | None = Field(None, description="when the kept model was fitted")
    took_s: float | None = Field(None, description="seconds the latest finished fit took")
    fitting_started_at: datetime | None = Field(
        None, description="status fitting: when the fit in progress started"
    )
    ready_in_s: float | None = Field(
        None, description="status fitting: seconds until it should be done (0: any moment)"
    )


class JobInfo(BaseModel):
    """One of the scheduler's jobs (``corridor jobs list`` says more)."""

    name: str = Field(examples=["outbox.dispatch"])
    last_status: Literal["ok", "failed"] | None = Field(
        None, description="how its latest run ended; null before the first run"
    )
    last_finished_at: datetime | None = None
    next_run_at: datetime
    overdue: bool = Field(
        description="its next run is more than a minute late (no server is running it?)"
    )


class Health(BaseModel):
    status: str
    version: str
    store: StoreInfo
    corridor_map: MapInfo
    counts: dict[str, int]
    counts_estimated: list[str] = Field(
        default_factory=list,
        description="the tables of `counts` whose count is the engine's estimate (PostgreSQL "
        "tables over 64 MiB, from the server's statistics), not an exact count",
    )
    models: dict[str, ModelInfo] = Field(
        default_factory=dict,
        description="the churn_risk and lifetime models the customer pages and the person "
        "routes read",
    )
    jobs: list[JobInfo] = Field(
        default_factory=list, description="the scheduler's jobs: last outcome, next run"
    )
    rollup_pending: int = Field(
        default=0,
        description="new feedback records waiting for the rollup's background fold (usually "
        "0, or the last second's batches); every answer counts them already",
    )


class MapLoaded(BaseModel):
    version: int = Field(description="version number of the map now in force")
    stages: int
    touchpoints: int
    promises: int
