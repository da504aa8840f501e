"""``corridor status``, ``corridor migrate`` and ``corridor map load|show``: what the store holds,
its schema, and the corridor map its records are read against."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from corridor.cli.common import (
    EXIT_ERROR,
    NewStoreOpt,
    StoreOpt,
    console,
    err,
    new_store_path,
    on_store_or_server,
    open_to_write,
)
from corridor.cli.text import ingest_text_options

if TYPE_CHECKING:
    from corridor.auth.local_server import ServerClient
    from corridor.domain.corridor_map import CorridorMap
    from corridor.store import Store

map_app = typer.Typer(help="Load and show the corridor map.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``corridor status``, ``corridor migrate`` and ``corridor map`` to ``app``."""
    app.command()(status)
    app.command()(migrate)
    app.add_typer(map_app, name="map")


def _read_map(s: Store) -> CorridorMap | None:
    """The store's current corridor map (None: none is loaded)."""
    from corridor.ingest.pipeline import Ingestor

    ing = Ingestor(s)
    try:
        return ing.corridor_map
    finally:
        ing.close()


def status(store: StoreOpt = None) -> None:
    """What the store holds: schema version, map, and rows per kind."""
    from corridor.domain.contract import KINDS

    def here(s: Store) -> dict[str, Any]:
        cmap = _read_map(s)
        return {
            "store": {"url": s.url, "schema_version": s.schema_version()},
            "corridor_map": {"touchpoints": len(cmap.touchpoints) if cmap else 0},
            "counts": {name: s.count(name) for name in (*KINDS, "identities", "person_merges")},
        }

    def via_server(client: ServerClient) -> dict[str, Any]:
        return dict(client.call("GET", "/api/v1/health"))

    got = on_store_or_server(store, here, via_server)
    console.print(
        f"store {got['store']['url']}, schema version {got['store']['schema_version']}",
        markup=False,
    )
    n_tp = got["corridor_map"]["touchpoints"]
    console.print(f"corridor map: {n_tp} touch points" if n_tp else "no corridor map loaded")
    table = Table("table", "rows")
    for name, n in got["counts"].items():
        table.add_row(name, f"{n:,}")
    console.print(table)


def migrate(store: NewStoreOpt = None) -> None:
    """Bring the store's schema up to date (also done whenever a store is opened)."""
    created = new_store_path(store)
    with open_to_write(store, "migrate", migrate=False) as s:
        before = s.schema_version()
        applied = s.migrate()
        if created is not None:
            console.print(f"created an empty store at {escape(str(created))}", soft_wrap=True)
        console.print(
            f"schema version {before} -> {s.schema_version()}"
            + (f" (applied {', '.join(map(str, applied))})" if applied else " (up to date)")
        )


@map_app.command("load")
def map_load(
    file: Annotated[Path, typer.Argument(help="corridor map, YAML or JSON")],
    store: NewStoreOpt = None,
    force: Annotated[
        bool, typer.Option(help="load even if stored records use touch points it drops")
    ] = False,
) -> None:
    """Load (or replace) the corridor map: stages, touch points, channels, owners, promises."""
    from corridor.domain.corridor_map import CorridorMap
    from corridor.ingest.pipeline import Ingestor

    cmap = CorridorMap.from_file(file)

    def here(s: Store) -> dict[str, int]:
        ing = Ingestor(s, **ingest_text_options())
        try:
            version = ing.load_map(cmap, force=force)
        finally:
            ing.close()
        n_promises = sum(len(t.promises) for t in cmap.touchpoints)
        n = {"stages": len(cmap.stages), "touchpoints": len(cmap.touchpoints)}
        return {"version": version, **n, "promises": n_promises}

    def via_server(client: ServerClient) -> dict[str, int]:
        doc = cmap.model_dump(mode="json", exclude_none=True)
        return dict(client.call("PUT", "/api/v1/map", json_body=doc, params={"force": force}))

    created = new_store_path(store)
    done = on_store_or_server(store, here, via_server)
    if created is not None:
        err.print(f"created a new store at {escape(str(created))}", soft_wrap=True)
    console.print(
        f"loaded corridor map v{done['version']}: {done['stages']} stages, "
        f"{done['touchpoints']} touch points, {done['promises']} promises"
    )


@map_app.command("show")
def map_show(store: StoreOpt = None) -> None:
    """Show the current corridor map."""
    from corridor.domain.corridor_map import CorridorMap

    def via_server(client: ServerClient) -> CorridorMap | None:
        doc = client.call("GET", "/api/v1/map", missing_ok=True)
        return None if doc is None else CorridorMap.model_validate(doc)

    cmap = on_store_or_server(store, _read_map, via_server)
    if cmap is None:
        err.print("no corridor map is loaded yet; load one with `corridor map load FILE`")
        raise typer.Exit(EXIT_ERROR)
    table = Table("stage", "touch point", "name", "channels", "department", "promises")
    for tp in cmap.touchpoints:
        table.add_row(
            tp.stage,
            tp.key,
            tp.name,
            ", ".join(tp.channels),
            tp.department,
            "; ".join(f"{p.key} ({p.metric} {p.target})" for p in tp.promises),
        )
    console.print(table)
