"""``corridor serve``: the API and the dashboard over a store; what ``corridor demo`` shares of
it (:func:`listen_socket`, :func:`run_server`)."""

from __future__ import annotations

import errno
import socket
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from corridor.cli.common import StoreOpt, console, err, progress_bar
from corridor.errors import CorridorError

HostOpt = Annotated[str, typer.Option(help="interface to listen on")]
PortOpt = Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")]


def register(app: typer.Typer) -> None:
    """Add ``corridor serve`` to ``app``."""
    app.command()(serve)


def serve(
    store: StoreOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8765,
    auth: Annotated[
        str | None,
        typer.Option(
            help="on (default): sign-in and API keys required; off: everyone is an admin "
            "(single-user machines only)"
        ),
    ] = None,
    lake_sync: Annotated[
        Path | None,
        typer.Option(
            "--lake-sync",
            help="bring this lake folder up to date with the store on a schedule (the job "
            "lake.sync; `corridor lake sync` by hand); env CORRIDOR_LAKE_SYNC",
        ),
    ] = None,
    lake_sync_every: Annotated[
        float | None,
        typer.Option(
            "--lake-sync-every",
            min=1,
            help="seconds between two scheduled lake syncs (default 900); env "
            "CORRIDOR_LAKE_SYNC_EVERY_S",
        ),
    ] = None,
) -> None:
    """Serve the API (and the dashboard) over an existing store. The churn and lifetime models
    start fitting in the background as it starts serving (customer pages say when they will be
    ready)."""
    run_server(
        store,
        host,
        port,
        auth,
        lake_sync=None if lake_sync is None else str(lake_sync.expanduser().absolute()),
        lake_sync_every_s=lake_sync_every,
    )


def listen_socket(host: str, port: int) -> socket.socket:
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


def run_server(
    store: str | None,
    host: str,
    port: int,
    auth: str | None = None,
    sock: socket.socket | None = None,
    fit_first: bool = False,
    *,
    lake_sync: str | None = None,
    lake_sync_every_s: float | None = None,
) -> None:
    """Serve ``store`` on ``host:port`` (on ``sock`` when it is bound already) until stopped;
    ``lake_sync``: a lake folder the scheduler keeps up to date (every ``lake_sync_every_s``)."""
    import uvicorn

    from corridor.auth import local_server
    from corridor.settings import Settings

    if auth not in (None, "on", "off"):
        raise CorridorError(f"--auth {auth!r}: use on or off")
    settings = Settings.from_env(
        store_url=store,
        host=host,
        port=port,
        auth=auth,
        lake_sync=lake_sync,
        lake_sync_every_s=lake_sync_every_s,
    )
    if settings.auth == "off":
        console.print(
            "[bold yellow]warning:[/] authentication is off: anyone who reaches this port is "
            "an admin"
        )
    sock = sock or listen_socket(host, port)
    with sock:
        application = _start_up(settings, fit_first=fit_first)
        console.print(f"Corridor is serving on [bold]http://{host}:{port}/[/]  (API docs: /docs)")
        if settings.lake_sync and settings.scheduler == "on":
            console.print(
                f"the lake {escape(settings.lake_sync)} is synced every "
                f"{settings.lake_sync_every_s:g} s (job lake.sync: `corridor jobs list`)",
                soft_wrap=True,
            )
        # on an embedded store, `corridor users|keys` reach this server through a local credential
        with local_server.published(application, host, port):
            server = uvicorn.Server(uvicorn.Config(application, log_level="warning"))
            server.run(sockets=[sock])


def _start_up(settings: Any, *, fit_first: bool = False) -> Any:
    """The app :func:`run_server` serves, ready to serve: the rollup brought up to date and the
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
        with progress_bar("fitting churn and lifetime models") as progress:
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
    answer from the base tables. (Queued feedback is folded by the server's worker as it
    starts: :mod:`corridor.ingest.after_commit`.)"""
    from corridor.analytics.feedback import rollup

    if rollup.has_rollup(store) and store.count("rollup_dirty"):
        with progress_bar("bringing the rollup up to date") as progress:
            days = rollup.refresh(store)
            progress("rollup up to date", 1.0)
        console.print(f"rollup: {days} stale day(s) rebuilt")
