"""Request and reply bodies of the rules and cases API (:mod:`corridor.api.routes.cases`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from corridor.loop.rule_params import DURATION, STRICT, Name, Names, RuleDefinition
from corridor.loop.rule_params import option as _option
from corridor.loop.rule_params import printable as _printable
from corridor.loop.rules import Rule

Priority = Literal["low", "normal", "high", "urgent"]
State = Literal["new", "open", "pending", "resolved", "closed"]
Kind = Literal[
    "detractor", "score_below", "broken_promise", "text", "churn_jump", "threshold", "change",
    "drift", "ripple", "forecast",
]  # fmt: skip
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WORKWEEK: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri")


class RuleScope(BaseModel):
    """Values the rule is limited to (empty: no limit)."""

    model_config = STRICT

    touchpoint: Names | None = None
    department: Names | None = None
    partner: Names | None = None
    segment: Names | None = None
    region: Names | None = None


class RuleIn(BaseModel):
    model_config = STRICT

    rule_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="the rule's id: 1-64 letters, digits, '.', '_' or '-'",
        examples=["detractors"],
    )
    kind: Kind = Field(description="what the rule watches (see docs/closed-loop.md)")
    name: Name | None = _option("a title (default: the rule in words)")
    definition: RuleDefinition = Field(default_factory=lambda: RuleDefinition())
    scope: RuleScope = Field(default_factory=lambda: RuleScope())
    cooldown: str | None = _option(
        "the same subject is not alerted twice within it: "
        "seconds, or a number with s, m, h, d or w (default 7d; drift 90d)",
        pattern=DURATION,
        examples=["7d"],
    )
    priority: Priority = Field(default="normal", description="the priority of its cases")
    team: Name | None = _option("a named team that owns its cases")
    sla_policy: Name | None = _option("the SLA policy of its cases")
    reopen_unverified: bool = Field(
        False, description="reopen a resolved case when verification finds the gap still open"
    )


class RuleOut(BaseModel):
    rule_id: str
    name: str
    family: Literal["record", "aggregate"]
    kind: Kind
    definition: dict[str, Any]
    scope: dict[str, list[str]]
    cooldown_s: int
    priority: Priority
    team: str | None
    sla_policy: str | None
    reopen_unverified: bool
    enabled: bool
    created_at: datetime | None
    created_by: str | None
    disabled_at: datetime | None
    evaluated_at: datetime | None = Field(description="aggregate rules: the last scheduled run")
    description: str = Field(description="the rule in words")

    @classmethod
    def of(cls, rule: Rule) -> RuleOut:
        return cls(**rule.as_dict())


class _AlertFields(BaseModel):
    """What an alert and a dry run's hit share."""

    rule_id: str
    subject: str = Field(description="what de-duplication keys on")
    occurred_at: datetime = Field(description="when what fired it happened")
    summary: str
    record_kind: str | None
    record_id: str | None
    person_id: str | None
    touchpoint: str | None
    department: str | None
    partner_id: str | None
    region: str | None
    segment: str | None


class HitOut(_AlertFields):
    """An alert (fired, or one a dry run would fire)."""

    event_id: str | None = _option("an operational event it is about")
    evidence: dict[str, Any] = Field(description="the record or analysis row that fired it")


class RuleTestOut(BaseModel):
    rule: RuleOut
    since: datetime | None
    until: datetime | None
    n: int = Field(description="alerts it would have fired (after de-duplication)")
    alerts: list[HitOut] = Field(description="the first ones, by time")
    truncated: bool


class Owner(BaseModel):
    kind: Literal["team", "partner", "department", "unrouted"]
    name: str | None


class SlaState(BaseModel):
    clock: Literal["first_response", "resolution"]
    status: Literal["on time", "due soon", "breached", "paused", "met"]
    due: datetime | None


class CaseOut(BaseModel):
    case_id: str
    title: str
    rule_id: str | None
    state: State
    priority: Priority
    assignee: str | None
    department: str | None
    partner_id: str | None
    team: str | None
    touchpoint: str | None
    person_id: str | None
    region: str | None
    segment: str | None
    opened_at: datetime
    updated_at: datetime
    last_alert_at: datetime | None
    alerts: int = Field(description="alerts that opened or joined it")
    sla_policy: str
    first_response_due: datetime | None
    resolution_due: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    paused_at: datetime | None = Field(description="set while the SLA clocks are stopped")
    paused_minutes: float = Field(description="business minutes spent with clocks stopped")
    first_response_breached_at: datetime | None
    resolution_breached_at: datetime | None
    escalation_level: int
    root_cause: str | None
    root_cause_event: str | None = Field(description="an operational event named as the cause")
    verification: Literal["pending", "verified", "not_verified", "too_early"] | None
    verify_after: datetime | None
    verified_at: datetime | None
    verification_detail: dict[str, Any] | None
    owner: Owner
    sla: SlaState


class CaseEventOut(BaseModel):
    event_id: str
    seq: int
    changed_at: datetime
    actor: str
    action: str = Field(examples=["opened", "assigned", "state", "note", "breached"])
    field: str | None
    old_value: str | None
    new_value: str | None
    note: str | None


class AlertOut(_AlertFields):
    alert_id: str
    fired_at: datetime
    evidence: dict[str, Any] | None


class CaseDetail(CaseOut):
    history: list[CaseEventOut] = Field(description="who changed what, when, in order")
    alerts_fired: list[AlertOut] = Field(description="the alerts behind the case")


class CaseList(BaseModel):
    total: int = Field(description="cases matching, in your scope")
    limit: int
    offset: int
    cases: list[CaseOut]


class CaseReportRow(BaseModel):
    group: str | None = Field(description="the department (partner, team...); null: none")
    opened: int = Field(description="cases opened in the time range")
    open_now: int = Field(description="of those, still new, open or pending")
    first_response_n: int
    first_response_median_min: float | None = Field(description="business minutes")
    first_response_p90_min: float | None = Field(description="business minutes")
    resolved_n: int
    resolution_median_min: float | None = Field(
        description="business minutes, time with clocks stopped left out"
    )
    resolution_p90_min: float | None
    breached: int = Field(description="cases with a breached SLA clock")
    breached_share: float
    verification_decided: int = Field(description="verified or not verified")
    verified: int
    verified_share: float | None
    verified_share_low: float | None = Field(description="Wilson interval")
    verified_share_high: float | None


class CaseReport(BaseModel):
    by: Literal["department", "partner_id", "team", "touchpoint", "rule_id"]
    since: datetime | None
    until: datetime | None
    rows: list[CaseReportRow]


class AssignIn(BaseModel):
    model_config = STRICT
    assignee: Name | None = Field(description="a username; null: back to the owner's queue")


class NoteIn(BaseModel):
    model_config = STRICT
    text: Annotated[str, Field(min_length=1, max_length=10_000), AfterValidator(_printable)]


class StateIn(BaseModel):
    model_config = STRICT
    state: State
    root_cause: Name | None = _option("required to resolve: a configured key")
    root_cause_event: Name | None = _option("an operational event id")
    note: Annotated[str, Field(max_length=10_000), AfterValidator(_printable)] | None = None


class PriorityIn(BaseModel):
    model_config = STRICT
    priority: Priority


class RootCause(BaseModel):
    model_config = STRICT
    key: Name
    label: Name


class TargetDoc(BaseModel):
    model_config = STRICT
    first_response_minutes: float = Field(gt=0, le=10**7)
    resolution_minutes: float = Field(gt=0, le=10**7)


class CalendarDoc(BaseModel):
    model_config = STRICT
    timezone: Name = "UTC"
    days: list[Day] = Field(default_factory=lambda: list(WORKWEEK))
    hours: str = Field(
        default="09:00-17:00",
        pattern=r"^(\d{2}:\d{2}-\d{2}:\d{2}|24/7)$",
        description="working hours HH:MM-HH:MM, or 24/7",
    )
    holidays: Name | None = _option("public holidays of this country (ISO code)")
    subdivision: Name | None = _option("and of this subdivision (state, region)")
    closed: list[date] = Field(default_factory=list, max_length=1000)


class PolicyIn(BaseModel):
    model_config = STRICT
    calendar: CalendarDoc = Field(default_factory=lambda: CalendarDoc())
    targets: dict[Priority, TargetDoc] = Field(
        default_factory=dict, description="business minutes per priority (others: defaults)"
    )


class PolicyOut(PolicyIn):
    model_config = ConfigDict(extra="ignore")
    name: str


__all__ = [
    "AlertOut",
    "AssignIn",
    "CaseDetail",
    "CaseEventOut",
    "CaseList",
    "CaseOut",
    "CaseReport",
    "CaseReportRow",
    "HitOut",
    "NoteIn",
    "PolicyIn",
    "PolicyOut",
    "PriorityIn",
    "RootCause",
    "RuleIn",
    "RuleOut",
    "RuleTestOut",
    "StateIn",
]
