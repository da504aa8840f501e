"""``corridor surveys load|list|show|link|links|revoke``: survey definitions and their links.

Each opens the store itself; when a running server holds an embedded store, the command goes
through that server's API instead (``/api/v1/surveys``), as ``corridor rules`` does.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from corridor.cli.common import FormatOpt, LinkIdArg, NewestOpt, StoreOpt, SurveyIdArg, console
from corridor.cli.render import json_instead, print_json
from corridor.cli.rules import actor, here_or_server, listing, quoted, when

if TYPE_CHECKING:
    from corridor.store import Store

surveys_app = typer.Typer(
    help="Hosted surveys: definitions, personal and anonymous links.", no_args_is_help=True
)

BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        help="the server's public address (https://cx.example.com): print whole links, not "
        "only their /s/<token> path"
    ),
]


@surveys_app.command("load")
def surveys_load(
    file: Annotated[Path, typer.Argument(help="a survey definition, YAML or JSON")],
    store: StoreOpt = None,
) -> None:
    """Load a survey definition; a changed one becomes the survey's next version."""
    from corridor.surveys import catalog, definition

    survey = definition.read_file(file)  # problems are said before any store is opened

    def here(s: Store) -> dict[str, Any]:
        version, created = catalog.save(s, survey, by=actor(), source=str(file))
        return {"survey_id": survey.id, "version": version, "created": created}

    got = here_or_server(
        store,
        here,
        lambda c: c.call("PUT", f"/api/v1/surveys/{quoted(survey.id)}", json_body=survey.document),
    )
    if got["created"]:
        console.print(f"loaded survey {got['survey_id']}, version {got['version']}")
    else:
        console.print(
            f"survey {got['survey_id']} is unchanged (version {got['version']}); nothing loaded"
        )


@surveys_app.command("list")
def surveys_list(store: StoreOpt = None, fmt: FormatOpt = "table") -> None:
    """List the surveys (their latest versions)."""
    from corridor.surveys import catalog

    def here(s: Store) -> list[dict[str, Any]]:
        out = []
        for found in catalog.list_all(s):
            d = found.as_dict()
            d.pop("definition")
            out.append(d)
        return out

    def row(s: dict[str, Any]) -> tuple[str, ...]:
        title = s["title"].get(s["fallback_language"], "")
        return (
            s["survey_id"], escape(title), str(s["version"]), ", ".join(s["touchpoints"]),
            ", ".join(s["languages"]), f"{s['questions']} on {s['pages']} page(s)",
            when(s["updated_at"]),
        )  # fmt: skip

    listing(
        store,
        fmt,
        here,
        lambda c: c.call("GET", "/api/v1/surveys"),
        "no surveys yet; load one with `corridor surveys load FILE`",
        Table(Column("survey", no_wrap=True), "title", "version", "touch points", "languages",
              "questions", "changed"),
        row,
    )  # fmt: skip


@surveys_app.command("show")
def surveys_show(
    survey_id: SurveyIdArg,
    version: Annotated[int | None, typer.Option(help="an older version")] = None,
    store: StoreOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="yaml or json")] = "yaml",
) -> None:
    """Show a survey's definition (the latest version, or --version)."""
    import yaml

    from corridor.surveys import catalog

    if fmt not in ("yaml", "json"):
        from corridor.errors import CorridorError

        raise CorridorError(f"--format {fmt!r}: use yaml or json")
    params = {"version": version} if version else None
    got = here_or_server(
        store,
        lambda s: catalog.get(s, survey_id, version).as_dict(),
        lambda c: c.call("GET", f"/api/v1/surveys/{quoted(survey_id)}", params=params),
    )
    if fmt == "json":
        print_json(got)
        return
    by = f" by {got['loaded_by']}" if got["loaded_by"] else ""
    console.print(
        f"# survey {got['survey_id']}, version {got['version']} of {got['latest_version']}, "
        f"loaded {when(got['loaded_at'])}{by}",
        markup=False,
    )
    console.print(
        yaml.safe_dump(got["definition"], allow_unicode=True, sort_keys=False), markup=False
    )


@surveys_app.command("link")
def surveys_link(
    survey_id: SurveyIdArg,
    person: Annotated[
        list[str] | None,
        typer.Option(help="a personal link for this person (repeat for several)"),
    ] = None,
    anonymous: Annotated[
        bool, typer.Option("--anonymous", help="a link anyone may answer (a QR code)")
    ] = False,
    interaction: Annotated[
        str | None, typer.Option(help="the interaction the survey asks about (one person)")
    ] = None,
    touchpoint: Annotated[
        str | None, typer.Option(help="default: the interaction's, else the survey's only one")
    ] = None,
    channel: Annotated[str | None, typer.Option(help="email, sms, qr, web, ...")] = None,
    language: Annotated[str | None, typer.Option(help="the form's language")] = None,
    days: Annotated[
        float | None,
        typer.Option(help="valid for this many days (personal default: the survey's link_days)"),
    ] = None,
    base_url: BaseUrlOpt = None,
    store: StoreOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Make personal links (--person, repeatable) or an anonymous one (--anonymous). Each
    token is shown once: only its hash is stored."""
    from corridor.errors import CorridorError
    from corridor.surveys import links

    people = person or []
    if anonymous == bool(people):
        raise CorridorError("give --person PERSON_ID (repeatable) or --anonymous, one of the two")
    if interaction and len(people) > 1:
        raise CorridorError("--interaction names one person's interaction; give one --person")
    bodies: list[dict[str, Any]] = [{"person_id": p} for p in people] or [{"anonymous": True}]
    given = {"interaction_id": interaction, "touchpoint": touchpoint, "channel": channel,
             "language": language, "valid_days": days}  # fmt: skip
    common: dict[str, Any] = {k: v for k, v in given.items() if v is not None}

    def here(s: Store) -> list[dict[str, Any]]:
        made = []
        for body in bodies:
            link, token = links.create(s, survey_id, **common, **body, by=actor())
            made.append({**link.as_dict(), "token": token, "path": links.path(token)})
        return made

    def via(c: Any) -> list[dict[str, Any]]:
        path = f"/api/v1/surveys/{quoted(survey_id)}/links"
        return [c.call("POST", path, json_body={**common, **b}) for b in bodies]

    made = here_or_server(store, here, via)
    base = (base_url or "").rstrip("/")
    for m in made:
        m["url"] = base + m["path"] if base else m.get("url", m["path"])
    if json_instead(fmt, made):
        return
    table = Table(Column("link", no_wrap=True), "for", "expires", Column("url", no_wrap=True))
    for m in made:
        who = m["person_id"] or f"anyone at {m['touchpoint']}"
        table.add_row(m["link_id"], escape(who), when(m["expires_at"]) or "never", m["url"])
    console.print(table)
    console.print("[dim]each link is shown once: only its hash is stored[/]")


@surveys_app.command("links")
def surveys_links(
    survey_id: SurveyIdArg,
    limit: NewestOpt = 100,
    store: StoreOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """List a survey's links (never their tokens)."""
    from corridor.surveys import catalog, links

    limit = max(1, min(limit, 10_000))

    def here(s: Store) -> list[dict[str, Any]]:
        catalog.get(s, survey_id)
        return [k.as_dict() for k in links.list_links(s, survey_id, limit)]

    listing(
        store,
        fmt,
        here,
        lambda c: c.call(
            "GET", f"/api/v1/surveys/{quoted(survey_id)}/links", params={"limit": limit}
        ),
        f"no links to {survey_id} yet; make one with `corridor surveys link`",
        Table(Column("link", no_wrap=True), "kind", "person", "touch point", "channel", "made",
              "expires", "state"),
        lambda k: (
            k["link_id"], k["kind"], escape(k["person_id"] or ""), k["touchpoint"],
            k["channel"] or "", when(k["created_at"]), when(k["expires_at"]) or "never",
            k["state"],
        ),
    )  # fmt: skip


@surveys_app.command("revoke")
def surveys_revoke(survey_id: SurveyIdArg, link_id: LinkIdArg, store: StoreOpt = None) -> None:
    """Withdraw a link: from now on it is refused with a clear page (410)."""
    from corridor.errors import CorridorError
    from corridor.surveys import links

    def here(s: Store) -> dict[str, Any]:
        link = links.get(s, link_id)
        if link.survey_id != survey_id:
            raise CorridorError(f"survey {survey_id!r} has no link {link_id!r}")
        return links.revoke(s, link_id).as_dict()

    got = here_or_server(
        store,
        here,
        lambda c: c.call(
            "POST", f"/api/v1/surveys/{quoted(survey_id)}/links/{quoted(link_id)}/revoke"
        ),
    )
    revoked = got["revoked_at"]
    at = datetime.fromisoformat(revoked) if isinstance(revoked, str) else revoked
    console.print(f"revoked {got['link_id']} at {at:%Y-%m-%d %H:%M} UTC")


def register(app: typer.Typer) -> None:
    app.add_typer(surveys_app, name="surveys")


__all__ = ["register", "surveys_app"]
