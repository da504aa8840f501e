"""What the case pages show: the inbox, one case, a customer's open cases (plain dicts).

Everything is read through :mod:`corridor.loop` with the user's scope, so a page shows exactly
the cases the same user's API calls would: :func:`inbox` lists and counts only cases in scope,
:func:`case_page` raises :class:`~corridor.loop.cases.CaseNotFoundError` for a case outside it
(worded as for an unknown id). The SLA state of a case is given in words and a tone
(:func:`sla_words`): the page colours it, but the words carry it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from corridor.analytics.customers.models import FittedModels
from corridor.api.schemas import PersonView
from corridor.auth import accounts
from corridor.auth.scope import Role, Scope
from corridor.domain.corridor_map import CorridorMap
from corridor.loop import activity, cases, rules, sla
from corridor.loop.cases import CaseError
from corridor.store import Store
from corridor.web import customer_views

#: cases on one page of the inbox
PAGE_SIZE = 50
#: the last page number a link may ask for (the cases API takes offsets up to 10⁹ too)
MAX_PAGE = 10**9 // PAGE_SIZE
#: how many cases an SLA filter looks through (it is decided per case, not in the store)
SLA_SCAN = 2000
#: the SLA states the inbox filters on (as :func:`corridor.loop.sla.clock_state` names them)
SLA_STATES: tuple[str, ...] = ("breached", "due soon", "on time", "paused")
#: the inbox's state choices: "" the open ones (new, open, pending), "all", or one state
STATE_CHOICES: tuple[tuple[str, str], ...] = (
    ("", "open (new, open, pending)"),
    *((s, s) for s in cases.STATES),
    ("all", "all states"),
)
#: the latest customer records the case page shows (the customer page has them all)
TIMELINE_ROWS = 20
_CLOCK = {"first_response": "response", "resolution": "resolution"}
#: the history lines whose note a person wrote (the others note what a rule or a job found)
_NOTED = ("note", "state")
_RECORD_FIELDS = ("nps", "csat", "ces", "expectation", "experience", "emotion", "intent",
                  "theme_id", "duration_minutes", "value")  # fmt: skip


class InboxError(CaseError):
    """A filter the inbox cannot apply (an unknown value in the query string)."""


def span(delta: timedelta) -> str:
    """A duration in words, rounded to the nearest unit that matters: "40 min", "3 h", "5 d"."""
    minutes = round(abs(delta).total_seconds() / 60)
    if minutes < 60:
        return f"{max(minutes, 1)} min"
    if minutes < 48 * 60:
        return f"{round(minutes / 60)} h"
    return f"{round(minutes / (24 * 60))} d"


def sla_words(case: Mapping[str, Any], now: datetime) -> dict[str, str]:
    """The SLA state of a case as the inbox shows it: ``text`` ("response due in 3 h",
    "resolution breached 2 h ago", "paused (pending)", "met") and ``tone`` (breached, soon, ok,
    paused, met: the colour)."""
    state = case["state"]
    clock = case.get("sla") or sla.clock_state(case, now)
    status, due = clock["status"], clock.get("due")
    label = _CLOCK.get(clock["clock"], clock["clock"])
    if state in ("resolved", "closed"):
        if status == "breached":
            return {"text": f"{state} late (resolution breached)", "tone": "breached"}
        return {"text": f"{state} in time", "tone": "met"}
    if status == "breached":
        when = f" {span(now - due)} ago" if due is not None and due <= now else ""
        return {"text": f"{label} breached{when}", "tone": "breached"}
    if status == "paused":
        return {"text": f"paused ({state})", "tone": "paused"}
    if due is None:
        return {"text": "no due time", "tone": "ok"}
    tone = "soon" if status == "due soon" else "ok"
    return {"text": f"{label} due in {span(due - now)}", "tone": tone}


def owner_words(case: Mapping[str, Any]) -> str:
    who = case.get("owner") or cases.owner(case)
    if who["kind"] == "unrouted":
        return "unrouted"
    return f"{who['kind']} {who['name']}"


def _row(case: dict[str, Any], names: Mapping[str, str], now: datetime) -> dict[str, Any]:
    tp = case.get("touchpoint")
    return {
        **case,
        "owner_text": owner_words(case),
        "sla_words": sla_words(case, now),
        "touchpoint_name": names.get(tp, tp) if tp else None,
    }


def _names(cmap: CorridorMap | None) -> dict[str, str]:
    return {t.key: t.name for t in cmap.touchpoints} if cmap else {}


def inbox(
    store: Store,
    scope: Scope,
    cmap: CorridorMap | None,
    *,
    state: str = "",
    priority: str = "",
    touchpoint: str = "",
    mine: bool = False,
    sla_state: str = "",
    page: int = 0,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One page of the cases ``scope`` sees, open ones first and the soonest due first, with
    the counts per state (under the same filters, state aside) and the filter choices."""
    now = now or datetime.now(UTC)
    tps = [t for t in (cmap.touchpoints if cmap else ()) if scope.sees_touchpoint(t.key)]
    filters: dict[str, list[str]] = {}
    if priority:
        if priority not in sla.PRIORITIES:
            raise InboxError(f"unknown priority {priority!r}; one of {', '.join(sla.PRIORITIES)}")
        filters["priority"] = [priority]
    if touchpoint:
        if touchpoint not in {t.key for t in tps}:
            raise InboxError(f"no touch point {touchpoint!r} in your view")
        filters["touchpoint"] = [touchpoint]
    if mine:
        filters["assignee"] = [scope.principal.username]
    counts = activity.case_counts(store, scope, filters)
    if state == "":
        filters["state"] = list(cases.OPEN_STATES)
    elif state in cases.STATES:
        filters["state"] = [state]
    elif state != "all":
        raise InboxError(f"unknown state {state!r}; one of {', '.join(cases.STATES)} or all")
    if sla_state and sla_state not in SLA_STATES:
        raise InboxError(f"unknown SLA state {sla_state!r}; one of {', '.join(SLA_STATES)}")
    # a page number typed past the end shows the last page (and one past any offset the
    # engines take is never asked for)
    page = min(max(page, 0), MAX_PAGE)
    scanned = False
    if sla_state:
        found, matched = cases.list_cases(store, scope, filters=filters, limit=SLA_SCAN)
        scanned = matched > SLA_SCAN
        found = [c for c in found if c["sla"]["status"] == sla_state]
        total = len(found)
        page = min(page, _last_page(total))
        found = found[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    else:
        found, total = cases.list_cases(
            store, scope, filters=filters, limit=PAGE_SIZE, offset=page * PAGE_SIZE
        )
        if page > _last_page(total):
            page = _last_page(total)
            found, total = cases.list_cases(
                store, scope, filters=filters, limit=PAGE_SIZE, offset=page * PAGE_SIZE
            )
    names = _names(cmap)
    first = page * PAGE_SIZE
    return {
        "rows": [_row(c, names, now) for c in found],
        "total": total,
        "first": first + 1 if found else 0,
        "last": first + len(found),
        "page": page,
        "pages": _last_page(total) + 1,
        "scanned": scanned,
        "sla_scan": SLA_SCAN,
        "counts": counts,
        "counted": sum(counts.values()),
        "chosen": {
            "state": state,
            "priority": priority,
            "touchpoint": touchpoint,
            "mine": mine,
            "sla": sla_state,
        },
        "state_choices": STATE_CHOICES,
        "priorities": [(p, p) for p in sla.PRIORITIES],
        "touchpoints": [(t.key, t.name) for t in tps],
        "sla_states": [(s, s) for s in SLA_STATES],
        "read_only": scope.role is Role.AGENT,
    }


# -- one case ---------------------------------------------------------------------------------
def _history_line(e: Mapping[str, Any]) -> str:
    action, old, new, field = e["action"], e["old_value"], e["new_value"], e["field"]
    if action == "opened":
        return "opened the case"
    if action == "assigned":
        return f"assigned it to {new}" if new else f"took it from {old} back to the queue"
    if action == "note":
        return "added a note"
    if action == "state":
        return f"changed the state from {old} to {new}"
    if action == "priority":
        return f"changed the priority from {old} to {new}"
    if action == "alert_added":
        return f"added alerts ({old} → {new})"
    if action == "breached":
        clock = _CLOCK.get(field or "", field or "a")
        return f"{clock} clock breached (due {_short(old)}); {new}"
    if action == "verification":
        return f"verification: {(new or '').replace('_', ' ')}"
    return f"{action} {field or ''}: {old} → {new}".strip()


def _short(iso: str | None) -> str:
    if not iso:
        return "?"
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def _evidence(alert: Mapping[str, Any], texts: Mapping[str, str | None]) -> dict[str, Any]:
    """What fired an alert, for the page: the record's scores (and its text, when the
    customer's timeline holds it), the aggregate's value with its n and interval, or the
    forecast that crossed a forecast rule's line, with its intervals, model and backtest."""
    ev = alert.get("evidence") or {}
    out: dict[str, Any] = {"kind": "other", "items": []}
    if "record" in ev:
        rec = ev["record"]
        out["kind"] = "record"
        items = [(k, rec[k]) for k in _RECORD_FIELDS if rec.get(k) is not None]
        e, x = rec.get("experience"), rec.get("expectation")
        if e is not None and x is not None:
            items.append(("gap", float(e) - float(x)))
        out["items"] = items
        out["text"] = texts.get(alert.get("record_id") or "")
    elif ev.get("analysis") == "forecast" and isinstance(ev.get("forecast"), list):
        out["kind"] = "forecast"  # a forecast rule: the forecast, its intervals and backtest
        keys = ("measure", "period", "horizon", "bound", "line", "crossing", "model", "n",
                "n_periods", "last_period", "last_value", "backtest", "forecast")  # fmt: skip
        out.update({k: ev.get(k) for k in keys})
        out["backtest"] = ev.get("backtest") or {}
    elif "row" in ev:
        row, column = ev["row"], ev.get("column")
        out["kind"] = "aggregate"
        out["analysis"] = ev.get("analysis")
        out["column"] = column
        out["period"] = ev.get("period")
        if column:
            out["value"] = row.get(column)
            out["low"] = row.get(f"{column}_low")
            out["high"] = row.get(f"{column}_high")
            out["p_value"] = row.get(f"p_value_{column}")
        out["n"] = row.get("n", row.get(f"{column}_n") if column else None)
        out["items"] = [(k, v) for k, v in row.items() if v is not None and not isinstance(v, dict)]
    return out


def _last_page(total: int) -> int:
    """The number of the last page of ``total`` cases (0: the first, also when there are none)."""
    return max((total + PAGE_SIZE - 1) // PAGE_SIZE - 1, 0)


def assignable(store: Store, case: Mapping[str, Any]) -> list[str]:
    """The users who may work ``case`` (whom it can be given to), by name."""
    return [u.username for u in accounts.list_users(store) if cases.works_case(u.principal(), case)]


def case_page(
    store: Store,
    scope: Scope,
    cmap: CorridorMap | None,
    case_id: str,
    *,
    models: FittedModels | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One case as its page shows it: the case, its clocks, the evidence that fired it, the
    customer's latest records, its history, and what the user may do with it."""
    now = now or datetime.now(UTC)
    case = cases.get_case(store, scope, case_id)
    customer: dict[str, Any] | None = None
    if case.get("person_id"):
        customer = customer_views.customer(
            store, scope, case["person_id"], models=models, refit=False
        )
    events = customer["events"] if customer else []
    texts = {e["id"]: e.get("text") for e in events if e["kind"] == "feedback"}
    causes = cases.list_root_causes(store)
    rule = None
    if case.get("rule_id"):
        try:
            rule = rules.get_rule(store, case["rule_id"])
        except rules.RuleNotFoundError:
            rule = None
    may_work = scope.may_work_case(case["department"], case["partner_id"])
    return {
        "case": _row(case, _names(cmap), now),
        "rule": rule.as_dict() if rule else None,
        "paused_for": span(timedelta(minutes=float(case.get("paused_minutes") or 0)))
        if case.get("paused_minutes")
        else None,
        "alerts": [{**a, "shown": _evidence(a, texts)} for a in case["alerts_fired"]],
        "customer": customer,
        "events": events[:TIMELINE_ROWS],
        "more_events": len(events) > TIMELINE_ROWS,
        "history": [{**e, "what": _history_line(e)} for e in case["history"]],
        "notes": [e for e in case["history"] if e.get("note") and e["action"] in _NOTED],
        "root_causes": causes,
        "root_cause_label": dict((c["key"], c["label"]) for c in causes).get(
            case.get("root_cause") or ""
        ),
        "may_work": may_work,
        "next_states": cases.TRANSITIONS[case["state"]] if may_work else (),
        "assignees": assignable(store, case) if may_work else [],
        "priorities": sla.PRIORITIES,
    }


def customer_open_cases(
    store: Store, scope: Scope, view: PersonView, cmap: CorridorMap | None = None
) -> list[dict[str, Any]]:
    """The open cases about a customer (any person of their merged group) that ``scope``
    sees, for the customer page."""
    now = datetime.now(UTC)
    seen: dict[str, dict[str, Any]] = {}
    for pid in _group(view):
        for c in cases.customer_cases(store, scope, pid):
            seen.setdefault(c["case_id"], _row(c, _names(cmap), now))
    return list(seen.values())


def _group(view: PersonView) -> Sequence[str]:
    return view.members or [view.canonical_id]


__all__ = [
    "PAGE_SIZE",
    "SLA_STATES",
    "InboxError",
    "assignable",
    "case_page",
    "customer_open_cases",
    "inbox",
    "sla_words",
    "span",
]
