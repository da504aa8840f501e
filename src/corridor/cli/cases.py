"""``corridor cases list|show|assign|note|resolve|state|causes|sla|report``.

Each opens the store itself (the actor in a case's history is the user running the command);
when a running server holds an embedded store, the command goes through that server's API
instead (``/api/v1/cases``), as ``corridor users`` does. :func:`register` adds these and
``corridor rules`` (:mod:`corridor.cli.rules`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from corridor.cli.common import CaseIdArg, FormatOpt, LimitOpt, StoreOpt, console, option_set
from corridor.cli.render import check_format, json_instead
from corridor.cli.rules import Many, actor, here_or_server, quoted, rules_app, when
from corridor.errors import CorridorError

if TYPE_CHECKING:
    from corridor.store import Store

cases_app = typer.Typer(
    help="Cases: alerts routed to their owner, with SLAs.", no_args_is_help=True
)


# -- cases ------------------------------------------------------------------------------------
#: what ``cases list`` filters by, each option repeatable (the API's query parameters)
_FILTERS = (
    "state",
    "priority",
    "assignee",
    "department",
    "partner",
    "touchpoint",
    "person",
    "rule",
)


@cases_app.command("list")
@option_set("given", dict.fromkeys(_FILTERS, Many))
def cases_list(
    given: dict[str, list[str] | None],
    breached: Annotated[
        bool | None,
        typer.Option("--breached/--not-breached", help="only with (or without) a breach"),
    ] = None,
    limit: LimitOpt = 100,
    store: StoreOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List cases, open ones first (filters repeat, or take commas: --state new --state open,
    or --state new,open)."""
    from corridor.loop import cases

    check_format(fmt)
    columns = {"partner": "partner_id", "person": "person_id", "rule": "rule_id"}
    # (repeated, comma-separated or both: cases.list_cases reads them as the API does)
    filters = {columns.get(k, k): v for k, v in given.items() if v}
    params: dict[str, Any] = {k: v for k, v in given.items() if v}
    params["limit"] = limit
    if breached is not None:
        params["breached"] = str(breached).lower()

    def here(s: Store) -> dict[str, Any]:
        found, total = cases.list_cases(s, None, filters=filters, breached=breached, limit=limit)
        return {"total": total, "limit": limit, "offset": 0, "cases": found}

    out = here_or_server(store, here, lambda c: c.call("GET", "/api/v1/cases", params=params))
    if json_instead(fmt, out):
        return
    if not out["cases"]:
        console.print("no cases match")
        return
    table = Table(Column("case", no_wrap=True), "state", "priority", "SLA", "due", "owner",
                  "assignee", "title")  # fmt: skip
    for c in out["cases"]:
        sla_state = c["sla"]
        table.add_row(
            c["case_id"], c["state"], c["priority"], sla_state["status"], when(sla_state["due"]),
            c["owner"]["name"] or "", c["assignee"] or "", escape(c["title"]),
        )  # fmt: skip
    console.print(table)
    if out["total"] > len(out["cases"]):
        console.print(f"[dim]{len(out['cases'])} of {out['total']}; --limit shows more[/]")


@cases_app.command("show")
def cases_show(case_id: CaseIdArg, store: StoreOpt = None, fmt: FormatOpt = "table") -> None:
    """One case: its fields, its history and the alerts behind it."""
    from corridor.loop import cases

    check_format(fmt)
    out = here_or_server(
        store,
        lambda s: cases.get_case(s, None, case_id),
        lambda c: c.call("GET", f"/api/v1/cases/{quoted(case_id)}"),
    )
    if json_instead(fmt, out):
        return
    sla_state = out["sla"]
    console.print(f"[bold]{out['case_id']}[/] {escape(out['title'])}", soft_wrap=True)
    console.print(
        f"{out['state']} · {out['priority']} · owner {out['owner']['kind']} "
        f"{out['owner']['name'] or ''} · assignee {out['assignee'] or '-'} · SLA "
        f"{sla_state['clock'].replace('_', ' ')} {sla_state['status']}"
        + (f" (due {when(sla_state['due'])})" if sla_state["due"] else "")
    )
    if out["root_cause"]:
        console.print(f"root cause: {out['root_cause']} {out['root_cause_event'] or ''}")
    if out["verification"]:
        console.print(f"verification: {out['verification'].replace('_', ' ')}")
    table = Table("when", "who", "what", "from", "to", "note")
    for e in out["history"]:
        table.add_row(
            when(e["changed_at"]), escape(e["actor"]), e["action"], e["old_value"] or "",
            e["new_value"] or "", escape(e["note"] or ""),
        )  # fmt: skip
    console.print(table)
    console.print(f"{len(out['alerts_fired'])} alerts: " + "; ".join(
        escape(a["summary"]) for a in out["alerts_fired"][:5]), soft_wrap=True)  # fmt: skip


def _change(
    store: str | None, case_id: str, here: Callable[[Store], Any], path: str, body: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = here_or_server(
        store,
        here,
        lambda c: c.call("POST", f"/api/v1/cases/{quoted(case_id)}/{path}", json_body=body),
    )
    return out


@cases_app.command("assign")
def cases_assign(
    case_id: CaseIdArg,
    user: Annotated[str | None, typer.Argument(help="a username; leave out to unassign")] = None,
    store: StoreOpt = None,
) -> None:
    """Assign a case to a user (or back to its owner's queue)."""
    from corridor.loop import cases

    _change(store, case_id, lambda s: cases.assign(s, None, case_id, user, actor=actor()),
            "assign", {"assignee": user})  # fmt: skip
    console.print(f"{case_id} assigned to {user}" if user else f"{case_id} unassigned")


@cases_app.command("note")
def cases_note(
    case_id: CaseIdArg,
    text: Annotated[str, typer.Argument(help="the note")],
    store: StoreOpt = None,
) -> None:
    """Add a note to a case (the first one is its first response)."""
    from corridor.loop import cases

    _change(store, case_id, lambda s: cases.add_note(s, None, case_id, text, actor=actor()),
            "notes", {"text": text})  # fmt: skip
    console.print(f"note added to {case_id}")


def _state(store: str | None, case_id: str, state: str, **extra: Any) -> dict[str, Any]:
    from corridor.loop import cases

    return _change(
        store, case_id,
        lambda s: cases.change_state(s, None, case_id, state, actor=actor(), **extra),
        "state", {"state": state, **extra},
    )  # fmt: skip


@cases_app.command("resolve")
def cases_resolve(
    case_id: CaseIdArg,
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
                  f"{when(out['verify_after'])}")  # fmt: skip


@cases_app.command("state")
def cases_state(
    case_id: CaseIdArg,
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

    found = here_or_server(
        store, cases.list_root_causes, lambda c: c.call("GET", "/api/v1/case-root-causes")
    )
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

    from corridor.domain import yaml_text
    from corridor.loop import sla

    if name is not None:
        if file is None:
            raise CorridorError("give the policy's file too: corridor cases sla NAME FILE")
        try:
            doc = yaml_text.load(file.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            where = getattr(e, "problem_mark", None)
            at = f" (line {where.line + 1})" if where is not None else ""
            raise CorridorError(f"{file} is not YAML or JSON{at}: {e}".split("\n")[0]) from None
        if not isinstance(doc, dict):
            raise CorridorError(f"{file}: a policy is a mapping with calendar and targets")

        def here(s: Store) -> dict[str, Any]:
            policy = sla.Policy.from_dict(doc, name)
            sla.save_policy(s, policy)
            return policy.as_dict()

        body = {k: v for k, v in doc.items() if k != "name"}
        here_or_server(store, here, lambda c: c.call("PUT", f"/api/v1/sla-policies/{quoted(name)}",
                                           json_body=body))  # fmt: skip
        console.print(f"stored SLA policy {name}")
    found = here_or_server(
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


@cases_app.command("report")
def cases_report(
    by: Annotated[
        str, typer.Option(help="department, partner_id, team, touchpoint or rule_id")
    ] = "department",
    since: Annotated[str | None, typer.Option(help="cases opened from then on (ISO-8601)")] = None,
    until: Annotated[str | None, typer.Option(help="cases opened before then (ISO-8601)")] = None,
    store: StoreOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """How the loop performs per department: cases, time to first response and to resolution
    (business minutes, median and p90), SLA breaches, share of fixes verified."""
    from corridor.analytics.core.dimensions import check_range
    from corridor.loop import reports

    check_format(fmt)

    def here(s: Store) -> dict[str, Any]:
        rows = reports.case_report(s, None, by=by, since=since, until=until)
        lo, hi = check_range(since, until)
        return {"by": by, "since": lo, "until": hi, "rows": rows}

    params = {k: v for k, v in (("by", by), ("since", since), ("until", until)) if v}
    out = here_or_server(store, here, lambda c: c.call("GET", "/api/v1/case-report", params=params))
    if json_instead(fmt, out):
        return
    table = Table(by, "cases", "open", "1st response median/p90", "resolution median/p90",
                  "breached", "verified")  # fmt: skip

    def pair(a: Any, b: Any) -> str:
        return "-" if a is None else f"{a:g} / {b:g} min"

    for r in out["rows"]:
        share = r["verified_share"]
        verified = "-" if share is None else (
            f"{share:.0%} ({r['verified_share_low']:.0%}-{r['verified_share_high']:.0%}) "
            f"of {r['verification_decided']}"
        )  # fmt: skip
        table.add_row(
            str(r["group"]), str(r["opened"]), str(r["open_now"]),
            pair(r["first_response_median_min"], r["first_response_p90_min"]),
            pair(r["resolution_median_min"], r["resolution_p90_min"]),
            f"{r['breached']} ({r['breached_share']:.0%})", verified,
        )  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(rules_app, name="rules")
    app.add_typer(cases_app, name="cases")


__all__ = ["cases_app", "register"]
