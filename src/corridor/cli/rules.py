"""``corridor rules add|list|disable|test``, and what the rules and cases commands share.

Each opens the store itself (the actor in a case's history is the user running the command);
when a running server holds an embedded store, the command goes through that server's API
instead (``/api/v1/rules``, ``/api/v1/cases``), as ``corridor users`` does.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Column, Table

from corridor.cli.common import FormatOpt, RuleIdArg, StoreOpt, console, here_or_server, option_set
from corridor.cli.render import check_format, json_instead
from corridor.errors import CorridorError
from corridor.loop import rule_params

if TYPE_CHECKING:
    from corridor.auth.local_server import ServerClient
    from corridor.store import Store

rules_app = typer.Typer(help="Alert rules: what opens a case.", no_args_is_help=True)

_KINDS = "detractor, score_below, broken_promise, text, churn_jump (record rules); threshold, change, drift, ripple, forecast (aggregate rules)"  # noqa: E501
Many = Annotated[list[str] | None, typer.Option()]


def actor() -> str:
    """Who runs the command, for a case's history."""
    try:
        return f"{getpass.getuser()} (cli)"
    except Exception:  # no user name in the environment
        return "cli"


def quoted(part: str) -> str:
    return quote(part, safe="")


def when(value: Any) -> str:
    if value is None or value == "":
        return ""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{at:%Y-%m-%d %H:%M}"


def listing(
    store: str | None,
    fmt: str,
    here: Callable[[Store], Any],
    via: Callable[[ServerClient], Any],
    empty: str,
    table: Table,
    row: Callable[[dict[str, Any]], Sequence[str]],
) -> None:
    """What a list command shows: the rows (:func:`here_or_server`) as JSON (``--format
    json``), or ``table`` with ``row(r)`` for each; when there are none, ``empty`` says so (and
    how to add one)."""
    check_format(fmt)
    found = here_or_server(store, here, via)
    if json_instead(fmt, found):
        return
    if not found:
        console.print(empty)
        return
    for r in found:
        table.add_row(*row(r))
    console.print(table)


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


#: what a rule may be limited to, each option repeatable (its scope)
_SCOPE = ("touchpoint", "department", "partner", "segment", "region")


#: the options of a rule's definition, one for each parameter the API's body declares
#: (:mod:`corridor.loop.rule_params`), with its description; a list one repeats
#: and is named in the singular (``--promise``); ``params`` is ``--param NAME=VALUE``
_SINGULAR = {"promises": "promise", "intents": "intent", "themes": "theme"}
_DEFINITION: dict[str, Any] = {
    _SINGULAR.get(key, key): Annotated[kind | None, typer.Option(help=words)]
    for key, (kind, words) in rule_params.parameters().items()
}


def _definition(**given: Any) -> dict[str, Any]:
    """The definition's parameters given (by their API names)."""
    plural = {cli: key for key, cli in _SINGULAR.items()}
    return {plural.get(k, k): v for k, v in given.items() if v is not None}


@rules_app.command("add")
@option_set("given", dict.fromkeys(_SCOPE, Many))
@option_set("definition", _DEFINITION, combine=_definition)
def rules_add(
    rule_id: Annotated[str, typer.Argument(help="the rule's id, e.g. detractors-delivery")],
    kind: Annotated[str, typer.Option(help=f"what it watches: {_KINDS}")],
    name: Annotated[str | None, typer.Option(help="a title (default: the rule in words)")] = None,
    *,  # keyword-only from here: `definition` and `given` (see option_set) have no default
    definition: dict[str, Any],
    param: Annotated[
        list[str] | None, typer.Option(help="another parameter of the analysis, NAME=VALUE")
    ] = None,
    given: dict[str, list[str] | None],
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

    params = _params(param)
    if params is not None:
        definition["params"] = params
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
        return rules.add_rule(s, rule, actor=actor()).as_dict()

    made = here_or_server(store, here, lambda c: c.call("POST", "/api/v1/rules", json_body=body))
    console.print(f"added rule {made['rule_id']}: {escape(made['description'])}", soft_wrap=True)


@rules_app.command("list")
def rules_list(store: StoreOpt = None, fmt: FormatOpt = "table") -> None:
    """List alert rules."""
    from corridor.loop import rules

    listing(
        store,
        fmt,
        lambda s: [r.as_dict() for r in rules.list_rules(s)],
        lambda c: c.call("GET", "/api/v1/rules"),
        "no rules yet; add one with `corridor rules add ID --kind detractor`",
        Table(Column("rule", no_wrap=True), "kind", "watches", "cooldown", "priority", "owner",
              "enabled"),
        lambda r: (
            r["rule_id"], r["kind"], r["description"], f"{r['cooldown_s'] / 86400:g}d",
            r["priority"], r["team"] or "(routed)", "yes" if r["enabled"] else "no",
        ),
    )  # fmt: skip


@rules_app.command("disable")
def rules_disable(rule_id: RuleIdArg, store: StoreOpt = None) -> None:
    """Stop a rule from firing (its alerts and cases stay)."""
    from corridor.loop import rules

    here_or_server(
        store,
        lambda s: rules.disable_rule(s, rule_id, actor=actor()).as_dict(),
        lambda c: c.call("POST", f"/api/v1/rules/{quoted(rule_id)}/disable"),
    )
    console.print(f"disabled rule {rule_id}")


@rules_app.command("test")
def rules_test(
    rule_id: RuleIdArg,
    since: Annotated[str | None, typer.Option(help="from this time on (ISO-8601)")] = None,
    until: Annotated[str | None, typer.Option(help="before this time (ISO-8601)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="alerts listed")] = 20,
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
    out = here_or_server(
        store, here, lambda c: c.call("GET", f"/api/v1/rules/{quoted(rule_id)}/test", params=params)
    )
    if json_instead(fmt, out):
        return
    console.print(f"rule {rule_id} ({escape(out['rule']['description'])}) would have fired "
                  f"{out['n']:,} alerts", soft_wrap=True)  # fmt: skip
    table = Table("when", "subject", "summary", "owner")
    for a in out["alerts"]:
        owner = a["partner_id"] or a["department"] or ""
        table.add_row(when(a["occurred_at"]), a["subject"], escape(a["summary"]), owner)
    if out["alerts"]:
        console.print(table)
    if out["truncated"]:
        console.print(f"[dim]the first {limit}; --limit shows more, --format json all fields[/]")


__all__ = ["Many", "actor", "here_or_server", "quoted", "rules_app", "when"]
