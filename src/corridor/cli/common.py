"""Options and consoles every ``corridor`` command shares: ``--store``, the options of the
analyses (``--by``, ``--period``, ``--where``, ``--since``, ``--until``, ``--confidence``,
``--format``) and the arguments naming what a command acts on; the store opened here or through
a running server; the progress bar and the exit codes."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from corridor.analytics.core.dimensions import DIMENSIONS, PERIODS

if TYPE_CHECKING:
    from corridor.auth.local_server import ServerClient
    from corridor.store import Store

T = TypeVar("T")

console = Console()
err = Console(stderr=True)

#: a command's exit codes: done; done in part (an import with quarantined rows); nothing done
EXIT_OK, EXIT_REJECTED, EXIT_ERROR = 0, 1, 2

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


def _store_option(help: str, check: Callable[[typer.Context, str | None], str | None]) -> Any:
    """``--store`` (or ``CORRIDOR_STORE``), its help ending with ``help``, checked by ``check``."""
    return typer.Option(
        "--store",
        envvar="CORRIDOR_STORE",
        help=f"{_STORE_HELP}. {help}",
        show_default=False,
        callback=check,
    )


#: ``--store`` of a command that reads: the store must exist
StoreOpt = Annotated[
    str | None, _store_option("It must exist (this command never creates one).", _existing_store)
]
#: ``--store`` of a command that may create the store (import, map load, demo, migrate, ...)
NewStoreOpt = Annotated[str | None, _store_option("Created if missing.", _store_url)]

ByOpt = Annotated[
    list[str] | None,
    typer.Option("--by", help=f"group by (repeatable): {', '.join(DIMENSIONS)}"),
]
PeriodOpt = Annotated[str | None, typer.Option("--period", help=f"one of {', '.join(PERIODS)}")]
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        help="filter DIMENSION=VALUE[,VALUE...] (repeatable), e.g. --where region=north",
    ),
]
SinceOpt = Annotated[str | None, typer.Option(help="from this time on (ISO-8601, inclusive)")]
UntilOpt = Annotated[str | None, typer.Option(help="before this time (ISO-8601, exclusive)")]
ConfOpt = Annotated[float, typer.Option(help="confidence level of every interval")]
FormatOpt = Annotated[str, typer.Option("--format", help="table, json or csv")]

#: the arguments naming what a command acts on, alike in every command
SurveyIdArg = Annotated[str, typer.Argument(help="the survey's id")]
CaseIdArg = Annotated[str, typer.Argument(help="the case's id")]
EndpointIdArg = Annotated[int, typer.Argument(help="the endpoint's id (webhooks list)")]
RuleIdArg = Annotated[str, typer.Argument(help="the rule's id")]
UsernameArg = Annotated[str, typer.Argument(help="login name")]
KeyIdArg = Annotated[str, typer.Argument(help="the key id (or the whole key)")]
NotificationIdArg = Annotated[int, typer.Argument(help="the notification's id (deliveries)")]
LinkIdArg = Annotated[str, typer.Argument(help="the link's id (lnk-…), from `surveys links`")]
ThemeIdArg = Annotated[str, typer.Argument(help="theme id (corridor themes list)")]

#: ``--limit`` of a list command: at most this many
LimitOpt = Annotated[int, typer.Option(min=1, max=100_000, help="at most this many")]
#: a list's length, newest first
NewestOpt = Annotated[int, typer.Option(min=1, max=10_000, help="at most this many, newest first")]


def option_set(
    into: str, options: Mapping[str, Any], combine: Callable[..., Any] = dict
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """A command taking several options as one value: its parameter ``into`` stands, on the
    command line, for ``options`` (each name with its ``Annotated`` option or argument,
    defaulting to None), in that order and at that place; the command is given
    ``combine(**their values)``, by default the dict of them."""

    def decorate(command: Callable[..., T]) -> Callable[..., T]:
        signature = inspect.signature(command, eval_str=True)
        if into not in signature.parameters:
            raise TypeError(f"{command.__name__} has no parameter {into!r}")
        params: list[inspect.Parameter] = []
        for p in signature.parameters.values():
            if p.name != into:
                params.append(p)
                continue
            params += [
                inspect.Parameter(name, p.kind, default=None, annotation=annotation)
                for name, annotation in options.items()
            ]

        @functools.wraps(command)
        def run(**given: Any) -> T:
            values = {name: given.pop(name) for name in options}
            return command(**given, **{into: combine(**values)})

        run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run

    return decorate


def on_store_or_server(
    store: str | None,
    here: Callable[[Store], T],
    via_server: Callable[[ServerClient], T],
) -> T:
    """``here(store)``; or, when a running ``corridor serve`` holds the (DuckDB) store,
    ``via_server(client)`` with the credential it publishes for its owner (an owner-only file
    next to the store, :mod:`corridor.auth.local_server`), saying so in one line."""
    from corridor.auth import local_server
    from corridor.errors import StoreLockedError
    from corridor.store import open_store

    try:
        opened = open_store(store)
    except StoreLockedError as locked:
        client = local_server.client_for(locked)
        result = via_server(client)
        err.print(
            f"the store is held by a running server: this went through it at {client.url}",
            soft_wrap=True,
        )
        return result
    with opened:
        return here(opened)


def _jsonable(body: Any) -> Any:
    """A reply as the API gives it (times as ISO-8601 text)."""
    import orjson

    return orjson.loads(orjson.dumps(body, default=str))


def here_or_server(
    store: str | None, here: Callable[[Store], Any], via: Callable[[ServerClient], Any]
) -> Any:
    """:func:`on_store_or_server`, its answer as the API's JSON."""
    return _jsonable(on_store_or_server(store, here, via))


def check_out(path: Path, option: str = "--out") -> None:
    """Refuse, before any work is done (or logged), an output file that cannot be written: a
    folder, or a file in a folder that does not exist or this user may not write in."""
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; name a file in it", param_hint=option)
    folder = path.parent
    if not folder.is_dir():
        raise typer.BadParameter(
            f"the folder {folder} does not exist; make it first, or name a file elsewhere",
            param_hint=option,
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise typer.BadParameter(f"this user may not write in {folder}", param_hint=option)


def open_to_write(
    store: str | None, command: str, instead: str = "", *, migrate: bool = True
) -> Store:
    """``open_store(store)`` for a command that must own the file (it writes it as a whole:
    imports, migrations, text analysis); while a running server holds the DuckDB file, a
    :class:`~corridor.errors.StoreError` saying in one line what to do (``instead``: another way,
    such as the HTTP API, appended to it)."""
    from corridor.auth import local_server
    from corridor.errors import StoreError, StoreLockedError
    from corridor.store import open_store

    try:
        return open_store(store, migrate=migrate)
    except StoreLockedError as locked:
        url = local_server.holder_url(locked)
        raise StoreError(
            f"the store {locked.path} is held by a running server"
            + (f" ({url})" if url else " (`corridor serve` or `corridor demo`?)")
            + f": `corridor {command}` writes the file itself, so stop that server (Ctrl-C where "
            f"it runs) and run this again{instead}"
        ) from None


def new_store_path(store: str | None) -> Path | None:
    """The file an embedded store at ``store`` will be created in when it is opened, or None
    (it exists already, or it is not a file)."""
    from corridor.store import locate

    loc = locate(store)
    return loc.path if loc.path is not None and not loc.path.exists() else None


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[str, float], None]]:
    """A Rich progress bar on stderr driven by ``callback(label, fraction_done)``."""
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
