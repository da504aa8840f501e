"""``corridor import`` (a contract file into the store) and ``corridor simulate`` (a believable
company, as contract files or straight into the store); what they share with ``corridor demo``:
:func:`ingestor`, :func:`simulate_company` and :func:`load_dataset`."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from corridor.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REJECTED,
    NewStoreOpt,
    console,
    err,
    new_store_path,
    open_to_write,
    progress_bar,
)
from corridor.cli.lake import IntoLakeOpt, sync_after_import
from corridor.cli.text import analyze_after_ingest, ingest_text_options


def register(app: typer.Typer) -> None:
    """Add ``corridor import`` and ``corridor simulate`` to ``app``."""
    app.command("import")(import_)
    app.command()(simulate)


@contextmanager
def ingestor(store_url: str | None, command: str, instead: str = "") -> Iterator[Any]:
    """An ingestor for ``corridor COMMAND``, which must own the store (see
    :func:`~corridor.cli.common.open_to_write`; ``instead``: another way while a server runs)."""
    from corridor.ingest.pipeline import Ingestor

    options = ingest_text_options()  # (its settings read before a store is made)
    created = new_store_path(store_url)
    store = open_to_write(store_url, command, instead)
    if created is not None:
        err.print(f"created a new store at {escape(str(created))}", soft_wrap=True)
    ing = Ingestor(store, **options)
    try:
        yield ing
        analyze_after_ingest(store)
    finally:
        ing.close()
        store.close()


KindOpt = Annotated[
    str,
    typer.Option(
        "--kind",
        "-k",
        help="people, interactions, feedback, operational_events, market_events or "
        "employee_predictions",
    ),
]
FileFormatOpt = Annotated[
    str | None,
    typer.Option("--format", help="csv, ndjson or parquet (default: from the file name)"),
]
QuarantineOpt = Annotated[
    Path | None,
    typer.Option(help="where bad rows go (default: FILE.quarantine.csv next to the file)"),
]


def import_(
    file: Annotated[Path, typer.Argument(help="CSV (header row), NDJSON or Parquet file")],
    kind: KindOpt,
    store: NewStoreOpt = None,
    fmt: FileFormatOpt = None,
    quarantine: QuarantineOpt = None,
    chunk_rows: Annotated[
        int, typer.Option(min=1, max=10_000_000, help="rows per committed chunk")
    ] = 250_000,
    into_lake: IntoLakeOpt = None,
) -> None:
    """Import a contract file. Bad rows go to a quarantine file and never stop the good ones.

    Exit code 0: every row stored; 1: some rows stored, some quarantined; 2: nothing stored
    (the file could not be read, holds no rows, or every row was quarantined).
    """
    from corridor.domain.contract import get_kind
    from corridor.ingest.files import import_file, preflight

    # a file that cannot be read, or a quarantine file that cannot be written, is said before
    # a store is made
    preflight(file, kind, fmt=fmt, quarantine=quarantine, chunk_rows=chunk_rows)
    instead = (
        f", or send the records to it over HTTP: POST /api/v1/{get_kind(kind).name} (docs/api.md)"
    )
    with (
        ingestor(store, "import", instead) as ing,
        progress_bar(f"importing {file.name}") as progress,
    ):
        summary = import_file(
            ing,
            file,
            kind,
            fmt=fmt,
            quarantine=quarantine,
            chunk_rows=chunk_rows,
            progress=progress,
        )
    print_summary([summary])
    if into_lake is not None and summary.accepted:
        sync_after_import(store, into_lake)
    if not summary.accepted:
        why = "it holds no rows"
        if summary.rows:
            why = "every row was quarantined; fix them and import the file again"
            common = summary.common_reasons(1)
            if common and common[0][0] == summary.rejected:  # one cause for all: say it
                why = f"every row was quarantined: {common[0][2].split('; allowed:')[0]}"
        err.print(f"nothing from {escape(file.name)} was stored: {why}", soft_wrap=True)
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_REJECTED if summary.rejected else EXIT_OK)


def print_summary(summaries: list[Any]) -> None:
    """What imports did, a row per file, and what was quarantined and why."""
    table = Table(
        "file",
        "rows",
        "stored",
        "new",
        "dup.",
        "rejected",
        "rows/s",
        caption="stored = new + dup. (already stored, not stored twice)",
    )
    for s in summaries:
        table.add_row(
            s.path.name,
            f"{s.rows:,}",
            f"{s.accepted:,}",
            f"{s.inserted:,}",
            f"{s.duplicates:,}",
            f"[red]{s.rejected:,}[/]" if s.rejected else "0",
            f"{s.rows / s.seconds:,.0f}" if s.seconds > 0 else "-",
        )
    console.print(table)
    for s in summaries:
        if s.rejected and s.quarantine is not None:
            console.print(
                f"[yellow]{s.rejected:,} bad rows of {s.path.name} written to {s.quarantine}[/] "
                "(row number, field, reason): fix them and import that file again"
            )
            for n, fld, reason in s.common_reasons():
                short = reason.split("; allowed:")[0]  # the full list is in the quarantine file
                console.print(f"  {n:,} × {fld}: {escape(short)}", soft_wrap=True)
        if s.merges:
            console.print(f"{s.merges:,} persons merged through shared identities ({s.path.name})")


def simulate(
    customers: Annotated[int, typer.Option(min=1, help="number of customers")] = 2000,
    months: Annotated[int, typer.Option(min=1, max=120, help="months of history")] = 12,
    seed: Annotated[int, typer.Option(help="random seed; the same seed gives the same data")] = 7,
    out: Annotated[
        Path | None, typer.Option(help="folder for the contract files and truth.json")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet, csv or ndjson")] = "parquet",
    into_store: Annotated[
        bool, typer.Option("--into-store", help="load the simulated company into the store")
    ] = False,
    store: NewStoreOpt = None,
    precursors: Annotated[
        bool,
        typer.Option(
            "--precursors",
            help="plant churn precursors: churners first make unresolved support contacts, a "
            "retention call, use less and wait longer (truth.json records the churn ceiling)",
        ),
    ] = False,
) -> None:
    """Simulate a believable company, with planted effects written to truth.json."""
    if out is None and not into_store:
        err.print("give --out DIR to write the files, or --into-store to load them")
        raise typer.Exit(EXIT_ERROR)
    if fmt not in ("parquet", "csv", "ndjson"):
        err.print(f"unknown --format {fmt!r}; use parquet, csv or ndjson")
        raise typer.Exit(EXIT_ERROR)
    with tempfile.TemporaryDirectory(prefix="corridor-sim-") as tmp:
        target = out or Path(tmp)
        simulate_company(customers, months, seed, target, fmt, precursors=precursors)
        if into_store:
            load_dataset(store, target)
    if out is not None:
        console.print(f"wrote {out} (truth.json lists the planted effects)")


def simulate_company(
    customers: int, months: int, seed: int, out: Path, fmt: str, *, precursors: bool = False
) -> Any:
    """Simulate a company into the folder ``out``, with a progress bar and a closing line."""
    from corridor.simulate import simulate as run_simulation

    t0 = time.perf_counter()
    with progress_bar("simulating") as progress:
        res = run_simulation(
            customers, months, seed, out, fmt=fmt, progress=progress, precursors=precursors
        )
    counts = ", ".join(f"{v:,} {k}" for k, v in res.counts.items())
    console.print(f"simulated {counts} in {time.perf_counter() - t0:.1f} s")
    return res


def load_dataset(store_url: str | None, folder: Path) -> None:
    """Import the contract files of ``folder`` (a simulated company), then bring the rollups up
    to date."""
    from corridor.analytics.feedback.rollup import refresh
    from corridor.ingest.files import import_dataset

    with ingestor(store_url, "simulate --into-store") as ing, progress_bar("loading") as progress:
        summaries = import_dataset(ing, folder, progress=progress)
        progress("building rollups", 1.0)
        refresh(ing.store)  # so the first question after loading is answered at once
    print_summary(list(summaries.values()))
