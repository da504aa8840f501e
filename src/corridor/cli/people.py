"""``corridor people export|preview|erase|anonymise|resume|compact|retention|settings`` and
``corridor audit list|export``: a data subject's requests answered from the command line
(:mod:`corridor.privacy`). Each opens the store itself (the actor in the audit log is the
operating-system user, ``cli``); while a running server holds an embedded store, stop it or use
the HTTP API (``/api/v1/people/{id}/...``) instead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from corridor.cli.common import (
    FormatOpt,
    LimitOpt,
    StoreOpt,
    check_out,
    console,
    open_to_write,
    option_set,
)
from corridor.cli.render import check_format, json_instead
from corridor.errors import CorridorError

if TYPE_CHECKING:
    from corridor.privacy.subject import Group
    from corridor.store import Store

T = TypeVar("T")

people_app = typer.Typer(
    help="A person's data: export, erase or anonymise it on request (docs/privacy.md).",
    no_args_is_help=True,
)
audit_app = typer.Typer(help="The audit log: who did what, when, from where.", no_args_is_help=True)

_INSTEAD = " (or use the HTTP API: /api/v1/people/{id}/...)"

RefArg = Annotated[str | None, typer.Argument(help="the person's id (or name them by an option)")]
EmailOpt = Annotated[str | None, typer.Option("--email", help="the person's e-mail instead")]
PhoneOpt = Annotated[str | None, typer.Option("--phone", help="the person's phone instead")]
CrmOpt = Annotated[str | None, typer.Option("--crm-id", help="the person's CRM id instead")]
YesOpt = Annotated[bool, typer.Option("--yes", help="do it without asking")]


#: a command taking ``who`` (see :func:`~corridor.cli.common.option_set`) names the person by
#: their id or by one of these options: ``_ref(**who)`` reads them
_naming_person = option_set(
    "who", {"ref": RefArg, "email": EmailOpt, "phone": PhoneOpt, "crm_id": CrmOpt}
)


def _ref(
    ref: str | None, email: str | None, phone: str | None, crm_id: str | None
) -> tuple[str, str]:
    given = [
        (v, k)
        for v, k in ((ref, "person_id"), (email, "email"), (phone, "phone"), (crm_id, "crm_id"))
        if v
    ]
    if len(given) != 1:
        raise CorridorError(
            "name the person once: a person id, or --email, --phone or --crm-id "
            f"({len(given)} given)"
        )
    value, by = given[0]
    if by == "email":
        value = value.strip().lower()
    return value, by


def _group(s: Store, ref: str, by: str) -> Group:
    from corridor.privacy.subject import find_group

    return find_group(s, ref, by=by)


def _answer(store: str | None, command: str, fmt: str, do: Callable[[Store], T]) -> T | None:
    """``do(store)`` for ``corridor people COMMAND``, which owns the store: its answer for the
    caller to show, or None when it was printed as JSON (``--format`` json or csv)."""
    check_format(fmt)
    with open_to_write(store, f"people {command}", _INSTEAD) as s:
        out = do(s)
    return None if json_instead(fmt, out) else out


def _preview_table(out: dict[str, Any]) -> None:
    table = Table("part", "table", "rows", "what it is")
    for p in out["parts"]:
        table.add_row(p["part"], p["table"], str(p["rows"]), escape(p["about"]))
    console.print(table)
    console.print(
        f"{out['persons']} person(s), {out['identities']} identities, "
        f"{out['total_rows']} rows in all"
    )


@people_app.command("export")
@_naming_person
def export(
    who: dict[str, str | None],
    out: Annotated[
        Path | None, typer.Option("--out", help="the ZIP file to write (default: ID.zip)")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Everything held about a person and everyone merged into them, as one ZIP archive."""
    from corridor.privacy import audit
    from corridor.privacy.export import archive

    value, by = _ref(**who)
    if out is not None:
        check_out(out)
    with open_to_write(store, "people export", _INSTEAD) as s:
        group = _group(s, value, by)
        target = out or Path(f"{group.canonical}.zip")
        if out is None:  # (the default, once the person is known; before the export is logged)
            check_out(target)
        data = archive(s, group, actor=audit.Actor.cli())
    target.write_bytes(data)
    console.print(f"wrote {target} ({len(data):,} bytes; {len(group.persons)} person(s))")


@people_app.command("preview")
@_naming_person
def preview(who: dict[str, str | None], store: StoreOpt = None, fmt: FormatOpt = "table") -> None:
    """What an erase or anonymise of a person would touch: rows per part."""
    from corridor.privacy import requests

    check_format(fmt)
    value, by = _ref(**who)
    with open_to_write(store, "people preview", _INSTEAD) as s:
        out = requests.preview(s, _group(s, value, by))
    if json_instead(fmt, out):
        return
    _preview_table(out)


def _run(action: str, who: dict[str, str | None], yes: bool, store: str | None, fmt: str) -> None:
    from corridor.privacy import audit, requests
    from corridor.privacy.subject import PersonNotFoundError

    check_format(fmt)
    value, by = _ref(**who)
    with open_to_write(store, f"people {action}", _INSTEAD) as s:
        if not yes:
            try:
                _preview_table(requests.preview(s, _group(s, value, by)))
            except PersonNotFoundError:
                pass  # already erased (the request says so) or unknown (it raises)
            else:
                typer.confirm(f"{action} all of this?", abort=True)
        out = requests.request(s, value, action, by=by, actor=audit.Actor.cli())  # type: ignore[arg-type]
    if json_instead(fmt, out):
        return
    if out["already"]:
        console.print(f"already done: request {out['request_id']} ({out['action']})")
        return
    rows = sum(out["removed"].values())
    console.print(
        f"{action} done: request {out['request_id']}, {rows} rows; run `corridor "
        "people compact` to remove the old bytes from the store's files"
    )


def _request_command(action: str, doc: str) -> None:
    """Register ``corridor people ACTION`` (erase, anonymise)."""

    @_naming_person
    def command(
        who: dict[str, str | None],
        yes: YesOpt = False,
        store: StoreOpt = None,
        fmt: FormatOpt = "table",
    ) -> None:
        _run(action, who, yes, store, fmt)

    command.__doc__ = doc
    people_app.command(action)(command)


_request_command(
    "erase", "Erase a person and everyone merged into them, everywhere (rollups refreshed)."
)
_request_command(
    "anonymise",
    "Keep a person's records for aggregates under a random id; remove identifiers and text.",
)


@people_app.command("resume")
def resume(store: StoreOpt = None, fmt: FormatOpt = "table") -> None:
    """Carry on erasures and anonymisations left part-way (after a crash)."""
    from corridor.privacy import audit, requests

    out = _answer(store, "resume", fmt, lambda s: requests.resume(s, actor=audit.Actor.cli()))
    if out is not None:
        console.print(f"{len(out)} request(s) carried on" if out else "no request was left running")


@people_app.command("compact")
def compact(store: StoreOpt = None) -> None:
    """Rewrite the store's files so erased rows leave no bytes behind (DuckDB: a fresh copy of
    the file; PostgreSQL: VACUUM FULL of the tables holding personal data)."""
    from corridor.privacy import audit
    from corridor.privacy.compact import compact as run

    out = run(store)
    with open_to_write(store, "people compact", _INSTEAD) as s:
        audit.log(s, audit.Actor.cli(), "store.compact", detail=out)
    console.print(f"compacted: {out}")
    kept = out.get("kept")
    if isinstance(kept, dict) and kept:
        raise CorridorError(
            "other transactions kept dead rows visible, so their bytes may still be in the "
            f"files of {', '.join(f'{t} ({n} rows)' for t, n in kept.items())}: end long-running "
            "transactions (pg_stat_activity) and run `corridor people compact` again"
        )


@people_app.command("retention")
def retention(store: StoreOpt = None, fmt: FormatOpt = "table") -> None:
    """Apply the retention settings once now (the server does daily)."""
    from corridor.privacy import audit
    from corridor.privacy import retention as ret

    out = _answer(store, "retention", fmt, lambda s: ret.apply(s, actor=audit.Actor.cli()))
    if out is not None:
        console.print(", ".join(f"{k}: {v}" for k, v in out.items()))


@people_app.command("settings")
def settings_cmd(
    change: Annotated[
        list[str] | None,
        typer.Argument(
            help="KEY=VALUE to change, e.g. resurrection=accept or retention.feedback_text_days=730"
        ),
    ] = None,
    store: StoreOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Show the privacy settings, or change some (resurrection, retention.*)."""
    from corridor.privacy import audit, settings

    check_format(fmt)
    changes: dict[str, str] = {}
    for item in change or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise CorridorError(f"{item!r}: write KEY=VALUE, e.g. resurrection=accept")
        changes[key.strip()] = value.strip()
    with open_to_write(store, "people settings", _INSTEAD) as s:
        if changes:
            actor = audit.Actor.cli()
            out = settings.change_settings(s, changes, by=actor.name)
            audit.log(s, actor, "privacy.settings", detail=changes)
        else:
            out = settings.read_settings(s)
    if json_instead(fmt, out):
        return
    for k, v in out.items():
        console.print(f"{k} = {v}")


@audit_app.command("list")
def audit_list(
    action: Annotated[str | None, typer.Option(help="an action, or a prefix: person.*")] = None,
    after: Annotated[int, typer.Option(help="lines after this sequence number")] = 0,
    limit: LimitOpt = 100,
    store: StoreOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Lines of the audit log, oldest first."""
    from corridor.privacy import audit

    check_format(fmt)
    with open_to_write(store, "audit list", " (or GET /api/v1/audit)") as s:
        lines, total = audit.entries(s, action=action, after=after, limit=limit)
    if json_instead(fmt, {"total": total, "entries": lines}):
        return
    table = Table("seq", "when", "who", "what", "target", "from")
    for e in lines:
        table.add_row(
            str(e["seq"]),
            e["at"][:19],
            escape(f"{e['actor']} ({e['actor_kind']})"),
            e["action"],
            (e["target"] or "")[:16],
            e["address"] or "",
        )
    console.print(table)
    console.print(f"{len(lines)} of {total}")


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option("--out", help="the JSON-lines file to write")],
    store: StoreOpt = None,
) -> None:
    """The whole audit log as JSON lines."""
    from corridor.privacy import audit

    check_out(out)
    with open_to_write(store, "audit export", " (or GET /api/v1/audit/export)") as s:
        n = 0
        with out.open("wb") as f:
            for line in audit.export_lines(s):
                f.write(line)
                n += 1
        audit.log(s, audit.Actor.cli(), "audit.export", detail={"lines": n})
    console.print(f"wrote {n} lines to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(people_app, name="people")
    app.add_typer(audit_app, name="audit")


__all__ = ["audit_app", "people_app", "register"]
