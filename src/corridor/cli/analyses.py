"""One ``corridor`` command per registered analysis, generated from its declaration.

The command's words come from the declaration (``corridor gaps``, ``corridor churn risk``), one
option per parameter (``--by touchpoint,region`` or ``--by touchpoint --by region``; allowed
values, default and bounds in ``--help``), ``--where DIMENSION=VALUE[,VALUE...]`` for filters,
``--format table|json|csv`` and ``--store``. Values are read by the declaration
(:meth:`~corridor.analytics.core.registry.Analysis.parse`), so a command line and a query string
are checked alike and ``--format json`` prints exactly the API's reply.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

from corridor.analytics.core import registry
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.registry import Analysis, Param
from corridor.analytics.core.result import AnalyticsResult
from corridor.cli.common import FormatOpt, StoreOpt, on_store_or_server
from corridor.cli.render import check_format, print_json, print_notes, render

_METAVAR = {"int": "INTEGER", "float": "NUMBER", "time": "TIME", "list": "NAMES", "str": "TEXT"}
#: what a table of an analysis shows under it beyond its notes and summary (the log-rank
#: test, a model's facts), by analysis name; the modules with such analyses' commands add theirs
FOOTERS: dict[str, Callable[[AnalyticsResult], None]] = {}


def parse_where(pairs: Sequence[str], allowed: Sequence[str]) -> dict[str, list[str]]:
    """``["region=north", "channel=web,app"]`` → ``{"region": ["north"], "channel": [...]}``
    (strings, read by the declaration like a query string: an empty value selects records
    without one)."""
    out: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, values = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise AnalyticsQueryError(
                f"cannot read --where {pair!r}; write DIMENSION=VALUE[,VALUE...], e.g. "
                f"region=north; dimensions: {', '.join(allowed)}"
            )
        if name not in allowed:
            raise AnalyticsQueryError(
                f"unknown filter {name!r} in --where; allowed: {', '.join(allowed) or 'none'}"
            )
        out.setdefault(name, []).append(values)
    return out


def _option(p: Param) -> inspect.Parameter:
    flag = "--" + p.name.replace("_", "-")
    if p.kind == "bool":
        annotation: Any = Annotated[
            bool | None,
            typer.Option(f"{flag}/--no-{p.name.replace('_', '-')}", help=p.describe()),
        ]
    elif p.kind == "list":
        annotation = Annotated[
            list[str] | None, typer.Option(flag, help=p.describe(), metavar=_METAVAR[p.kind])
        ]
    else:
        metavar = "|".join(p.choices) if p.choices else _METAVAR[p.kind]
        annotation = Annotated[str | None, typer.Option(flag, help=p.describe(), metavar=metavar)]
    return inspect.Parameter(
        f"opt_{p.name}", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
    )


def strings(a: Analysis, given: dict[str, Any]) -> dict[str, list[str]]:
    """The command's options as the query-string form :meth:`Analysis.parse` reads."""
    query: dict[str, list[str]] = {}
    for p in a.parameters():
        value = given.get(f"opt_{p.name}")
        if value is None:
            continue
        if p.kind == "bool":
            query[p.name] = ["true" if value else "false"]
        elif isinstance(value, list):
            query[p.name] = value
        else:
            query[p.name] = [value]
    query.update(parse_where(given.get("where") or [], a.filters))
    return query


def run_command(a: Analysis, given: dict[str, Any]) -> None:
    """Run ``a`` on the store; when a running ``corridor serve`` holds the (DuckDB) store, ask
    that server instead (:func:`~corridor.cli.common.on_store_or_server`); ``--format json``
    then prints its reply as it came."""
    from corridor.analytics.core.scoping import run_scoped
    from corridor.sdk import result_from_body

    fmt = given["fmt"]
    check_format(fmt)
    query = strings(a, given)
    kwargs = a.bind(a.parse(query))  # checked here first: the same messages either way
    pairs = [(k, v) for k, values in query.items() for v in values]
    answer: AnalyticsResult | dict[str, Any] = on_store_or_server(
        given["store"],
        lambda s: run_scoped(a, s, None, kwargs),
        lambda c: c.call("GET", f"/api/v1{a.path}", params=pairs),
    )
    if isinstance(answer, dict):  # the server's reply
        if fmt == "json":
            print_json(answer)
            return
        answer = result_from_body(a, answer)
    render(a, answer, fmt)
    if fmt == "table":
        print_notes(answer)
        footer = FOOTERS.get(a.name)
        if footer is not None:
            footer(answer)


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


def _command(a: Analysis) -> Any:
    def command(**given: Any) -> None:
        run_command(a, given)

    params = [_option(p) for p in a.parameters()]
    if a.filters:
        where: Any = Annotated[
            list[str] | None,
            typer.Option(
                "--where",
                help="filter DIMENSION=VALUE[,VALUE...] (repeatable), e.g. --where "
                f"region=north; dimensions: {', '.join(a.filters)}",
            ),
        ]
        params.append(_keyword("where", where, None))
    params.append(_keyword("fmt", FormatOpt, "table"))
    params.append(_keyword("store", StoreOpt, None))
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {}
    command.__name__ = a.name
    command.__doc__ = f"{a.title}. {a.description}"
    return command


def _group(app: typer.Typer, words: tuple[str, ...], groups: dict[tuple[str, ...], Any]) -> Any:
    """The Typer app a command with these leading words goes into (made on demand)."""
    target = app
    for i in range(len(words)):
        key = words[: i + 1]
        if key not in groups:
            sub = typer.Typer(no_args_is_help=True, help=f"{' '.join(key).capitalize()}.")
            target.add_typer(sub, name=key[-1])
            groups[key] = sub
        target = groups[key]
    return target


def register(app: typer.Typer, groups: dict[tuple[str, ...], Any] | None = None) -> None:
    """Add one command per registered analysis to ``app``; ``groups`` names sub-apps that
    already exist (``{("text",): text_app}``), so generated commands join them."""
    groups = dict(groups or {})
    for a in registry.analyses().values():
        if a.person:
            continue
        words = a.command or (a.name,)
        target = _group(app, words[:-1], groups)
        target.command(words[-1], help=f"{a.title}. {a.description}", short_help=a.title)(
            _command(a)
        )


__all__ = ["FOOTERS", "parse_where", "register", "run_command", "strings"]
