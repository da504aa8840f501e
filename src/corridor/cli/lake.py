"""``corridor lake …``: the lake of Parquet files the analytics read on Apache Spark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from corridor.cli.common import FormatOpt, StoreOpt, console, open_to_write
from corridor.cli.render import check_format, print_json

lake_app = typer.Typer(
    help="The lake: fact tables as Hive-partitioned Parquet, for a Spark store "
    "(spark://local[2]?lake=PATH&ops=STORE_URL).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add ``corridor lake`` to ``app``."""
    app.add_typer(lake_app, name="lake")


@lake_app.command("sync")
def sync_command(
    lake: Annotated[
        Path,
        typer.Option(
            "--lake", help="the lake's folder (made if missing); every Spark executor must read it"
        ),
    ],
    store: StoreOpt = None,
    fmt: FormatOpt = "table",
    table_format: Annotated[
        str | None,
        typer.Option(
            "--table-format",
            help="parquet (plain Hive-partitioned files) or delta (Delta Lake tables); "
            "default: the lake's own, parquet for a new lake",
        ),
    ] = None,
) -> None:
    """Write what the operational store holds to the lake: only new or changed records, each
    once (run it again and it writes nothing), by table and month."""
    from corridor.store.lake_sync import sync

    check_format(fmt)
    with open_to_write(store, "lake sync") as s:
        report = sync(s, lake, table_format=table_format)
    if fmt == "json":
        print_json(report.to_dict())
        return
    if fmt == "csv":
        print("table,rows,new,changed,removed,files_written,files_removed")
        for t in report.tables:
            print(
                f"{t.table},{t.rows},{t.new},{t.changed},{t.removed},{t.files_written},"
                f"{t.files_removed}"
            )
        return
    table = Table(title=f"lake {report.lake} ({report.table_format})")
    for col in ("table", "records", "new", "changed", "removed", "files written", "removed"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for t in report.tables:
        table.add_row(
            t.table,
            f"{t.rows:,}",
            f"{t.new:,}",
            f"{t.changed:,}",
            f"{t.removed:,}",
            f"{t.files_written:,}",
            f"{t.files_removed:,}",
        )
    console.print(table)
    console.print(
        f"{report.written:,} records written in {report.seconds:.1f} s"
        + ("" if report.written else " (the lake was up to date)")
    )


#: ``corridor import … --into-lake PATH``
IntoLakeOpt = Annotated[
    Path | None,
    typer.Option(
        "--into-lake",
        help="after the import, bring the lake at this folder up to date (corridor lake sync)",
    ),
]


def sync_after_import(store: str | None, lake: Path) -> None:
    """``corridor lake sync`` of the store just imported into, said in one line."""
    from corridor.cli.common import err
    from corridor.store.lake_sync import sync

    with open_to_write(store, "import --into-lake") as s:
        report = sync(s, lake)
    err.print(
        f"lake {report.lake}: {report.written:,} records written in {report.seconds:.1f} s",
        soft_wrap=True,
    )
