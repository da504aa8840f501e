"""Survey invitations, their triggers and the contact-frequency rules, for admins and analysts.

``POST|GET /api/v1/surveys/{survey_id}/triggers`` (and ``…/triggers/{trigger_id}/disable``):
invite after each interaction at a touch point or each resolved case; ``POST|GET
/api/v1/surveys/{survey_id}/invitations``: invite a list of people, list the invitations (state
and, when held, the rule and reason); ``GET|POST /api/v1/contact-rules`` and ``DELETE
/api/v1/contact-rules/{rule_id}``: the rules every invitation is checked against. The server's
``surveys.invitations`` job sends what is due (:mod:`corridor.surveys.invitations`). The
``corridor surveys`` commands call these when a running server holds an embedded store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from corridor.api.declare import RouteDeclarer
from corridor.api.deps import StoreDep, WriterScopeDep
from corridor.surveys import contact, invitations

router = APIRouter(prefix="/api/v1", tags=["surveys"])
#: a route for admins and analysts: 401, 403, its own errors, and 422 for a query parameter it
#: does not take
_route = RouteDeclarer(router, (401, 403))
SurveyId = Annotated[str, Path(description="the survey's id", max_length=64)]
Duration = Annotated[
    str, Field(max_length=20, pattern=r"^\d+(\.\d+)?[smhdw]?$", description="e.g. 2h, 3d")
]


class TriggerIn(BaseModel):
    kind: Literal["interaction", "case_resolved"] = Field(
        description="interaction: after each interaction at touchpoint; case_resolved: the "
        "customer of each resolved case (the recovery survey)"
    )
    touchpoint: str | None = Field(
        default=None, max_length=64, description="interaction triggers (default: the survey's only)"
    )
    delay: Duration = Field(default="1h", description="how long after the interaction or case")
    remind: Duration | None = Field(
        default=None, description="one reminder this long after, when unanswered"
    )


class TriggerOut(BaseModel):
    trigger_id: str
    survey_id: str
    kind: str
    touchpoint: str | None
    delay_s: int
    remind_s: int | None
    channel: str
    enabled: bool
    created_at: datetime
    created_by: str | None


class InviteIn(BaseModel):
    people: list[Annotated[str, Field(max_length=256)]] = Field(
        min_length=1, max_length=10_000, description="person ids (each invited once)"
    )
    remind: Duration | None = Field(default=None, description="one reminder this long after")
    at: datetime | None = Field(default=None, description="when to send (default: now)")


class Invited(BaseModel):
    invited: int = Field(description="invitations made (the contact rules apply when sent)")


class InvitationOut(BaseModel):
    invitation_id: str
    survey_id: str
    trigger_id: str | None
    person_id: str
    interaction_id: str | None
    case_id: str | None
    touchpoint: str | None
    channel: str
    created_at: datetime
    due_at: datetime
    state: str = Field(description="scheduled, held, sent, answered or failed")
    held_rule: str | None = Field(description="the contact rule that held it back")
    held_reason: str | None = Field(description="why, in words")
    link_id: str | None
    sent_at: datetime | None
    remind_s: int | None
    remind_at: datetime | None
    reminded_at: datetime | None
    answered_at: datetime | None
    error: str | None


class ContactRuleIn(BaseModel):
    kind: Literal["max_per_period", "min_gap", "exclude", "open_case", "recent_complaint"]
    rule_id: str | None = Field(default=None, max_length=64)
    count: int | None = Field(default=None, ge=1, le=1000, description="max_per_period")
    period: Duration | None = Field(
        default=None, description="max_per_period, min_gap, recent_complaint"
    )
    field: str | None = Field(
        default=None, max_length=80, description="exclude: segment, region or attributes.<key>"
    )
    values: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=200, description="exclude: the values excluded"
    )


class ContactRuleOut(BaseModel):
    rule_id: str
    kind: str
    definition: dict[str, Any]
    enabled: bool
    created_at: datetime | None
    created_by: str | None
    description: str


@_route(
    "POST",
    "/surveys/{survey_id}/triggers",
    "Invite after each interaction at a touch point, or each resolved case",
    TriggerOut,
    404,
    status_code=201,
    operation_id="add_survey_trigger",
)
async def add_trigger(
    survey_id: SurveyId, body: TriggerIn, store: StoreDep, scope: WriterScopeDep
) -> TriggerOut:
    def add() -> invitations.Trigger:
        return invitations.add_trigger(
            store, survey_id, body.kind, touchpoint=body.touchpoint, delay=body.delay,
            remind=body.remind, by=scope.principal.username,
        )  # fmt: skip

    return TriggerOut(**(await anyio.to_thread.run_sync(add)).as_dict())


@_route(
    "GET",
    "/surveys/{survey_id}/triggers",
    "A survey's triggers",
    list[TriggerOut],
    operation_id="list_survey_triggers",
)
async def list_triggers(
    survey_id: SurveyId, store: StoreDep, scope: WriterScopeDep
) -> list[TriggerOut]:
    found = await anyio.to_thread.run_sync(invitations.list_triggers, store, survey_id)
    return [TriggerOut(**t.as_dict()) for t in found]


@_route(
    "POST",
    "/surveys/{survey_id}/triggers/{trigger_id}/disable",
    "Stop a trigger (its invitations already made stay)",
    list[TriggerOut],
    404,
    operation_id="disable_survey_trigger",
)
async def disable_trigger(
    survey_id: SurveyId,
    trigger_id: Annotated[str, Path(max_length=64)],
    store: StoreDep,
    scope: WriterScopeDep,
) -> list[TriggerOut]:
    await anyio.to_thread.run_sync(invitations.remove_trigger, store, trigger_id, survey_id)
    found = await anyio.to_thread.run_sync(invitations.list_triggers, store, survey_id)
    return [TriggerOut(**t.as_dict()) for t in found]


@_route(
    "POST",
    "/surveys/{survey_id}/invitations",
    "Invite a list of people (sent by the server's surveys.invitations job)",
    Invited,
    404,
    status_code=201,
    operation_id="invite_to_survey",
)
async def invite(
    survey_id: SurveyId, body: InviteIn, store: StoreDep, scope: WriterScopeDep
) -> Invited:
    def make() -> int:
        return invitations.invite(store, survey_id, body.people, at=body.at, remind=body.remind)

    return Invited(invited=await anyio.to_thread.run_sync(make))


@_route(
    "GET",
    "/surveys/{survey_id}/invitations",
    "A survey's invitations, newest first (held ones with the rule and reason)",
    list[InvitationOut],
    query=("state", "limit"),
    operation_id="list_survey_invitations",
)
async def list_invitations(
    survey_id: SurveyId,
    store: StoreDep,
    scope: WriterScopeDep,
    state: Annotated[
        Literal["scheduled", "held", "sent", "answered", "failed"] | None, Query()
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[InvitationOut]:
    def read() -> list[invitations.Invitation]:
        return invitations.list_invitations(store, survey_id=survey_id, state=state, limit=limit)

    return [InvitationOut(**i.as_dict()) for i in await anyio.to_thread.run_sync(read)]


@_route(
    "GET",
    "/contact-rules",
    "The contact-frequency rules every invitation is checked against",
    list[ContactRuleOut],
)
async def list_contact_rules(store: StoreDep, scope: WriterScopeDep) -> list[ContactRuleOut]:
    found = await anyio.to_thread.run_sync(contact.list_rules, store)
    return [ContactRuleOut(**r.as_dict()) for r in found]


@_route("POST", "/contact-rules", "Add a contact-frequency rule", ContactRuleOut, status_code=201)
async def add_contact_rule(
    body: ContactRuleIn, store: StoreDep, scope: WriterScopeDep
) -> ContactRuleOut:
    def add() -> contact.ContactRule:
        rule = contact.build(
            body.kind, rule_id=body.rule_id, count=body.count, period=body.period,
            field_name=body.field, values=body.values,
        )  # fmt: skip
        return contact.add(store, rule, by=scope.principal.username)

    return ContactRuleOut(**(await anyio.to_thread.run_sync(add)).as_dict())


@_route(
    "DELETE",
    "/contact-rules/{rule_id}",
    "Remove a contact-frequency rule",
    None,
    404,
    status_code=204,
)
async def remove_contact_rule(
    rule_id: Annotated[str, Path(max_length=64)], store: StoreDep, scope: WriterScopeDep
) -> None:
    await anyio.to_thread.run_sync(contact.remove, store, rule_id)


__all__ = ["router"]
