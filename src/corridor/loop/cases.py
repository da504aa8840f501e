"""Cases: opened by alerts, routed to their owner, worked through states until fixed.

An alert opens a case, or joins the open case (new, open or pending) of the same cause — the
same rule and subject (:mod:`corridor.loop.opening`). The case is routed to its owner: the
rule's named team when it has one, else the partner for partner-delivered interactions and the
touch point's department (both are kept, and scoping follows them: :meth:`Scope.sees_case`).

States: ``new`` → ``open`` → ``pending`` (waiting on someone else: the SLA clocks stop) →
``resolved`` (a root cause from the configured list is required; verification is scheduled) →
``closed``; a resolved case may be reopened. Due times come from the rule's SLA policy
(:mod:`corridor.loop.sla`). The first response is the first note or state change by a person.
Every change writes a line of history and its notification in one transaction
(:mod:`corridor.loop.casestore`). A case outside the user's scope is "not found", exactly as an
unknown id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from corridor.auth.scope import Principal, Role, Scope
from corridor.domain.plain_text import has_control
from corridor.errors import CorridorError
from corridor.loop import casestore, sla
from corridor.store import Store
from corridor.store.base import Tx

STATES: tuple[str, ...] = ("new", "open", "pending", "resolved", "closed")
OPEN_STATES: tuple[str, ...] = ("new", "open", "pending")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("open", "pending", "resolved", "closed"),
    "open": ("pending", "resolved", "closed"),
    "pending": ("open", "resolved", "closed"),
    "resolved": ("open", "closed"),
    "closed": (),
}
#: a case about a touch point is verified on the gap over this many weeks after the fix
VERIFY_WEEKS = 4
_MAX_NOTE = 10_000


class CaseError(CorridorError, ValueError):
    """A change a case cannot take as asked."""

    status_code = 422


class CaseNotFoundError(CaseError):
    status_code = 404


def not_found(case_id: str, scope: Scope | None) -> CaseNotFoundError:
    """The one 404 for a case that does not exist or that ``scope`` may not see."""
    where = (
        "" if scope is None or scope.sees_all else f" within your scope ({scope.principal.label})"
    )
    return CaseNotFoundError(
        f"no case {case_id!r}{where}; GET /api/v1/cases (or `corridor cases list`) lists them"
    )


def _sees(scope: Scope | None, case: Mapping[str, Any]) -> bool:
    return scope is None or scope.sees_case(
        case["department"], case["partner_id"], person_id=case["person_id"], state=case["state"]
    )


def _actor(scope: Scope | None, actor: str | None = None) -> str:
    return actor or (scope.principal.username if scope is not None else "system")


def owner(case: Mapping[str, Any]) -> dict[str, str | None]:
    """Who owns a case: a named team, else the partner (partner-delivered), else the touch
    point's department."""
    if case.get("team"):
        return {"kind": "team", "name": case["team"]}
    if case.get("partner_id"):
        return {"kind": "partner", "name": case["partner_id"]}
    if case.get("department"):
        return {"kind": "department", "name": case["department"]}
    return {"kind": "unrouted", "name": None}


# -- reading ----------------------------------------------------------------------------------
def view(case: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """A case as the surfaces show it: its columns (but the internal cause), its owner and its
    SLA state in words."""
    out = {k: v for k, v in case.items() if k != "cause"}
    out["owner"] = owner(case)
    out["sla"] = sla.clock_state(case, now or datetime.now(UTC))
    return out


_ORDER = (
    "ORDER BY CASE state WHEN 'new' THEN 0 WHEN 'open' THEN 1 WHEN 'pending' THEN 2 "
    "WHEN 'resolved' THEN 3 ELSE 4 END, resolution_due, case_id"
)
FILTERS: tuple[str, ...] = (
    "state",
    "priority",
    "assignee",
    "department",
    "partner_id",
    "touchpoint",
    "person_id",
    "rule_id",
    "team",
)
#: the filters over a closed list of values: another value is refused, not matched to nothing
CLOSED_FILTERS: dict[str, tuple[str, ...]] = {"state": STATES, "priority": sla.PRIORITIES}


def list_cases(
    store: Store,
    scope: Scope | None,
    *,
    filters: Mapping[str, Iterable[str]] | None = None,
    breached: bool | None = None,
    limit: int = 200,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """The cases ``scope`` sees that match ``filters`` (column → allowed values, each given
    alone or comma-separated, as the API and the CLI take them), and how many there are in all;
    ``breached``: only cases with (or without) a breached clock."""
    where, params = scope.case_filter() if scope is not None else ("TRUE", [])
    parts: list[str] = [where]
    args: list[Any] = list(params)
    for column, values in (filters or {}).items():
        if column not in FILTERS:
            raise CaseError(f"unknown case filter {column!r}; allowed: {', '.join(FILTERS)}")
        vals = [x.strip() for v in values for x in v.split(",") if x.strip()]
        allowed = CLOSED_FILTERS.get(column)
        wrong = [v for v in vals if allowed is not None and v not in allowed]
        if wrong:  # a typo would otherwise list no case, as if there were none
            raise CaseError(
                f"unknown {column} {', '.join(map(repr, wrong))}; "
                f"allowed: {', '.join(allowed or ())}"
            )
        _in_view(scope, column, vals)
        if vals:
            parts.append(f"{column} IN ({', '.join('?' * len(vals))})")
            args.extend(vals)
    if breached is not None:
        cond = "(first_response_breached_at IS NOT NULL OR resolution_breached_at IS NOT NULL)"
        parts.append(cond if breached else f"NOT {cond}")
    clause = " AND ".join(parts)
    now = datetime.now(UTC)
    with store.transaction() as tx:
        total = int(tx.fetchall(f"SELECT count(*) FROM cases WHERE {clause}", args)[0][0])
        rows = casestore.select_cases(
            tx, clause, args, f"{_ORDER} LIMIT {int(limit)} OFFSET {int(offset)}"
        )
    return [view(c, now) for c in rows], total


def _in_view(scope: Scope | None, column: str, values: Sequence[str]) -> None:
    """A filter never widens what ``scope`` sees: a touch point, department or partner outside
    it is refused (as the inbox page refuses it), not answered with no case."""
    if scope is None:
        return
    checks = {
        "touchpoint": ("touch point", scope.sees_touchpoint),
        "department": ("department", scope.sees_department),
        "partner_id": ("partner", scope.sees_partner),
    }
    if column not in checks:
        return
    label, sees = checks[column]
    for value in values:
        if not sees(value):
            raise CaseError(f"no {label} {value!r} in your view")


def get_case(store: Store, scope: Scope | None, case_id: str) -> dict[str, Any]:
    """One case with its history and its alerts (404 outside the scope)."""
    with store.transaction() as tx:
        case = casestore.read_case(tx, case_id)
        if case is None or not _sees(scope, case):
            raise not_found(case_id, scope)
        out = view(case)
        out["history"] = casestore.history(tx, case_id)
        alerts = casestore.alerts_of_case(tx, case_id)
    # (a case holds one partner's alerts; one that joined it through another partner before
    # cases were kept apart by partner is left out of a partner manager's view)
    out["alerts_fired"] = [
        a for a in alerts if scope is None or scope.sees_record(a["department"], a["partner_id"])
    ]
    return out


def customer_cases(store: Store, scope: Scope | None, person_id: str) -> list[dict[str, Any]]:
    """The open cases about one customer that ``scope`` sees (a customer's timeline)."""
    where, params = scope.case_filter() if scope is not None else ("TRUE", [])
    with store.transaction() as tx:
        rows = casestore.select_cases(
            tx,
            f"{where} AND person_id = ? AND state IN ('new', 'open', 'pending')",
            [*params, person_id],
            _ORDER,
        )
    return [view(c) for c in rows]


# -- changing ---------------------------------------------------------------------------------
def _workable(tx: Tx, scope: Scope | None, case_id: str) -> dict[str, Any]:
    case = casestore.read_case(tx, case_id)
    if case is None or not _sees(scope, case):
        raise not_found(case_id, scope)
    if scope is not None and not scope.may_work_case(case["department"], case["partner_id"]):
        from corridor.errors import PermissionDeniedError

        raise PermissionDeniedError(
            f"{scope.principal.username} ({scope.principal.label}) may see this case but not "
            "work it; agents see the open cases of a customer, read only"
        )
    return case


def _change(
    tx: Tx,
    case: dict[str, Any],
    fields: dict[str, Any],
    *,
    actor: str,
    human: bool,
    now: datetime,
    event_type: str,
    action: str,
    field: str | None,
    old: Any = None,
    new: Any = None,
    note: str | None = None,
    responds: bool = True,
) -> dict[str, Any]:
    if human and responds and case["first_response_at"] is None:
        fields = {**fields, "first_response_at": now}
    casestore.write_fields(tx, case["case_id"], fields, now)
    after = {**case, **fields, "updated_at": now}
    event = casestore.record(
        tx, case["case_id"], actor, action, at=now, field=field, old=old, new=new, note=note
    )
    change = {"field": field, "old": old, "new": new}
    if note:
        change["note"] = note
    casestore.notify(tx, event_type, after, event, actor=actor, at=now, change=change)
    return after


def _edit(
    store: Store,
    scope: Scope | None,
    case_id: str,
    actor: str | None,
    fields: Callable[[Tx, dict[str, Any]], dict[str, Any]],
    *,
    event_type: str,
    action: str,
    field: str | None = None,
    note: str | None = None,
    responds: bool = True,
) -> dict[str, Any]:
    """A user's change to a case they may work, in one transaction: ``fields(tx, case)`` the
    fields it sets (it may refuse the change), ``field`` the one its history line names (its
    old and new values), the rest as :func:`_change`. Returns the case's view after it."""
    now = datetime.now(UTC)
    with store.transaction() as tx:
        case = _workable(tx, scope, case_id)
        changed = fields(tx, case)
        after = _change(
            tx, case, changed, actor=_actor(scope, actor), human=True, now=now,
            event_type=event_type, action=action, field=field,
            old=case[field] if field else None, new=changed[field] if field else None,
            note=note, responds=responds,
        )  # fmt: skip
    return view(after, now)


def assign(
    store: Store,
    scope: Scope | None,
    case_id: str,
    assignee: str | None,
    *,
    actor: str | None = None,
) -> dict[str, Any]:
    """Give the case to a user (``None``: back to the owner's queue)."""

    def fields(tx: Tx, case: dict[str, Any]) -> dict[str, Any]:
        if assignee is not None:
            users = int(tx.fetchall("SELECT count(*) FROM users")[0][0])
            found = tx.fetchall(
                "SELECT role, department, partner FROM users WHERE username = ?", (assignee,)
            )
            # (a store without accounts, auth off, takes any name); an unknown user and one
            # who may not work the case get the same answer: no list of who exists
            user = found and Principal(assignee, Role(found[0][0]), found[0][1], found[0][2])
            if users and not (user and works_case(user, case)):
                raise CaseError(
                    f"no user {assignee!r} who may work this case: give it to someone who sees "
                    "it (the case page lists them), or leave it in the owner's queue"
                )
        return {"assignee": assignee}

    return _edit(
        store, scope, case_id, actor, fields, event_type="case.assigned", action="assigned",
        field="assignee", responds=False,
    )  # fmt: skip


def release_assignee(tx: Tx, username: str, now: datetime) -> int:
    """Put every case given to ``username`` and not closed back in its owner's queue, in the
    caller's transaction (the user is being removed): a history line and a ``case.assigned``
    notification each, by ``system``. Returns how many cases were given back."""
    given = casestore.select_cases(
        tx, "assignee = ? AND state <> 'closed'", (username,), "ORDER BY case_id"
    )
    for case in given:
        _change(
            tx, case, {"assignee": None}, actor="system", human=False, now=now,
            event_type="case.assigned", action="assigned", field="assignee", old=username,
            new=None, note="the user was removed",
        )  # fmt: skip
    return len(given)


def works_case(user: Principal, case: Mapping[str, Any]) -> bool:
    """Whether ``user`` may work ``case`` (be given it, note it, change it): the rule of
    :meth:`~corridor.auth.scope.Scope.may_work_case`, which needs no corridor map for a case."""
    return Scope.of(user, None).may_work_case(case["department"], case["partner_id"])


def _note(text: str | None, *, required: bool) -> str | None:
    """A note as stored: stripped, at most :data:`_MAX_NOTE` characters, newlines and tabs
    but no other control character; None for no text unless ``required``."""
    text = (text or "").strip()
    if not text:
        if required:
            raise CaseError("a note needs some text")
        return None
    if len(text) > _MAX_NOTE:
        raise CaseError(f"a note holds at most {_MAX_NOTE} characters")
    if has_control(text, lines=True):
        raise CaseError("a note cannot hold control characters (NUL, escape…): remove them")
    return text


def add_note(
    store: Store, scope: Scope | None, case_id: str, text: str, *, actor: str | None = None
) -> dict[str, Any]:
    text = _note(text, required=True) or ""
    return _edit(
        store, scope, case_id, actor, lambda tx, case: {}, event_type="case.note_added",
        action="note", note=text,
    )  # fmt: skip


def set_priority(
    store: Store, scope: Scope | None, case_id: str, priority: str, *, actor: str | None = None
) -> dict[str, Any]:
    if priority not in sla.PRIORITIES:
        raise CaseError(f"unknown priority {priority!r}; allowed: {', '.join(sla.PRIORITIES)}")

    def fields(tx: Tx, case: dict[str, Any]) -> dict[str, Any]:
        policy = sla.get_policy(tx, case["sla_policy"])
        return {"priority": priority, **sla.on_priority_change(policy, case, priority)}

    return _edit(
        store, scope, case_id, actor, fields, event_type="case.priority_changed",
        action="priority", field="priority", responds=False,
    )  # fmt: skip


def root_causes(tx: Tx) -> list[tuple[str, str]]:
    return [
        (k, label)
        for k, label in tx.fetchall(
            "SELECT key, label FROM case_root_causes ORDER BY position, key"
        )
    ]


def list_root_causes(store: Store) -> list[dict[str, str]]:
    with store.transaction() as tx:
        return [{"key": k, "label": label} for k, label in root_causes(tx)]


def set_root_causes(store: Store, causes: Sequence[tuple[str, str]]) -> None:
    """Replace the configured list of root causes (cases keep the key they were given)."""
    if not causes:
        raise CaseError("the list of root causes cannot be empty")
    keys = [k.strip() for k, _ in causes]  # (compared as they are stored)
    if len(set(keys)) != len(keys) or any(not k.strip() or not lb.strip() for k, lb in causes):
        raise CaseError("root causes need distinct keys and a label each")
    with store.transaction() as tx:
        tx.execute("DELETE FROM case_root_causes")
        for i, (key, label) in enumerate(causes, start=1):
            tx.execute(
                "INSERT INTO case_root_causes (key, label, position) VALUES (?, ?, ?)",
                (key.strip(), label.strip(), i),
            )


def verify_after(case: Mapping[str, Any], now: datetime) -> datetime:
    """When a resolved case can be verified: at once for a case about one customer (their next
    feedback at the touch point decides), after :data:`VERIFY_WEEKS` weeks for a case about a
    touch point (the gap over those weeks decides)."""
    return now if case.get("person_id") else now + timedelta(weeks=VERIFY_WEEKS)


def change_state(
    store: Store,
    scope: Scope | None,
    case_id: str,
    state: str,
    *,
    root_cause: str | None = None,
    root_cause_event: str | None = None,
    note: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Move a case to ``state`` (see :data:`TRANSITIONS`); resolving needs a root cause."""
    if state not in STATES:
        raise CaseError(f"unknown state {state!r}; allowed: {', '.join(STATES)}")
    note = _note(note, required=False)
    now = datetime.now(UTC)
    with store.transaction() as tx:
        case = _workable(tx, scope, case_id)
        after = transition(
            tx,
            case,
            state,
            actor=_actor(scope, actor),
            human=True,
            now=now,
            root_cause=root_cause,
            root_cause_event=root_cause_event,
            note=note,
        )
    return view(after, now)


def transition(
    tx: Tx,
    case: dict[str, Any],
    state: str,
    *,
    actor: str,
    human: bool,
    now: datetime,
    root_cause: str | None = None,
    root_cause_event: str | None = None,
    note: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The state change itself, inside the caller's transaction (also used by verification)."""
    old = case["state"]
    if state == old:
        raise CaseError(f"case {case['case_id']} is {old} already")
    if state not in TRANSITIONS[old]:
        allowed = ", ".join(TRANSITIONS[old]) or "none (closed is final)"
        raise CaseError(f"a {old} case cannot become {state}; from {old}: {allowed}")
    fields: dict[str, Any] = dict(extra or {})
    if root_cause is not None or state == "resolved":
        keys = [k for k, _ in root_causes(tx)]
        cause = root_cause or case["root_cause"]
        if cause not in keys:
            raise CaseError(
                f"resolving needs a root cause, one of {', '.join(keys)}"
                + (f" (not {root_cause!r})" if root_cause else "")
            )
        fields["root_cause"] = cause
    if root_cause_event is not None:
        if not tx.fetchall(
            "SELECT 1 FROM operational_events WHERE event_id = ?", (root_cause_event,)
        ):
            raise CaseError(f"no operational event {root_cause_event!r}")
        fields["root_cause_event"] = root_cause_event
    fields["state"] = state
    fields.update(sla.on_state_change(sla.get_policy(tx, case["sla_policy"]), case, state, now))
    if state == "resolved":
        fields.update(
            resolved_at=now,
            verification="pending",
            verify_after=verify_after(case, now),
            verified_at=None,
            verification_detail=None,
        )
    elif state == "closed":
        fields["closed_at"] = now
    elif old == "resolved":  # reopened
        fields.update(resolved_at=None)
        fields.setdefault("verify_after", None)
        if "verification" not in fields:
            fields["verification"] = None
    return _change(
        tx,
        case,
        fields,
        actor=actor,
        human=human,
        now=now,
        event_type="case.state_changed",
        action="state",
        field="state",
        old=old,
        new=state,
        note=note,
    )


__all__ = [
    "OPEN_STATES",
    "STATES",
    "TRANSITIONS",
    "CaseError",
    "CaseNotFoundError",
    "add_note",
    "assign",
    "change_state",
    "customer_cases",
    "get_case",
    "list_cases",
    "list_root_causes",
    "owner",
    "release_assignee",
    "set_priority",
    "set_root_causes",
    "transition",
    "view",
    "works_case",
]
