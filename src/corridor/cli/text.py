"""``corridor text …`` and ``corridor themes …``: voice of the customer, in a terminal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

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
    WhereOpt,
    console,
    err,
)
from corridor.cli.render import check_format, print_json
from corridor.errors import CorridorError

text_app = typer.Typer(
    help="Voice of the customer: analyse feedback text; sentiment, intents, emotions, sources.",
    no_args_is_help=True,
)
themes_app = typer.Typer(
    help="Themes in feedback text: discover, list, show, rename, merge.", no_args_is_help=True
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


def ingest_text_options() -> dict[str, bool]:
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
    from corridor.store import open_store
    from corridor.text.jobs import analyze_pending

    if batch_size < 1:
        raise CorridorError("--batch-size must be at least 1")
    with open_store(store) as s:
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
    limit: Annotated[int, typer.Option(help="how many (newest first)")] = 20,
    where: WhereOpt = None,
    fmt: FormatOpt = "table",
    store: StoreOpt = None,
) -> None:
    """The latest (redacted) feedback texts with their sentiment, intent, emotions and theme."""
    from corridor.analytics.feedback.text import recent_comments
    from corridor.store import open_store

    check_format(fmt)
    with open_store(store) as s:
        rows = recent_comments(s, touchpoint, limit, _filters(where or []) or None)
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
    from corridor.store import open_store
    from corridor.text.jobs import discover_themes

    with open_store(store) as s:
        bar, update = _bar("assigning texts to themes")
        with bar:
            saved = discover_themes(
                s, k=k, method=method, sample=sample, since=check_time(since, "since"),
                progress=update,
            )  # fmt: skip
    console.print(f"{len(saved)} themes discovered ({method}); see `corridor themes show`")
    _print_themes(saved)


def _print_themes(themes: list[Any]) -> None:
    table = Table("theme", "label", "keywords", "merged into")
    for t in themes:
        table.add_row(t.theme_id, t.label, ", ".join(t.keywords[:8]), t.merged_into or "")
    console.print(table)


@themes_app.command("list")
def list_(
    include_retired: Annotated[bool, typer.Option("--all", help="also retired themes")] = False,
    fmt: FormatOpt = "table",
    store: StoreOpt = None,
) -> None:
    """The themes: id, label, keywords, merges."""
    from corridor.store import open_store
    from corridor.text.themestore import list_themes

    check_format(fmt)
    with open_store(store) as s:
        themes = list_themes(s, include_retired=include_retired)
    if fmt == "json":
        print_json([t.as_dict() for t in themes])
        return
    _print_themes(themes)
    if not themes:
        console.print("no themes yet; run `corridor themes discover`")


@themes_app.command("rename")
def rename(
    theme_id: Annotated[str, typer.Argument(help="theme id (corridor themes list)")],
    label: Annotated[str, typer.Argument(help="the new name")],
    store: StoreOpt = None,
) -> None:
    """Give a theme an analyst's name; it persists across rediscoveries."""
    from corridor.store import open_store
    from corridor.text.themestore import rename_theme

    with open_store(store) as s:
        theme = rename_theme(s, theme_id, label)
    console.print(f"{theme.theme_id} is now {theme.label!r}")


@themes_app.command("merge")
def merge(
    theme_ids: Annotated[list[str], typer.Argument(help="themes to merge")],
    into: Annotated[str, typer.Option("--into", help="the theme they become part of")],
    label: Annotated[str | None, typer.Option(help="also rename the target")] = None,
    store: StoreOpt = None,
) -> None:
    """Merge themes into another; their texts count under it from then on."""
    from corridor.store import open_store
    from corridor.text.themestore import merge_themes

    with open_store(store) as s:
        theme = merge_themes(s, theme_ids, into, label)
    console.print(f"merged {', '.join(theme_ids)} into {theme.theme_id} ({theme.label!r})")


def _filters(pairs: list[str]) -> dict[str, list[str | None]]:
    """``--where`` pairs as filters (an empty value selects records without one)."""
    from corridor.analytics.core.dimensions import DIMENSIONS
    from corridor.cli.analyses import parse_where

    return {
        k: [v.strip() or None for raw in vals for v in raw.split(",")]
        for k, vals in parse_where(pairs, tuple(DIMENSIONS)).items()
    }
