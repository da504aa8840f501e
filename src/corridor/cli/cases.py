"""``corridor rules add|list|disable|test`` and ``corridor cases list|show|assign|note|resolve|
state|sla``.

Each opens the store itself (the actor in a case's history is the user running the command);
when a running server holds an embedded store, the command goes through that server's API
instead (``/api/v1/rules``, ``/api/v1/cases``), as ``corridor users`` does.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Column, Table

from corridor.cli.common import FormatOpt, StoreOpt, console, on_store_or_server
from corridor.cli.render import check_format, print_json
from corridor.errors import CorridorError

if TYPE_CHECKING:
    from corridor.auth.local_server import ServerClient
    from corridor.store import Store

rules_app = typer.Typer(help="Alert rules: what opens a case.", no_args_is_help=True)
cases_app = typer.Typer(
    help="Cases: alerts routed to their owner, with SLAs.", no_args_is_help=True
)

_KINDS = "detractor, score_below, broken_promise, text (record rules); threshold, change, drift, ripple (aggregate rules)"  # noqa: E501
Many = Annotated[list[str] | None, typer.Option()]


def _actor() -> str:
    try:
        return f"{getpass.getuser()} (cli)"
    except Exception:  # no user name in the environment
        return "cli"


def _q(part: str) -> str:
    return quote(part, safe="")


def _when(value: Any) -> str:
    if value is None or value == "":
        return ""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{at:%Y-%m-%d %H:%M}"


def _jsonable(body: Any) -> Any:
    """A reply as the API gives it (times as ISO-8601 text)."""
    import orjson

    return orjson.loads(orjson.dumps(body, default=str))


def _run(
    store: str | None, here: Callable[[Store], Any], via: Callable[[ServerClient], Any]
) -> Any:
    return _jsonable(on_store_or_server(store, here, via))


# -- rules ------------------------------------------------------------------------------------
def _params(items: list[str] | None) -> dict[str, Any] | None:
    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CorridorError(f"--param {item!r}: write NAME=VALUE, e.g. --param alpha=0.01")
        word = value.strip().lower()
        if word in ("true", "false"):
            out[key.strip()] = word == "true"
            continue
        try:
            out[key.strip()] = float(value)
        except ValueError:
            out[key.strip()] = value
    return out


@rules_app.command("add")
def rules_add(
    rule_id: Annotated[str, typer.Argument(help="the rule's id, e.g. detractors-delivery")],
    kind: Annotated[str, typer.Option(help=f"what it watches: {_KINDS}")],
    name: Annotated[str | None, typer.Option(help="a title (default: the rule in words)")] = None,
    max_nps: Annotated[float | None, typer.Option(help="detractor: NPS at most this (6)")] = None,
    field: Annotated[
        str | None,
        typer.Option(help="score_below: expectation, experience, gap, nps, csat, ces, emotion"),
    ] = None,
    below: Annotated[float | None, typer.Option(help="score_below, threshold: under this")] = None,
    above: Annotated[float | None, typer.Option(help="threshold: over this")] = None,
    per: Annotated[
        str | None, typer.Option(help="record rules: customer (default), touchpoint or record")
    ] = None,
    max_age: Annotated[
        str | None, typer.Option(help="record rules: older records do not fire (7d)")
    ] = None,
    promise: Many = None,
    intent: Many = None,
    theme: Many = None,
    analysis: Annotated[str | None, typer.Option(help="threshold, change: an analysis")] = None,
    column: Annotated[str | None, typer.Option(help="threshold, change: its column")] = None,
    direction: Annotated[str | None, typer.Option(help="down (default), up or any")] = None,
    alpha: Annotated[float | None, typer.Option(help="change, drift, ripple: level")] = None,
    min_n: Annotated[int | None, typer.Option(help="threshold, change: records needed")] = None,
    period: Annotated[str | None, typer.Option(help="day, week, month or quarter")] = None,
    lookback: Annotated[int | None, typer.Option(help="complete periods read per run")] = None,
    by: Many = None,
    param: Annotated[
        list[str] | None, typer.Option(help="another parameter of the analysis, NAME=VALUE")
    ] = None,
    touchpoint: Many = None,
    department: Many = None,
    partner: Many = None,
    segment: Many = None,
    region: Many = None,
    cooldown: Annotated[
        str | None, typer.Option(help="no second alert for a subject within it (7d)")
    ] = None,
    priority: Annotated[str, typer.Option(help="low, normal, high or urgent")] = "normal",
    team: Annotated[str | None, typer.Option(help="a named team that owns its cases")] = None,
    sla: Annotated[str | None, typer.Option(help="the SLA policy of its cases")] = None,
    reopen_unverified: Annotated[
        bool, typer.Option(help="reopen a case when verification finds the gap still open")
    ] = False,
    store: StoreOpt = None,
) -> None:
    """Add an alert rule (scope options repeat: --department logistics --department sales)."""
    from corridor.loop import rules

    definition = {
        "max_nps": max_nps, "field": field, "below": below, "above": above, "per": per,
        "max_age": max_age, "promises": promise, "intents": intent, "themes": theme,
        "analysis": analysis, "column": column, "direction": direction, "alpha": alpha,
        "min_n": min_n, "period": period, "lookback": lookback, "by": by,
        "params": _params(param),
    }  # fmt: skip
    definition = {k: v for k, v in definition.items() if v is not None}
    given = {"touchpoint": touchpoint, "department": department, "partner": partner,
             "segment": segment, "region": region}  # fmt: skip
    scope: dict[str, list[str]] = {k: v for k, v in given.items() if v}
    body = {
        "rule_id": rule_id, "kind": kind, "name": name, "definition": definition,
        "scope": scope, "cooldown": cooldown, "priority": priority, "team": team,
        "sla_policy": sla, "reopen_unverified": reopen_unverified,
    }  # fmt: skip

    def here(s: Store) -> dict[str, Any]:
        rule = rules.Rule(
            rule_id, kind, definition, scope, name=name or "",
            cooldown_s=rules.parse_duration(cooldown) if cooldown else None,
            priority=priority, team=team, sla_policy=sla, reopen_unverified=reopen_unverified,
        )  # fmt: skip
        return rules.add_rule(s, rule, actor=_actor()).as_dict()

    made = _run(store, here, lambda c: c.call("POST", "/api/v1/rules", json_body=body))
    console.print(f"added rule {made['rule_id']}: {escape(made['description'])}", soft_wrap=True)


@rules_app.command("list")
def rules_list(store: StoreOpt = None, fmt: FormatOpt = "table") -> None:
    """List alert rules."""
    from corridor.loop import rules

    check_format(fmt)
    found = _run(
        store,
        lambda s: [r.as_dict() for r in rules.list_rules(s)],
        lambda c: c.call("GET", "/api/v1/rules"),
    )
    if fmt != "table":
        print_json(found)
        return
    if not found:
        console.print("no rules yet; add one with `corridor rules add ID --kind detractor`")
        return
    table = Table(Column("rule", no_wrap=True), "kind", "watches", "cooldown", "priority",
                  "owner", "enabled")  # fmt: skip
    for r in found:
        table.add_row(
            r["rule_id"], r["kind"], r["description"], f"{r['cooldown_s'] / 86400:g}d",
            r["priority"], r["team"] or "(routed)", "yes" if r["enabled"] else "no",
        )  # fmt: skip
    console.print(table)


@rules_app.command("disable")
def rules_disable(
    rule_id: Annotated[str, typer.Argument(help="the rule's id")], store: StoreOpt = None
) -> None:
    """Stop a rule from firing (its alerts and cases stay)."""
    from corridor.loop import rules

    _run(
        store,
        lambda s: rules.disable_rule(s, rule_id, actor=_actor()).as_dict(),
        lambda c: c.call("POST", f"/api/v1/rules/{_q(rule_id)}/disable"),
    )
    console.print(f"disabled rule {rule_id}")


@rules_app.command("test")
def rules_test(
    rule_id: Annotated[str, typer.Argument(help="the rule's id")],
    since: Annotated[str | None, typer.Option(help="from this time on (ISO-8601)")] = None,
    until: Annotated[str | None, typer.Option(help="before this time (ISO-8601)")] = None,
    limit: Annotated[int, typer.Option(help="alerts listed")] = 20,
    store: StoreOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """What the rule would have fired on past data (a dry run: nothing is written)."""
    from corridor.loop import rules
    from corridor.loop.dryrun import dry_run

    check_format(fmt)
    limit = max(1, min(limit, 500))

    def here(s: Store) -> dict[str, Any]:
        rule = rules.get_rule(s, rule_id)
        hits, lo, hi = dry_run(s, None, rule, since, until)
        n = len(hits)
        return {"rule": rule.as_dict(), "since": lo, "until": hi, "n": n,
                "alerts": [h.as_dict() for h in hits[:limit]], "truncated": n > limit}  # fmt: skip

    params = {k: v for k, v in (("since", since), ("until", until), ("limit", limit)) if v}
    out = _run(
        store, here, lambda c: c.call("GET", f"/api/v1/rules/{_q(rule_id)}/test", params=params)
    )
    if fmt != "table":
        print_json(out)
        return
    console.print(f"rule {rule_id} ({escape(out['rule']['description'])}) would have fired "
                  f"{out['n']:,} alerts", soft_wrap=True)  # fmt: skip
    table = Table("when", "subject", "summary", "owner")
    for a in out["alerts"]:
        owner = a["partner_id"] or a["department"] or ""
        table.add_row(_when(a["occurred_at"]), a["subject"], escape(a["summary"]), owner)
    if out["alerts"]:
        console.print(table)
    if out["truncated"]:
        console.print(f"[dim]the first {limit}; --limit shows more, --format json all fields[/]")


# -- cases ------------------------------------------------------------------------------------
@cases_app.command("list")
def cases_list(
    state: Many = None,
    priority: Many = None,
    assignee: Many = None,
    department: Many = None,
    partner: Many = None,
    touchpoint: Many = None,
    person: Many = None,
    rule: Many = None,
    breached: Annotated[
        bool | None,
        typer.Option("--breached/--not-breached", help="only with (or without) a breach"),
    ] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
    store: StoreOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List cases, open ones first (filters repeat: --state new --state open)."""
    from corridor.loop import cases

    check_format(fmt)
    given = {"state": state, "priority": priority, "assignee": assignee,
             "department": department, "partner": partner, "touchpoint": touchpoint,
             "person": person, "rule": rule}  # fmt: skip
    columns = {"partner": "partner_id", "person": "person_id", "rule": "rule_id"}
    filters = {columns.get(k, k): v for k, v in given.items() if v}
    params: dict[str, Any] = {k: v for k, v in given.items() if v}
    params["limit"] = limit
    if breached is not None:
        params["breached"] = str(breached).lower()

    def here(s: Store) -> dict[str, Any]:
        found, total = cases.list_cases(s, None, filters=filters, breached=breached, limit=limit)
        return {"total": total, "limit": limit, "offset": 0, "cases": found}

    out = _run(store, here, lambda c: c.call("GET", "/api/v1/cases", params=params))
    if fmt != "table":
        print_json(out)
        return
    if not out["cases"]:
        console.print("no cases match")
        return
    table = Table(Column("case", no_wrap=True), "state", "priority", "SLA", "due", "owner",
                  "assignee", "title")  # fmt: skip
    for c in out["cases"]:
        sla_state = c["sla"]
        table.add_row(
            c["case_id"], c["state"], c["priority"], sla_state["status"], _when(sla_state["due"]),
            c["owner"]["name"] or "", c["assignee"] or "", escape(c["title"]),
        )  # fmt: skip
    console.print(table)
    if out["total"] > len(out["cases"]):
        console.print(f"[dim]{len(out['cases'])} of {out['total']}; --limit shows more[/]")


@cases_app.command("show")
def cases_show(
    case_id: Annotated[str, typer.Argument(help="the case's id")],
    store: StoreOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """One case: its fields, its history and the alerts behind it."""
    from corridor.loop import cases

    check_format(fmt)
    out = _run(
        store,
        lambda s: cases.get_case(s, None, case_id),
        lambda c: c.call("GET", f"/api/v1/cases/{_q(case_id)}"),
    )
    if fmt != "table":
        print_json(out)
        return
    sla_state = out["sla"]
    console.print(f"[bold]{out['case_id']}[/] {escape(out['title'])}", soft_wrap=True)
    console.print(
        f"{out['state']} · {out['priority']} · owner {out['owner']['kind']} "
        f"{out['owner']['name'] or ''} · assignee {out['assignee'] or '-'} · SLA "
        f"{sla_state['clock'].replace('_', ' ')} {sla_state['status']}"
        + (f" (due {_when(sla_state['due'])})" if sla_state["due"] else "")
    )
    if out["root_cause"]:
        console.print(f"root cause: {out['root_cause']} {out['root_cause_event'] or ''}")
    if out["verification"]:
        console.print(f"verification: {out['verification'].replace('_', ' ')}")
    table = Table("when", "who", "what", "from", "to", "note")
    for e in out["history"]:
        table.add_row(
            _when(e["changed_at"]), escape(e["actor"]), e["action"], e["old_value"] or "",
            e["new_value"] or "", escape(e["note"] or ""),
        )  # fmt: skip
    console.print(table)
    console.print(f"{len(out['alerts_fired'])} alerts: " + "; ".join(
        escape(a["summary"]) for a in out["alerts_fired"][:5]), soft_wrap=True)  # fmt: skip


def _change(
    store: str | None, case_id: str, here: Callable[[Store], Any], path: str, body: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = _run(
        store, here, lambda c: c.call("POST", f"/api/v1/cases/{_q(case_id)}/{path}", json_body=body)
    )
    return out


@cases_app.command("assign")
def cases_assign(
    case_id: Annotated[str, typer.Argument(help="the case's id")],
    user: Annotated[str | None, typer.Argument(help="a username; leave out to unassign")] = None,
    store: StoreOpt = None,
) -> None:
    """Assign a case to a user (or back to its owner's queue)."""
    from corridor.loop import cases

    _change(store, case_id, lambda s: cases.assign(s, None, case_id, user, actor=_actor()),
            "assign", {"assignee": user})  # fmt: skip
    console.print(f"{case_id} assigned to {user}" if user else f"{case_id} unassigned")


@cases_app.command("note")
def cases_note(
    case_id: Annotated[str, typer.Argument(help="the case's id")],
    text: Annotated[str, typer.Argument(help="the note")],
    store: StoreOpt = None,
) -> None:
    """Add a note to a case (the first one is its first response)."""
    from corridor.loop import cases

    _change(store, case_id, lambda s: cases.add_note(s, None, case_id, text, actor=_actor()),
            "notes", {"text": text})  # fmt: skip
    console.print(f"note added to {case_id}")


def _state(store: str | None, case_id: str, state: str, **extra: Any) -> dict[str, Any]:
    from corridor.loop import cases

    return _change(
        store, case_id,
        lambda s: cases.change_state(s, None, case_id, state, actor=_actor(), **extra),
        "state", {"state": state, **extra},
    )  # fmt: skip


@cases_app.command("resolve")
def cases_resolve(
    case_id: Annotated[str, typer.Argument(help="the case's id")],
    root_cause: Annotated[
        str, typer.Option(help="one of the configured root causes (`corridor cases causes`)")
    ],
    event: Annotated[str | None, typer.Option(help="the operational event that caused it")] = None,
    note: Annotated[str | None, typer.Option(help="what was done")] = None,
    store: StoreOpt = None,
) -> None:
    """Resolve a case with its root cause; its verification is scheduled."""
    out = _state(store, case_id, "resolved", root_cause=root_cause, root_cause_event=event,
                 note=note)  # fmt: skip
    console.print(f"{case_id} resolved ({out['root_cause']}); verification after "
                  f"{_when(out['verify_after'])}")  # fmt: skip


@cases_app.command("state")
def cases_state(
    case_id: Annotated[str, typer.Argument(help="the case's id")],
    state: Annotated[str, typer.Argument(help="open, pending (clocks stop), closed")],
    note: Annotated[str | None, typer.Option(help="why")] = None,
    store: StoreOpt = None,
) -> None:
    """Move a case to another state (resolve with `corridor cases resolve`)."""
    out = _state(store, case_id, state, note=note)
    console.print(f"{case_id} is {out['state']}")


@cases_app.command("causes")
def cases_causes(store: StoreOpt = None) -> None:
    """The root causes a case may be resolved with."""
    from corridor.loop import cases

    found = _run(store, cases.list_root_causes, lambda c: c.call("GET", "/api/v1/case-root-causes"))
    table = Table("key", "label")
    for c in found:
        table.add_row(c["key"], c["label"])
    console.print(table)


@cases_app.command("sla")
def cases_sla(
    name: Annotated[str | None, typer.Argument(help="a policy's name, to store one")] = None,
    file: Annotated[
        Path | None, typer.Argument(help="its YAML or JSON: calendar and targets")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """List the SLA policies; with NAME FILE, store one (see docs/closed-loop.md)."""
    import yaml

    from corridor.loop import sla

    if name is not None:
        if file is None:
            raise CorridorError("give the policy's file too: corridor cases sla NAME FILE")
        doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        if not isinstance(doc, dict):
            raise CorridorError(f"{file}: a policy is a mapping with calendar and targets")

        def here(s: Store) -> dict[str, Any]:
            policy = sla.Policy.from_dict(doc, name)
            sla.save_policy(s, policy)
            return policy.as_dict()

        body = {k: v for k, v in doc.items() if k != "name"}
        _run(store, here, lambda c: c.call("PUT", f"/api/v1/sla-policies/{_q(name)}",
                                           json_body=body))  # fmt: skip
        console.print(f"stored SLA policy {name}")
    found = _run(
        store,
        lambda s: [p.as_dict() for p in sla.list_policies(s)],
        lambda c: c.call("GET", "/api/v1/sla-policies"),
    )
    table = Table("policy", "calendar", "targets (business minutes: first response / resolution)")
    for p in found:
        cal = p["calendar"]
        where = f"{','.join(cal['days'])} {cal['hours']} {cal['timezone']}"
        if cal["holidays"]:
            sub = f"-{cal['subdivision']}" if cal["subdivision"] else ""
            where += f", holidays {cal['holidays']}{sub}"
        targets = "; ".join(
            f"{k} {v['first_response_minutes']:g}/{v['resolution_minutes']:g}"
            for k, v in p["targets"].items()
        )
        table.add_row(p["name"], where, targets)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(rules_app, name="rules")
    app.add_typer(cases_app, name="cases")


__all__ = ["cases_app", "register", "rules_app"]
