"""The ``corridor`` app and its entry point (:func:`main`): every family of commands adds itself
from its module (``register``), in the order ``corridor --help`` lists them."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.markup import escape

from corridor.cli import invitations  # noqa: F401  (adds its commands to `corridor surveys`)
from corridor.cli.analyses import register as register_analyses
from corridor.cli.auth import register as register_auth
from corridor.cli.cases import register as register_cases
from corridor.cli.churn import churn_app, lifetime_app
from corridor.cli.churn import register as register_churn
from corridor.cli.common import EXIT_ERROR, err
from corridor.cli.demo import register as register_demo
from corridor.cli.ingest import register as register_ingest
from corridor.cli.lake import register as register_lake
from corridor.cli.loop import register as register_loop
from corridor.cli.people import register as register_people
from corridor.cli.report import register as register_report
from corridor.cli.serve import register as register_serve
from corridor.cli.store import register as register_store
from corridor.cli.surveys import register as register_surveys
from corridor.cli.surveys import surveys_app
from corridor.cli.text import register as register_text
from corridor.cli.text import text_app, themes_app
from corridor.errors import CorridorError

app = typer.Typer(
    name="corridor",
    help="Corridor: the gap between what customers expected and what they experienced, "
    "at every touch point.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def main() -> None:
    try:
        app()
    except CorridorError as e:
        _fail(str(e))
    except OSError as e:
        # a path the user named that cannot be read or written (a folder for a file, a missing
        # folder, no permission): the system's reason and the path, in one line
        _fail(describe_os_error(e))
    except ValidationError as e:
        # a setting from the environment (CORRIDOR_...) with a value it cannot take
        if e.title != "Settings":
            raise
        _fail(describe_settings_error(e))
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


def _fail(message: str) -> NoReturn:
    # one line, as written: no markup read in the message, no wrapping at the terminal width
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(EXIT_ERROR)


def describe_os_error(e: OSError) -> str:
    """``e`` as one line: what the system said, and the path(s) it said it of."""
    paths = [str(p) for p in (e.filename, e.filename2) if p is not None]
    # the system's sentence ("Is a directory") read on after "error:"
    reason = e.strerror[:1].lower() + e.strerror[1:] if e.strerror else type(e).__name__
    where = f": {' -> '.join(paths)}" if paths else ""
    return f"{reason}{where}"


def describe_settings_error(e: ValidationError) -> str:
    """A settings error as one line per setting: its environment variable, what it holds and
    what it may hold."""
    parts = []
    for problem in e.errors():
        name = "_".join(str(x) for x in problem.get("loc", ())).upper()
        given = problem.get("input")
        parts.append(f"CORRIDOR_{name}={given!r}: {problem.get('msg', 'not allowed')}")
    return "a setting cannot be read: " + "; ".join(parts)


register_ingest(app)  # import, simulate
register_serve(app)
register_demo(app)
register_store(app)  # status, migrate, map
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
