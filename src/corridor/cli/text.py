"""``corridor text …`` and ``corridor themes …``: voice of the customer, in a terminal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from corridor.cli.common import (
    FormatOpt,
    SinceOpt,
    StoreOpt,
    ThemeIdArg,
    WhereOpt,
    console,
    err,
    on_store_or_server,
    open_to_write,
)
from corridor.cli.render import check_format, print_json
from corridor.errors import CorridorError

if TYPE_CHECKING:
    from corridor.auth.local_server import ServerClient
    from corridor.store import Store

text_app = typer.Typer(
    help="Voice of the customer: analyse feedback text; sentiment, intents, emotions, sources.",
    no_args_is_help=True,
)
themes_app = typer.Typer(
    help="Themes in feedback text: discover, list, rename, merge.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``corridor text`` and ``corridor themes`` to ``app``."""
    app.add_typer(text_app, name="text")
    app.add_typer(themes_app, name="themes")


def _bar(description: str) -> tuple[Progress, Callable[[int, int], None]]:
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    task = bar.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


def ingest_text_options() -> dict[str, Any]:
    """The Ingestor's text options from the settings (``CORRIDOR_KEEP_ORIGINAL_TEXT``,
    ``CORRIDOR_TEXT_ANALYSIS``)."""
    from corridor.settings import Settings

    s = Settings.from_env()
    return {"keep_original_text": s.keep_original_text, "analyze_text": s.text_analysis == "inline"}


def analyze_after_ingest(store: Any) -> None:
    """With ``text_analysis = background`` (the default): after an import, analyse the texts
    it left pending, with a progress bar."""
    from corridor.settings import Settings
    from corridor.text.jobs import analyze_pending, pending_count

    if Settings.from_env().text_analysis != "background" or store.schema_version() < 5:
        return
    if not pending_count(store):
        return
    bar, update = _bar("analysing feedback text")
    with bar:
        report = analyze_pending(store, progress=update)
    err.print(f"analysed {report.analysed:,} feedback text(s) in {report.seconds:.1f} s")


# -- text -------------------------------------------------------------------------------------


@text_app.command("analyze")
def analyze(
    model: Annotated[str, typer.Option(help="sentiment model: lexicon (default) or minilm")] = (
        "lexicon"
    ),
    redo: Annotated[
        bool, typer.Option("--redo", help="re-analyse texts analysed by another model")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="texts per batch")] = 5000,
    store: StoreOpt = None,
) -> None:
    """Analyse pending feedback texts (sentiment, intent, emotions, theme) and store the
    results, with a progress bar."""
    from corridor.text.jobs import analyze_pending

    if batch_size < 1:
        raise CorridorError("--batch-size must be at least 1")
    with open_to_write(store, "text analyze", _SERVER_ANALYSES) as s:
        bar, update = _bar(f"analysing with {model}")
        with bar:
            report = analyze_pending(
                s, model=model, redo=redo, batch_size=batch_size, progress=update
            )
    r = report.as_dict()
    rate = f", {r['texts_per_second']:,.0f} texts/s" if r["texts_per_second"] else ""
    console.print(
        f"analysed {r['analysed']:,} text(s) with {r['model']} in {r['seconds']:.1f} s{rate}; "
        f"{r['themed']:,} assigned to a theme"
    )


@text_app.command("comments")
def comments(
    touchpoint: Annotated[str | None, typer.Option(help="only this touch point")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="how many (newest first)")] = 20,
    where: WhereOpt = None,
    fmt: FormatOpt = "table",
    store: StoreOpt = None,
) -> None:
    """The latest (redacted) feedback texts with their sentiment, intent, emotions and theme."""
    from corridor.analytics.feedback.text import recent_comments

    check_format(fmt)
    filters = _filters(where or [])
    if touchpoint is not None:
        filters["touchpoint"] = [touchpoint]

    def here(s: Store) -> list[dict[str, Any]]:
        return recent_comments(s, None, limit, filters or None)

    def via_server(client: ServerClient) -> list[dict[str, Any]]:
        params: list[tuple[str, Any]] = [("limit", limit)]
        params += [(k, v or "") for k, vals in filters.items() for v in vals]
        rows = client.call("GET", "/api/v1/text/comments", params=params)["comments"]
        for r in rows:  # as the store gives them: a time, not its ISO text
            if r.get("occurred_at"):
                r["occurred_at"] = datetime.fromisoformat(r["occurred_at"])
        return list(rows)

    rows = on_store_or_server(store, here, via_server)
    if fmt == "json":
        print_json(rows)
        return
    table = Table("when", "touch point", "source", "sentiment", "intent", "theme", "text")
    for r in rows:
        table.add_row(
            r["occurred_at"].date().isoformat() if r["occurred_at"] else "-",
            r["touchpoint"] or "-",
            r["source"],
            f"{r['sentiment']:+.2f}",
            r["intent"],
            r["theme_label"] or "-",
            r["text"] or "",
        )
    console.print(table)


# -- themes -----------------------------------------------------------------------------------


@themes_app.command("discover")
def discover(
    k: Annotated[int, typer.Option("--k", help="how many themes")] = 12,
    method: Annotated[
        str, typer.Option(help="tfidf-nmf (default) or embeddings (needs the text extra)")
    ] = "tfidf-nmf",
    sample: Annotated[int, typer.Option(help="at most this many texts (random sample)")] = 50_000,
    since: SinceOpt = None,
    store: StoreOpt = None,
) -> None:
    """Discover themes in the stored feedback texts, replace the active ones (analysts' names
    carry over) and assign every analysed text."""
    from corridor.analytics.core.dimensions import check_time
    from corridor.text.jobs import discover_themes

    with open_to_write(store, "themes discover", _SERVER_ANALYSES) as s:
        bar, update = _bar("assigning texts to themes")
        with bar:
            saved = discover_themes(
                s, k=k, method=method, sample=sample, since=check_time(since, "since"),
                progress=update,
            )  # fmt: skip
    console.print(f"{len(saved)} themes discovered ({method}); see `corridor themes list`")
    _print_themes([t.as_dict() for t in saved])


def _print_themes(themes: list[dict[str, Any]]) -> None:
    sized = any(t.get("n") is not None for t in themes)
    sizes = ["texts", "share"] if sized else []
    table = Table("theme", "label", "keywords", "merged into", *sizes)
    for t in themes:
        cells = [t["theme_id"], t["label"], ", ".join((t["keywords"] or [])[:8])]
        cells.append(t.get("merged_into") or "")
        if sized:
            share = t.get("share")
            cells += [f"{t.get('n') or 0:,}", "-" if share is None else f"{share:.1%}"]
        table.add_row(*cells)
    console.print(table)


@themes_app.command("list")
def list_(
    include_retired: Annotated[bool, typer.Option("--all", help="also retired themes")] = False,
    fmt: FormatOpt = "table",
    store: StoreOpt = None,
) -> None:
    """The themes: id, label, keywords, merges (and, while a server runs, their size)."""
    from corridor.text.themestore import list_themes

    check_format(fmt)

    def here(s: Store) -> list[dict[str, Any]]:
        return [t.as_dict() for t in list_themes(s, include_retired=include_retired)]

    def via_server(client: ServerClient) -> list[dict[str, Any]]:
        reply = client.call("GET", "/api/v1/text/themes", params={"all": include_retired})
        return list(reply["themes"])

    themes = on_store_or_server(store, here, via_server)
    if fmt == "json":
        print_json(themes)
        return
    _print_themes(themes)
    if not themes:
        console.print("no themes yet; run `corridor themes discover`")


@themes_app.command("rename")
def rename(
    theme_id: ThemeIdArg,
    label: Annotated[str, typer.Argument(help="the new name")],
    store: StoreOpt = None,
) -> None:
    """Give a theme an analyst's name; it persists across rediscoveries."""
    from corridor.text.themestore import rename_theme

    def here(s: Store) -> dict[str, Any]:
        return rename_theme(s, theme_id, label).as_dict()

    def via_server(client: ServerClient) -> dict[str, Any]:
        path = f"/api/v1/text/themes/{quote(theme_id, safe='')}"
        return dict(client.call("PATCH", path, json_body={"label": label}))

    theme = on_store_or_server(store, here, via_server)
    console.print(f"{theme['theme_id']} is now {theme['label']!r}", markup=False)


@themes_app.command("merge")
def merge(
    theme_ids: Annotated[list[str], typer.Argument(help="themes to merge")],
    into: Annotated[str, typer.Option("--into", help="the theme they become part of")],
    label: Annotated[str | None, typer.Option(help="also rename the target")] = None,
    store: StoreOpt = None,
) -> None:
    """Merge themes into another; their texts count under it from then on."""
    from corridor.text.themestore import merge_themes

    def here(s: Store) -> dict[str, Any]:
        return merge_themes(s, theme_ids, into, label).as_dict()

    def via_server(client: ServerClient) -> dict[str, Any]:
        body = {"themes": theme_ids, "into": into, "label": label}
        return dict(client.call("POST", "/api/v1/text/themes/merge", json_body=body))

    theme = on_store_or_server(store, here, via_server)
    console.print(
        f"merged {', '.join(theme_ids)} into {theme['theme_id']} ({theme['label']!r})",
        markup=False,
    )


#: what the text commands that own the store suggest while a server runs
_SERVER_ANALYSES = (
    " (a running server analyses new texts itself as they arrive; only a re-analysis or a "
    "new discovery needs this command)"
)


def _filters(pairs: list[str]) -> dict[str, list[str | None]]:
    """``--where`` pairs as filters (an empty value selects records without one)."""
    from corridor.analytics.core.dimensions import DIMENSIONS
    from corridor.cli.analyses import parse_where

    return {
        k: [v.strip() or None for raw in vals for v in raw.split(",")]
        for k, vals in parse_where(pairs, tuple(DIMENSIONS)).items()
    }
