"""Options and consoles every ``corridor`` command shares."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="CORRIDOR_STORE",
        help="Store URL: duckdb:///path/file.duckdb or postgresql://user@host:5432/db "
        "[default: ./corridor-data/corridor.duckdb]",
        show_default=False,
    ),
]
