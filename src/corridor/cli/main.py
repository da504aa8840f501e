"""The ``corridor`` app: its entry point (:func:`main`) and the store commands (import, simulate,
serve, demo, status, migrate, map); the analyses' commands register themselves from their
modules."""

from __future__ import annotations

import errno
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from corridor.cli import invitations  # noqa: F401  (adds its commands to `corridor surveys`)
from corridor.cli.analyses import register as register_analyses
from corridor.cli.auth import register as register_auth
from corridor.cli.cases import register as register_cases
from corridor.cli.churn import churn_app, lifetime_app
from corridor.cli.churn import register as register_churn
from corridor.cli.common import (
    NewStoreOpt,
    StoreOpt,
    console,
    err,
    on_store_or_server,
    open_to_write,
)
from corridor.cli.lake import IntoLakeOpt, sync_after_import
from corridor.cli.lake import register as register_lake
from corridor.cli.loop import register as register_loop
from corridor.cli.people import register as register_people
from corridor.cli.report import register as register_report
from corridor.cli.surveys import register as register_surveys
from corridor.cli.surveys import surveys_app
from corridor.cli.text import analyze_after_ingest, ingest_text_options, text_app, themes_app
from corridor.cli.text import register as register_text
from corridor.errors import CorridorError

if TYPE_CHECKING:
    from corridor.auth.local_server import ServerClient
    from corridor.store import Store

app = typer.Typer(
    name="corridor",
    help="Corridor: the gap between what customers expected and what they experienced, "
    "at every touch point.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
map_app = typer.Typer(help="Load and show the corridor map.", no_args_is_help=True)
app.add_typer(map_app, name="map")


EXIT_OK, EXIT_REJECTED, EXIT_ERROR = 0, 1, 2


def main() -> None:
    try:
        app()
    except CorridorError as e:
        # one line, as written: no markup read in the message, no wrapping at the terminal width
        err.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


@contextmanager
def _ingestor(store_url: str | None, command: str, instead: str = "") -> Iterator[Any]:
    """An ingestor for ``corridor COMMAND``, which must own the store (see
    :func:`~corridor.cli.common.open_to_write`; ``instead``: another way while a server runs)."""
    from corridor.ingest.pipeline import Ingestor
    from corridor.store import locate

    loc = locate(store_url)
    new = loc.path is not None and not loc.path.exists()
    store = open_to_write(store_url, command, instead)
    if new:
        err.print(f"created a new store at {escape(str(loc.path))}", soft_wrap=True)
    ing = Ingestor(store, **ingest_text_options())
    try:
        yield ing
        analyze_after_ingest(store)
    finally:
        ing.close()
        store.close()


@contextmanager
def _progress(description: str) -> Iterator[Callable[[str, float], None]]:
    """A Rich progress bar driven by ``callback(label, fraction_done)``."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=1.0)

        def update(label: str, fraction: float) -> None:
            bar.update(task, description=f"{description}: {label}", completed=min(fraction, 1.0))

        yield update


# -- map ------------------------------------------------------------------------------------
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
    from corridor.store import locate

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

    loc = locate(store)
    new = loc.path is not None and not loc.path.exists()
    done = on_store_or_server(store, here, via_server)
    if new:
        err.print(f"created a new store at {escape(str(loc.path))}", soft_wrap=True)
    console.print(
        f"loaded corridor map v{done['version']}: {done['stages']} stages, "
        f"{done['touchpoints']} touch points, {done['promises']} promises"
    )


@map_app.command("show")
def map_show(store: StoreOpt = None) -> None:
    """Show the current corridor map."""
    from corridor.domain.corridor_map import CorridorMap
    from corridor.ingest.pipeline import Ingestor

    def here(s: Store) -> CorridorMap | None:
        ing = Ingestor(s)
        try:
            return ing.corridor_map
        finally:
            ing.close()

    def via_server(client: ServerClient) -> CorridorMap | None:
        doc = client.call("GET", "/api/v1/map", missing_ok=True)
        return None if doc is None else CorridorMap.model_validate(doc)

    cmap = on_store_or_server(store, here, via_server)
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


# -- import ---------------------------------------------------------------------------------
@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV (header row), NDJSON or Parquet file")],
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            "-k",
            help="people, interactions, feedback, operational_events, market_events or "
            "employee_predictions",
        ),
    ],
    store: NewStoreOpt = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="csv, ndjson or parquet (default: from the file name)"),
    ] = None,
    quarantine: Annotated[
        Path | None,
        typer.Option(help="where bad rows go (default: FILE.quarantine.csv next to the file)"),
    ] = None,
    chunk_rows: Annotated[int, typer.Option(help="rows per committed chunk")] = 250_000,
    into_lake: IntoLakeOpt = None,
) -> None:
    """Import a contract file. Bad rows go to a quarantine file and never stop the good ones.

    Exit code 0: every row stored; 1: some rows stored, some quarantined; 2: nothing stored
    (the file could not be read, holds no rows, or every row was quarantined).
    """
    from corridor.domain.contract import get_kind
    from corridor.ingest.files import check_file, import_file
    from corridor.ingest.readers import detect_format

    get_kind(kind)
    check_file(file)  # a wrong file name or format is said before a store is made
    detect_format(file, fmt)
    instead = (
        f", or send the records to it over HTTP: POST /api/v1/{get_kind(kind).name} (docs/api.md)"
    )
    with (
        _ingestor(store, "import", instead) as ing,
        _progress(f"importing {file.name}") as progress,
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
    _print_summary([summary])
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


def _print_summary(summaries: list[Any]) -> None:
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


# -- simulate -------------------------------------------------------------------------------
@app.command()
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
        _simulate(customers, months, seed, target, fmt, precursors=precursors)
        if into_store:
            _load_dataset(store, target)
    if out is not None:
        console.print(f"wrote {out} (truth.json lists the planted effects)")


def _simulate(
    customers: int, months: int, seed: int, out: Path, fmt: str, *, precursors: bool = False
) -> Any:
    from corridor.simulate import simulate as run_simulation

    t0 = time.perf_counter()
    with _progress("simulating") as progress:
        res = run_simulation(
            customers, months, seed, out, fmt=fmt, progress=progress, precursors=precursors
        )
    counts = ", ".join(f"{v:,} {k}" for k, v in res.counts.items())
    console.print(f"simulated {counts} in {time.perf_counter() - t0:.1f} s")
    return res


def _load_dataset(store_url: str | None, folder: Path) -> None:
    from corridor.analytics.feedback.rollup import refresh
    from corridor.ingest.files import import_dataset

    with _ingestor(store_url, "simulate --into-store") as ing, _progress("loading") as progress:
        summaries = import_dataset(ing, folder, progress=progress)
        progress("building rollups", 1.0)
        refresh(ing.store)  # so the first question after loading is answered at once
    _print_summary(list(summaries.values()))


# -- serve / demo ---------------------------------------------------------------------------
@app.command()
def serve(
    store: StoreOpt = None,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8765,
    auth: Annotated[
        str | None,
        typer.Option(
            help="on (default): sign-in and API keys required; off: everyone is an admin "
            "(single-user machines only)"
        ),
    ] = None,
) -> None:
    """Serve the API (and the dashboard) over an existing store. The churn and lifetime models
    start fitting in the background as it starts serving (customer pages say when they will be
    ready)."""
    _serve(store, host, port, auth)


def _listen_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound: a port in use is a one-line error before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn chooses
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise CorridorError(
                f"port {port} on {host} is in use (another `corridor serve` or `corridor demo`?); "
                f"stop that process, or choose another port with --port, e.g. --port {port + 1}"
            ) from None
        if e.errno == errno.EACCES:
            raise CorridorError(
                f"not allowed to listen on port {port} (ports below 1024 need privileges); "
                "choose another with --port, e.g. --port 8765"
            ) from None
        raise CorridorError(
            f"cannot listen on {host}:{port}: {e.strerror or e}; give --host an address of this "
            "machine (127.0.0.1 for this machine only, 0.0.0.0 for every interface)"
        ) from None
    sock.set_inheritable(True)
    return sock


def _serve(
    store: str | None,
    host: str,
    port: int,
    auth: str | None = None,
    sock: socket.socket | None = None,
    fit_first: bool = False,
) -> None:
    import uvicorn

    from corridor.auth import local_server
    from corridor.settings import Settings

    if auth not in (None, "on", "off"):
        raise CorridorError(f"--auth {auth!r}: use on or off")
    settings = Settings.from_env(store_url=store, host=host, port=port, auth=auth)
    if settings.auth == "off":
        console.print(
            "[bold yellow]warning:[/] authentication is off: anyone who reaches this port is "
            "an admin"
        )
    sock = sock or _listen_socket(host, port)
    with sock:
        application = _start_up(settings, fit_first=fit_first)
        console.print(f"Corridor is serving on [bold]http://{host}:{port}/[/]  (API docs: /docs)")
        # on an embedded store, `corridor users|keys` reach this server through a local credential
        with local_server.published(application, host, port):
            server = uvicorn.Server(uvicorn.Config(application, log_level="warning"))
            server.run(sockets=[sock])


def _start_up(settings: Any, *, fit_first: bool = False) -> Any:
    """The app :func:`_serve` serves, ready to serve: the rollup brought up to date and the
    churn and lifetime models fitting in the background (``settings.model_refresh`` =
    background) — after a first fit here, with a line on the console, when ``fit_first`` (the
    demo: its first customer page shows the numbers)."""
    from corridor.api.app import create_app
    from corridor.web.models import refresher

    application = create_app(settings)
    store = application.state.store
    _catch_up_rollup(store)
    if settings.model_refresh == "background":
        models = refresher(application.state, store, start=False)
        if fit_first:
            _fit_models(models)
        models.start()
    return application


def _fit_models(models: Any) -> None:
    """Fit the churn and lifetime models now, saying so; a failure is said and left to the
    background refresher to retry (the pages say the models are being fitted)."""
    t0 = time.perf_counter()
    try:
        with _progress("fitting churn and lifetime models") as progress:
            took = models.fit_now(progress)
    except Exception as e:
        err.print(
            f"[yellow]fitting the churn and lifetime models failed ({escape(str(e))}); "
            "they are fitted again in the background[/]",
            soft_wrap=True,
        )
        return
    if took:
        each = ", ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in took.items())
        console.print(
            f"churn and lifetime models fitted in {time.perf_counter() - t0:.1f} s ({each})"
        )


def _catch_up_rollup(store: Any) -> None:
    """A rollup left stale (a store upgraded from schema v2, a refresh that failed after an
    ingest) is brought up to date before serving: reads never write, so until then they would
    answer from the base tables."""
    from corridor.analytics.feedback import rollup

    if rollup.has_rollup(store) and not rollup.is_current(store):
        with _progress("bringing the rollup up to date") as progress:
            days = rollup.refresh(store)
            progress("rollup up to date", 1.0)
        console.print(f"rollup: {days} stale day(s) rebuilt")


@app.command()
def demo(
    store: NewStoreOpt = None,
    customers: Annotated[int, typer.Option(min=1, help="customers to simulate")] = 3000,
    months: Annotated[int, typer.Option(min=1, max=120, help="months to simulate")] = 12,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8765,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="load, then exit")] = False,
    rules: Annotated[
        bool,
        typer.Option(
            "--rules/--no-rules",
            help="add the demo's alert rules and open the cases they find in the simulated year",
        ),
    ] = True,
) -> None:
    """Create the embedded store, simulate a company, load it, fit the churn and lifetime
    models, and serve it."""
    from corridor.store import open_store

    sock = None if no_serve else _listen_socket(host, port)  # a port in use: say so first
    with open_store(store) as s:
        url, existing = s.url, s.count("interactions")
    if existing:
        console.print(f"{url} already holds {existing:,} interactions; serving it as it is")
    else:
        with tempfile.TemporaryDirectory(prefix="corridor-demo-") as tmp:
            _simulate(customers, months, seed, Path(tmp), "parquet")
            _load_dataset(store, Path(tmp))
        console.print(f"demo company loaded into {url}")
        _demo_themes(store)
        if rules:
            _demo_loop(store)
        _demo_survey(store)
    _demo_users(store, host, port)
    if sock is not None:  # the models fitted first: the first customer page shows them
        _serve(store, host, port, sock=sock, fit_first=True)


DEMO_PASSWORD = "corridor-demo"


#: the demo's alert rules: a detractor opens a case; a month's significant drop of a touch
#: point's gap, a new expectation drift and a new harmful ripple of an operational event too
DEMO_RULES: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    ("detractors", "detractor", {}, "normal"),
    ("gap-drop", "change",
     {"analysis": "gaps", "column": "mean_gap", "alpha": 0.01, "period": "month"}, "normal"),
    ("expectation-drift", "drift", {}, "normal"),
    ("ripples", "ripple", {}, "high"),
)  # fmt: skip


def _demo_loop(store: str | None) -> None:
    """The closed loop on the demo: its rules, and the cases they open today for what they find
    in the simulated year (aggregate rules replayed over it; detractors fire from now on)."""
    from datetime import UTC, datetime

    from corridor.loop import aggregate_rules, alerts
    from corridor.loop.rules import Rule, add_rule
    from corridor.store import open_store

    with open_store(store) as s:
        added = [
            add_rule(s, Rule(rid, kind, definition, priority=prio), actor="demo")
            for rid, kind, definition, prio in DEMO_RULES
        ]
        (end,) = s.query("SELECT max(occurred_at) FROM feedback")[0]
        opened = 0
        for rule in added:
            if rule.family != "aggregate" or end is None:
                continue
            hits = aggregate_rules.dry_run(s, rule, until=end)
            with s.transaction() as tx:
                opened += len(alerts.fire(tx, hits, datetime.now(UTC)))
    console.print(
        f"{len(added)} alert rules added; {opened} alerts raised on the simulated year open the "
        "demo's cases (see /cases and /rules)"
    )


def _demo_survey(store: str | None) -> None:
    """The example delivery survey (docs/surveys.md), ready to link and answer."""
    from corridor.store import open_store
    from corridor.surveys import catalog
    from corridor.surveys.example import delivery_pulse

    with open_store(store) as s:
        survey = delivery_pulse()
        catalog.save(s, survey, by="demo")
    console.print(
        f"survey {survey.id} loaded: `corridor surveys link {survey.id} --person ID` makes a "
        "personal link to its form"
    )


def _demo_themes(store: str | None) -> None:
    """Discover the demo's themes, as an analyst would with `corridor themes discover`."""
    from corridor.store import open_store
    from corridor.text.jobs import discover_themes

    with open_store(store) as s:
        themes = discover_themes(s, k=12)
    console.print(f"{len(themes)} themes discovered in the feedback texts")


def _demo_users(store: str | None, host: str, port: int) -> None:
    """One user per role (created once), and how to sign in as each."""
    from corridor.auth import accounts
    from corridor.store import open_store

    with open_store(store) as s:
        if not accounts.list_users(s):
            depts = [r[0] for r in s.query("SELECT DISTINCT department FROM touchpoints")]
            dept = "logistics" if "logistics" in depts else (sorted(depts) or ["service"])[0]
            top = s.query(
                "SELECT partner_id FROM interactions WHERE partner_id IS NOT NULL "
                "GROUP BY partner_id ORDER BY count(*) DESC, partner_id LIMIT 1"
            )
            partner = top[0][0] if top else "partner-1"
            for name, role, extra in (
                ("admin", "admin", {}),
                ("analyst", "analyst", {}),
                (f"head-{dept}", "department_head", {"department": dept}),
                (f"manager-{partner}", "partner_manager", {"partner": partner}),
                ("agent", "agent", {}),
            ):
                accounts.add_user(s, name, DEMO_PASSWORD, role, **extra)
        users = accounts.list_users(s)
    table = Table("sign in as", "role", "sees", title="Demo users")
    for u in users:
        table.add_row(u.username, u.role.value, u.principal().label)
    console.print(table)
    console.print(
        f"Open [bold]http://{host}:{port}/[/] and sign in with one of these users; "
        f"the demo users' password is [bold]{DEMO_PASSWORD}[/] (demo only: remove them with "
        "`corridor users remove` before sharing this store)."
    )


@app.command()
def status(store: StoreOpt = None) -> None:
    """What the store holds: schema version, map, and rows per kind."""
    from corridor.domain.contract import KINDS
    from corridor.ingest.pipeline import Ingestor

    def here(s: Store) -> dict[str, Any]:
        ing = Ingestor(s)
        try:
            cmap = ing.corridor_map
        finally:
            ing.close()
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


@app.command()
def migrate(store: NewStoreOpt = None) -> None:
    """Bring the store's schema up to date (also done whenever a store is opened)."""
    from corridor.store import locate

    loc = locate(store)
    new = loc.path is not None and not loc.path.exists()
    with open_to_write(store, "migrate", migrate=False) as s:
        before = s.schema_version()
        applied = s.migrate()
        if new:
            console.print(f"created an empty store at {escape(str(loc.path))}", soft_wrap=True)
        console.print(
            f"schema version {before} -> {s.schema_version()}"
            + (f" (applied {', '.join(map(str, applied))})" if applied else " (up to date)")
        )


register_text(app)
register_churn(app)
register_analyses(
    app,
    groups={
        ("text",): text_app,
        ("themes",): themes_app,
        ("churn",): churn_app,
        ("lifetime",): lifetime_app,
        ("surveys",): surveys_app,
    },
)
register_auth(app)
register_loop(app)
register_lake(app)
register_cases(app)
register_people(app)
register_surveys(app)
register_report(app)
