"""``corridor surveys trigger|triggers|invite|invitations|send`` and ``corridor surveys contact
add|list|remove``: who is invited to a survey, when, and the contact-frequency rules.

Each opens the store itself; when a running server holds an embedded store, the command goes
through that server's API instead (``send`` excepted: the server's ``surveys.invitations`` job
sends every minute by itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from corridor.cli.common import FormatOpt, NewestOpt, RuleIdArg, StoreOpt, SurveyIdArg, console
from corridor.cli.rules import actor, here_or_server, listing, quoted, when
from corridor.cli.surveys import BaseUrlOpt, surveys_app
from corridor.errors import CorridorError

if TYPE_CHECKING:
    from corridor.store import Store

contact_app = typer.Typer(
    help="Contact-frequency rules: how often one person may be invited, across every survey.",
    no_args_is_help=True,
)
surveys_app.add_typer(contact_app, name="contact")

#: ``--remind`` of the triggers and of a list of people invited
RemindOpt = Annotated[str | None, typer.Option(help="one reminder this long after")]


@surveys_app.command("trigger")
def surveys_trigger(
    survey_id: SurveyIdArg,
    after: Annotated[
        str, typer.Option(help="interaction (at --touchpoint) or case_resolved (recovery)")
    ],
    touchpoint: Annotated[str | None, typer.Option(help="interaction triggers")] = None,
    delay: Annotated[str, typer.Option(help="how long after, e.g. 2h, 1d")] = "1h",
    remind: RemindOpt = None,
    store: StoreOpt = None,
) -> None:
    """Invite after each interaction at a touch point, or each resolved case."""
    from corridor.surveys import invitations

    body = {"kind": after, "touchpoint": touchpoint, "delay": delay, "remind": remind}
    got = here_or_server(
        store,
        lambda s: invitations.add_trigger(
            s, survey_id, after, touchpoint=touchpoint, delay=delay, remind=remind, by=actor()
        ).as_dict(),
        lambda c: c.call("POST", f"/api/v1/surveys/{quoted(survey_id)}/triggers", json_body=body),
    )
    console.print(
        f"trigger {got['trigger_id']}: invite to {survey_id} {_delay(got['delay_s'])} after each "
        + (f"interaction at {got['touchpoint']}" if after == "interaction" else "resolved case")
        + (f", one reminder {_delay(got['remind_s'])} later" if got["remind_s"] else "")
    )


def _delay(seconds: int | None) -> str:
    s = int(seconds or 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


@surveys_app.command("triggers")
def surveys_triggers(
    survey_id: SurveyIdArg,
    store: StoreOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List a survey's triggers."""
    from corridor.surveys import invitations

    listing(
        store,
        fmt,
        lambda s: [t.as_dict() for t in invitations.list_triggers(s, survey_id)],
        lambda c: c.call("GET", f"/api/v1/surveys/{quoted(survey_id)}/triggers"),
        f"no triggers for {survey_id}; add one with `corridor surveys trigger`",
        Table("trigger", "after", "touch point", "delay", "reminder", "enabled", "made"),
        lambda t: (
            t["trigger_id"], t["kind"], t["touchpoint"] or "", _delay(t["delay_s"]),
            _delay(t["remind_s"]) if t["remind_s"] else "", "yes" if t["enabled"] else "no",
            when(t["created_at"]),
        ),
    )  # fmt: skip


@surveys_app.command("invite")
def surveys_invite(
    survey_id: SurveyIdArg,
    person: Annotated[list[str] | None, typer.Option(help="a person id (repeatable)")] = None,
    file: Annotated[
        Path | None, typer.Option(help="a text file of person ids, one per line")
    ] = None,
    remind: RemindOpt = None,
    store: StoreOpt = None,
) -> None:
    """Invite a list of people (the contact rules apply when each is sent)."""
    from corridor.surveys import invitations

    people = list(person or [])
    if file is not None:
        try:
            # (utf-8-sig: a byte order mark, which spreadsheet exports write, is not an id's)
            text = file.read_text(encoding="utf-8-sig")
            people += [line.strip() for line in text.splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise CorridorError(f"cannot read {file}: {e}") from None
    if not people:
        raise CorridorError("name the people to invite: --person ID (repeatable) or --file")
    body: dict[str, Any] = {"people": people, "remind": remind}
    got = here_or_server(
        store,
        lambda s: {"invited": invitations.invite(s, survey_id, people, remind=remind)},
        lambda c: c.call(
            "POST", f"/api/v1/surveys/{quoted(survey_id)}/invitations", json_body=body
        ),
    )
    console.print(
        f"{got['invited']} invitation(s) to {survey_id} made; the server sends them within a "
        "minute (or run `corridor surveys send`)"
    )


@surveys_app.command("invitations")
def surveys_invitations(
    survey_id: SurveyIdArg,
    state: Annotated[
        str | None, typer.Option(help="scheduled, held, sent, answered or failed")
    ] = None,
    limit: NewestOpt = 100,
    store: StoreOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List a survey's invitations; held ones say which contact rule held them and why."""
    from corridor.surveys import invitations

    params: dict[str, Any] = {"limit": limit, **({"state": state} if state else {})}

    def row(i: dict[str, Any]) -> tuple[str, ...]:
        rule = f"{i['held_rule']}: " if i["held_rule"] else ""  # (none: a reminder's address)
        why = i["held_reason"] and rule + i["held_reason"]
        return (
            escape(i["person_id"]), when(i["due_at"]), i["state"],
            escape(why or i["error"] or (when(i["sent_at"]) if i["sent_at"] else "")),
        )  # fmt: skip

    listing(
        store,
        fmt,
        lambda s: [
            i.as_dict()
            for i in invitations.list_invitations(s, survey_id=survey_id, state=state, limit=limit)
        ],
        lambda c: c.call("GET", f"/api/v1/surveys/{quoted(survey_id)}/invitations", params=params),
        f"no invitations to {survey_id}" + (f" {state}" if state else ""),
        Table("person", "due", "state", "why / when"),
        row,
    )


@surveys_app.command("send")
def surveys_send(store: StoreOpt = None, base_url: BaseUrlOpt = None) -> None:
    """Send the invitations due now (what the server's surveys.invitations job does every
    minute): new ones from the triggers, the contact rules, the mails, the reminders."""
    from corridor.cli.common import open_to_write
    from corridor.settings import Settings
    from corridor.surveys import invitations

    s = Settings.from_env()
    url = base_url or s.public_url or f"http://{s.host}:{s.port}"
    instead = "or leave it to the server: its surveys.invitations job sends every minute"
    with open_to_write(store, "corridor surveys send", instead) as st:
        report = invitations.run(st, url)
    console.print(
        report.summary() + "; the mails go out with the outbox (a running server delivers them)"
    )


@contact_app.command("add")
def contact_add(
    kind: Annotated[
        str,
        typer.Argument(help="max_per_period, min_gap, exclude, open_case or recent_complaint"),
    ],
    rule_id: Annotated[str | None, typer.Option("--id", help="the rule's id")] = None,
    count: Annotated[int | None, typer.Option(help="max_per_period: at most this many")] = None,
    period: Annotated[str | None, typer.Option(help="e.g. 30d, 7d, 12h")] = None,
    field: Annotated[
        str | None, typer.Option(help="exclude: segment, region or attributes.<key>")
    ] = None,
    value: Annotated[
        list[str] | None, typer.Option(help="exclude: a value excluded (repeatable)")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Add a contact-frequency rule."""
    from corridor.surveys import contact

    rule = contact.build(
        kind, rule_id=rule_id, count=count, period=period, field_name=field, values=value or []
    )  # checked before any store is opened
    body = {"kind": kind, "rule_id": rule.rule_id, "count": count, "period": period,
            "field": field, "values": value or []}  # fmt: skip
    got = here_or_server(
        store,
        lambda s: contact.add(s, rule, by=actor()).as_dict(),
        lambda c: c.call("POST", "/api/v1/contact-rules", json_body=body),
    )
    console.print(f"contact rule {got['rule_id']}: {got['description']}")


@contact_app.command("list")
def contact_list(store: StoreOpt = None, fmt: FormatOpt = "table") -> None:
    """List the contact-frequency rules."""
    from corridor.surveys import contact

    listing(
        store,
        fmt,
        lambda s: [r.as_dict() for r in contact.list_rules(s)],
        lambda c: c.call("GET", "/api/v1/contact-rules"),
        "no contact rules: anyone may be invited any time",
        Table("rule", "kind", "rule in words"),
        lambda r: (r["rule_id"], r["kind"], escape(r["description"])),
    )


@contact_app.command("remove")
def contact_remove(rule_id: RuleIdArg, store: StoreOpt = None) -> None:
    """Remove a contact-frequency rule."""
    from corridor.surveys import contact

    def here(s: Store) -> None:
        contact.remove(s, rule_id)

    here_or_server(
        store, here, lambda c: c.call("DELETE", f"/api/v1/contact-rules/{quoted(rule_id)}")
    )
    console.print(f"contact rule {rule_id} removed")


__all__ = ["contact_app"]
