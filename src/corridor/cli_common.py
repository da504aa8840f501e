"""Options and consoles every ``corridor`` command shares."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)

_STORE_HELP = (
    "Store URL: duckdb:///abs/path.duckdb (an absolute path), duckdb:rel/path.duckdb or a plain "
    "path (relative to the current directory), or postgresql://user@host:5432/db. "
    "Default: corridor-data/corridor.duckdb in the current directory"
)


def _origin(ctx: typer.Context) -> str | None:
    source = ctx.get_parameter_source("store")
    return "CORRIDOR_STORE" if getattr(source, "name", None) == "ENVIRONMENT" else None


def _existing_store(ctx: typer.Context, value: str | None) -> str | None:
    """A command that reads: the store must exist (a missing DuckDB file is never created)."""
    from corridor.store import require_store

    require_store(value, origin=_origin(ctx))
    return value


def _store_url(ctx: typer.Context, value: str | None) -> str | None:
    """A command that may create the store: the URL must still read."""
    from corridor.store import locate

    locate(value, origin=_origin(ctx))
    return value


#: ``--store`` of a command that reads: the store must exist
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="CORRIDOR_STORE",
        help=_STORE_HELP + ". It must exist (this command never creates one).",
        show_default=False,
        callback=_existing_store,
    ),
]
#: ``--store`` of a command that may create the store (import, map load, demo, migrate, ...)
NewStoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="CORRIDOR_STORE",
        help=_STORE_HELP + ". Created if missing.",
        show_default=False,
        callback=_store_url,
    ),
]
