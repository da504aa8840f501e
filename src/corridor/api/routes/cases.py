"""Alert rules and cases: ``/api/v1/rules``, ``/api/v1/cases``, a customer's open cases, the
root causes and the SLA policies.

Rules: every role but agent lists them and runs a dry run (``GET /rules/{rule_id}/test``: what
the rule would have fired on past data, within the user's scope; nothing is written); admins
and analysts add and disable them. Cases: each user sees and works the cases of their scope
(:meth:`~corridor.auth.scope.Scope.sees_case`): a case outside it is 404, exactly as an unknown
id, for reading and changing alike; an agent sees the open cases of a customer, read only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from corridor.analytics.core.dimensions import check_time
from corridor.analytics.core.registry import TIME_PATTERN
from corridor.api.declare import RouteDeclarer
from corridor.api.deps import AnalystScopeDep, ScopeDep, StoreDep, WriterScopeDep
from corridor.api.routes.case_models import (
    AssignIn,
    CaseDetail,
    CaseList,
    CaseOut,
    CaseReport,
    CaseReportRow,
    HitOut,
    NoteIn,
    PolicyIn,
    PolicyOut,
    PriorityIn,
    RootCause,
    RuleIn,
    RuleOut,
    RuleTestOut,
    StateIn,
)
from corridor.loop import casejobs, cases, reports, rules, sla
from corridor.loop.dryrun import dry_run

router = APIRouter(prefix="/api/v1", tags=["rules and cases"])
assert casejobs  # importing it registers the scheduled jobs of rules and cases

RuleId = Annotated[str, Path(description="the rule's id", max_length=64)]
CaseId = Annotated[str, Path(description="the case's id", max_length=64)]
Time = Annotated[str | None, Query(pattern=TIME_PATTERN, description="ISO-8601 date or time")]
MAX_TEST_ALERTS = 500


#: a route: 401, its own errors and, for a GET, 422 for a query parameter not in ``query``
_route = RouteDeclarer(router, (401,), refuse_query="GET")


# -- rules ------------------------------------------------------------------------------------
@_route("GET", "/rules", "List alert rules", list[RuleOut], 403)
def list_rules(store: StoreDep, scope: AnalystScopeDep) -> list[RuleOut]:
    """Every alert rule, enabled and disabled, by id."""
    return [RuleOut.of(r) for r in rules.list_rules(store)]


@_route("POST", "/rules", "Add an alert rule", RuleOut, 403, 422, status_code=201)
def add_rule(body: RuleIn, store: StoreDep, scope: WriterScopeDep) -> RuleOut:
    """Add a rule (admins and analysts). Record rules fire on every batch committed from now
    on; aggregate rules at the next scheduled run (``rules.evaluate``)."""
    rule = rules.Rule(
        rule_id=body.rule_id,
        kind=body.kind,
        definition=body.definition.model_dump(exclude_none=True),
        scope=body.scope.model_dump(exclude_none=True),
        name=body.name or "",
        cooldown_s=rules.parse_duration(body.cooldown) if body.cooldown else None,
        priority=body.priority,
        team=body.team,
        sla_policy=body.sla_policy,
        reopen_unverified=body.reopen_unverified,
    )
    return RuleOut.of(rules.add_rule(store, rule, actor=scope.principal.username))


@_route("GET", "/rules/{rule_id}", "One alert rule", RuleOut, 403, 404)
def get_rule(rule_id: RuleId, store: StoreDep, scope: AnalystScopeDep) -> RuleOut:
    return RuleOut.of(rules.get_rule(store, rule_id))


@_route("POST", "/rules/{rule_id}/disable", "Disable an alert rule", RuleOut, 403, 404)
def disable_rule(rule_id: RuleId, store: StoreDep, scope: WriterScopeDep) -> RuleOut:
    """Stop the rule from firing (its alerts and cases stay)."""
    return RuleOut.of(rules.disable_rule(store, rule_id, actor=scope.principal.username))


@_route(
    "GET",
    "/rules/{rule_id}/test",
    "What a rule would have fired",
    RuleTestOut,
    403,
    404,
    query=("since", "until", "limit"),
)
def test_rule(
    rule_id: RuleId,
    store: StoreDep,
    scope: AnalystScopeDep,
    since: Time = None,
    until: Time = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TEST_ALERTS, description="alerts listed")] = 100,
) -> RuleTestOut:
    """A dry run: the alerts the rule would have fired on the stored data (records or
    complete periods from ``since``, before ``until``), after its de-duplication; within your
    scope. Nothing is written. Record rules ignore their ``max_age`` here."""
    rule = rules.get_rule(store, rule_id)
    hits, lo, hi = dry_run(store, scope, rule, since, until)
    n = len(hits)
    return RuleTestOut(
        rule=RuleOut.of(rule),
        since=lo,
        until=hi,
        n=n,
        alerts=[HitOut(**h.as_dict()) for h in hits[:limit]],
        truncated=n > limit,
    )


# -- cases ------------------------------------------------------------------------------------
def _values(choices: Sequence[str] = ()) -> Any:
    """A list filter's query parameter: one or more values (of ``choices``, when given)."""
    said = f"one or more of {', '.join(choices)}" if choices else "one or more values"
    return Query(default_factory=list, max_length=100, description=said)


Filter = Annotated[list[str], _values()]
CASE_QUERY = (
    "state", "priority", "assignee", "department", "partner", "touchpoint", "person", "rule",
    "team", "breached", "limit", "offset",
)  # fmt: skip


@_route("GET", "/cases", "List cases", CaseList, query=CASE_QUERY)
def list_cases(
    store: StoreDep,
    scope: ScopeDep,
    state: Annotated[list[str], _values(cases.STATES)],
    priority: Annotated[list[str], _values(sla.PRIORITIES)],
    assignee: Filter,
    department: Filter,
    partner: Filter,
    touchpoint: Filter,
    person: Filter,
    rule: Filter,
    team: Filter,
    breached: Annotated[bool | None, Query(description="with (true) or without a breach")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> CaseList:
    """The cases in your scope, open ones first and by resolution due time; every filter takes
    one or more values (repeated or comma-separated)."""
    given = {
        "state": state, "priority": priority, "assignee": assignee, "department": department,
        "partner_id": partner, "touchpoint": touchpoint, "person_id": person, "rule_id": rule,
        "team": team,
    }  # fmt: skip
    filters = {k: vals for k, vals in given.items() if vals}
    found, total = cases.list_cases(
        store, scope, filters=filters, breached=breached, limit=limit, offset=offset
    )
    return CaseList(total=total, limit=limit, offset=offset, cases=[CaseOut(**c) for c in found])


@_route("GET", "/cases/{case_id}", "One case with its history and alerts", CaseDetail, 404)
def get_case(case_id: CaseId, store: StoreDep, scope: ScopeDep) -> CaseDetail:
    """The case, who changed what and when, and the alerts (with their evidence) behind it.
    404 when there is no such case in your scope."""
    return CaseDetail(**cases.get_case(store, scope, case_id))


@_route("POST", "/cases/{case_id}/assign", "Assign a case", CaseOut, 403, 404, 422)
def assign_case(case_id: CaseId, body: AssignIn, store: StoreDep, scope: ScopeDep) -> CaseOut:
    return CaseOut(**cases.assign(store, scope, case_id, body.assignee))


@_route("POST", "/cases/{case_id}/notes", "Add a note to a case", CaseOut, 403, 404, 422)
def add_case_note(case_id: CaseId, body: NoteIn, store: StoreDep, scope: ScopeDep) -> CaseOut:
    """A note is part of the history; the first one by a person is the first response."""
    return CaseOut(**cases.add_note(store, scope, case_id, body.text))


@_route("POST", "/cases/{case_id}/state", "Change a case's state", CaseOut, 403, 404, 422)
def change_case_state(case_id: CaseId, body: StateIn, store: StoreDep, scope: ScopeDep) -> CaseOut:
    """new → open → pending (SLA clocks stop) → resolved (a root cause is required;
    verification is scheduled) → closed; a resolved case may be reopened."""
    return CaseOut(
        **cases.change_state(
            store,
            scope,
            case_id,
            body.state,
            root_cause=body.root_cause,
            root_cause_event=body.root_cause_event,
            note=body.note,
        )
    )


@_route("POST", "/cases/{case_id}/priority", "Change a case's priority", CaseOut, 403, 404)
def change_case_priority(
    case_id: CaseId, body: PriorityIn, store: StoreDep, scope: ScopeDep
) -> CaseOut:
    """The SLA due times follow the new priority's targets."""
    return CaseOut(**cases.set_priority(store, scope, case_id, body.priority))


@_route("GET", "/people/{person_id}/cases", "A customer's open cases", list[CaseOut])
def customer_cases(
    person_id: Annotated[str, Path(max_length=200)], store: StoreDep, scope: ScopeDep
) -> list[CaseOut]:
    """The open cases (new, open, pending) about one customer that you see: what an agent
    sees on the customer's timeline."""
    return [CaseOut(**c) for c in cases.customer_cases(store, scope, person_id)]


@_route("GET", "/case-report", "How the loop performs, per department", CaseReport, 403,
        query=("by", "since", "until"))  # fmt: skip
def case_report(
    store: StoreDep,
    scope: AnalystScopeDep,
    by: Annotated[
        Literal["department", "partner_id", "team", "touchpoint", "rule_id"],
        Query(description="one row per value of this"),
    ] = "department",
    since: Time = None,
    until: Time = None,
) -> CaseReport:
    """Per department (or partner, team, touch point, rule), of the cases opened from
    ``since`` to before ``until`` in your scope: opened, still open, time to first response
    and to resolution in business minutes (median, p90), SLA breaches, and the share of fixes
    verified from the customer's side with its Wilson interval."""
    rows = reports.case_report(store, scope, by=by, since=since, until=until)
    return CaseReport(
        by=by,
        since=check_time(since, "since"),  # (their order checked by case_report)
        until=check_time(until, "until"),
        rows=[CaseReportRow(**r) for r in rows],
    )


# -- configuration ----------------------------------------------------------------------------
@_route("GET", "/case-root-causes", "The root causes a case may be given", list[RootCause])
def list_root_causes(store: StoreDep, scope: ScopeDep) -> list[RootCause]:
    return [RootCause(**c) for c in cases.list_root_causes(store)]


@_route("PUT", "/case-root-causes", "Replace the root causes", list[RootCause], 403, 422)
def set_root_causes(body: list[RootCause], store: StoreDep, scope: ScopeDep) -> list[RootCause]:
    """Admins only; cases keep the key they were given."""
    scope.require_admin("configure root causes")
    cases.set_root_causes(store, [(c.key, c.label) for c in body])
    return [RootCause(**c) for c in cases.list_root_causes(store)]


@_route("GET", "/sla-policies", "SLA policies", list[PolicyOut], 403)
def list_sla_policies(store: StoreDep, scope: AnalystScopeDep) -> list[PolicyOut]:
    return [PolicyOut(**p.as_dict()) for p in sla.list_policies(store)]


@_route("PUT", "/sla-policies/{name}", "Store an SLA policy", PolicyOut, 403, 422)
def put_sla_policy(
    name: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")],
    body: PolicyIn,
    store: StoreDep,
    scope: ScopeDep,
) -> PolicyOut:
    """Admins only: the business-hours calendar and the targets per priority of cases opened
    from now on under this policy (rules name it; 'default' is the built-in one)."""
    scope.require_admin("configure SLA policies")
    policy = sla.Policy.from_dict(body.model_dump(mode="json"), name)
    sla.save_policy(store, policy)
    return PolicyOut(**policy.as_dict())


__all__ = ["router"]
