"""The analysis registry: every analysis declared once, beside its function.

A declaration (:class:`Analysis`) names the analysis, its title and description, its parameters
(:class:`Param`: kind, allowed values, default, bounds, help), which of the common parameters it
takes (``by``, ``period``, filters, ``since``, ``until``, ``confidence``), its result columns
(:class:`Column`), the metadata it adds (``extras``), and its scope rule (how a department
head's or partner manager's view restricts it, :mod:`corridor.analytics.core.scoping`).

Everything a user touches is generated from the declaration: the API route with its typed query
parameters and response schema (:mod:`corridor.api.analyses`), the ``corridor`` command
(:mod:`corridor.cli.analyses`), the SDK method (:mod:`corridor.sdk`) and the reference docs
(``docs/reference.md``, written by ``scripts/reference-docs``).

One calling convention: ``analysis(source, *, by, filters, since, until, period, confidence,
**own)``. ``by=None`` means the analysis' default grouping, ``by=[]`` no grouping; a common
parameter an analysis does not take is refused when given. Values are checked against the
declaration the same way at every door: strings from a URL or a command line through
:meth:`Analysis.parse`, Python values through :meth:`Analysis.bind`.

Adding an analysis: write the function (taking the common parameters it needs and its own as
keywords, returning an :class:`~corridor.analytics.core.result.AnalyticsResult`), declare it
with :func:`register` in the same module, and list the module in :data:`MODULES` if it is new.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from corridor.analytics.core import numbers
from corridor.analytics.core.dimensions import DIMENSIONS, PERIODS
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.core.result_columns import Column, with_intervals

if TYPE_CHECKING:
    from corridor.analytics.core.scoping import ScopeRule

Kind = Literal["str", "int", "float", "bool", "list", "time"]

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")
#: a time in a query string: an ISO-8601 date, or a date and time (seconds, fraction and offset
#: optional; Z for UTC); empty means no bound
TIME_PATTERN = r"^(\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?)?$"
_TIME = re.compile(TIME_PATTERN, re.ASCII)


@dataclass(frozen=True)
class Param:
    """One parameter of an analysis.

    ``kind``: ``str`` (with ``choices`` an enumeration), ``int``, ``float``, ``bool``, ``list``
    (of strings; comma-separated and repeated values alike; ``choices`` limit the items) or
    ``time`` (ISO-8601 date or time). ``ge``/``le`` bound numbers; ``nullable`` lets a value be
    left out with no default (``None``).
    """

    name: str
    kind: Kind
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] | None = None
    ge: float | None = None
    le: float | None = None
    #: strict bounds (``gt``, ``lt``): a horizon above 0, a level below 1
    lt: float | None = None
    gt: float | None = None
    example: Any = None

    # -- strings (URL, command line) ---------------------------------------------------------
    def parse(self, raws: Sequence[str]) -> Any:
        """The value of this parameter given as strings (one per repetition)."""
        if self.kind == "list":
            items = [v.strip() for raw in raws for v in raw.split(",") if v.strip()]
            return self.check(items)
        raw = raws[-1]
        if len(raws) > 1 and len(set(raws)) > 1:
            raise AnalyticsQueryError(f"{self.name} is given {len(raws)} times; give it once")
        if self.kind == "int":
            return self.check(numbers.whole_number(raw, self.name, self._example()))
        if self.kind == "float":
            return self.check(numbers.number(raw, self.name, self._example()))
        if self.kind == "bool":
            if raw.strip().lower() not in (*_TRUE, *_FALSE):
                raise AnalyticsQueryError(f"{self.name} {numbers.shown(raw)} is not true or false")
            return raw.strip().lower() in _TRUE
        if self.kind == "time":
            if not _TIME.fullmatch(raw):
                raise AnalyticsQueryError(
                    f"{self.name}={numbers.shown(raw)} is not an ISO-8601 date or time, e.g. "
                    "2025-03-01 or 2025-03-01T12:00:00Z"
                )
            return raw or None  # the analysis checks its range (check_time): one message
        return self.check(raw)

    # -- Python values (SDK, in process) -----------------------------------------------------
    def check(self, value: Any) -> Any:
        """``value`` checked against the declaration (kind, choices, bounds)."""
        if value is None:
            return None
        if self.kind == "list":
            items = [value] if isinstance(value, str) else list(value)
            if not all(isinstance(v, str) for v in items):
                raise AnalyticsQueryError(f"{self.name} must be a list of names, got {value!r}")
            if self.choices is not None:
                bad = [v for v in items if v not in self.choices]
                if bad:
                    raise AnalyticsQueryError(
                        f"unknown {self.name} {', '.join(map(repr, bad))}; allowed: "
                        f"{', '.join(self.choices)}"
                    )
            return items
        if self.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise AnalyticsQueryError(f"{self.name} must be a number, got {value!r}")
            if self.kind == "int" and not float(value).is_integer():
                raise AnalyticsQueryError(f"{self.name} must be a whole number, got {value!r}")
            if not math.isfinite(value):
                raise AnalyticsQueryError(f"{self.name} must be finite, got {value!r}")
            low = (self.ge is not None and value < self.ge) or (
                self.gt is not None and value <= self.gt
            )
            high = (self.le is not None and value > self.le) or (
                self.lt is not None and value >= self.lt
            )
            if low or high:
                raise AnalyticsQueryError(f"{self.name} must be {self.range()}, got {value!r}")
            return int(value) if self.kind == "int" else float(value)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise AnalyticsQueryError(f"{self.name} must be true or false, got {value!r}")
            return value
        if self.kind == "time":
            if not isinstance(value, str | date | datetime):
                raise AnalyticsQueryError(
                    f"{self.name} must be an ISO-8601 date or time, got {value!r}"
                )
            return value
        if not isinstance(value, str):
            raise AnalyticsQueryError(f"{self.name} must be a string, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise AnalyticsQueryError(
                f"unknown {self.name} {value!r}; allowed: {', '.join(self.choices)}"
            )
        return value

    def range(self) -> str:
        parts = []
        if self.ge is not None:
            parts.append(f"at least {_num(self.ge)}")
        if self.gt is not None:
            parts.append(f"above {_num(self.gt)}")
        if self.le is not None:
            parts.append(f"at most {_num(self.le)}")
        if self.lt is not None:
            parts.append(f"below {_num(self.lt)}")
        return " and ".join(parts) or "any number"

    def _example(self) -> Any:
        if self.example is not None:
            return self.example
        return self.default if self.default is not None else (1 if self.kind == "int" else 0.5)

    # -- OpenAPI ---------------------------------------------------------------------------------
    def schema(self) -> dict[str, Any]:
        """The JSON schema of the value in a query string (OpenAPI 3.1)."""
        s: dict[str, Any]
        if self.kind == "list":
            item: dict[str, Any] = {"type": "string"}
            if self.choices is not None:
                names = "|".join(re.escape(c) for c in self.choices)
                # one name, or several comma-separated (repeating the parameter works too)
                item["pattern"] = rf"^\s*(({names})\s*(,\s*({names})\s*)*)?,?$"
            s = {"type": "array", "items": item}
            if self.default is not None:
                s["default"] = list(self.default)
            return s
        if self.kind == "int":
            s = {"type": "integer"}
        elif self.kind == "float":
            s = {"type": "number"}
        elif self.kind == "bool":
            s = {"type": "boolean"}
        elif self.kind == "time":
            s = {"type": "string", "pattern": TIME_PATTERN, "examples": ["2025-03-01"]}
        else:
            s = {"type": "string"}
            if self.choices is not None:
                s["enum"] = list(self.choices)
        if self.ge is not None:
            s["minimum"] = self.ge
        if self.le is not None:
            s["maximum"] = self.le
        if self.lt is not None:
            s["exclusiveMaximum"] = self.lt
        if self.gt is not None:
            s["exclusiveMinimum"] = self.gt
        if self.default is not None:
            s["default"] = self.default
        return s

    def describe(self) -> str:
        """The help text with allowed values and default, for every surface."""
        text = self.help.rstrip(".")
        if self.choices is not None:
            text += (
                f"; one of {', '.join(self.choices)}"
                if self.kind != "list"
                else (f"; any of {', '.join(self.choices)} (comma-separated or repeated)")
            )
        if self.kind in ("int", "float") and (self.ge, self.gt, self.le, self.lt) != (None,) * 4:
            text += f"; {self.range()}"
        if self.default is not None and self.default != [] and self.default != ():
            shown = ",".join(self.default) if self.kind == "list" else self.default
            text += f" (default {str(shown).lower() if self.kind == 'bool' else shown})"
        return text


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


#: every dimension's name: what most analyses group and filter by
DIMENSION_NAMES: tuple[str, ...] = tuple(DIMENSIONS)
#: the common parameters, in the order every surface lists them
COMMON = ("by", "period", "since", "until", "confidence")


def by_param(
    default: Sequence[str] = (),
    choices: Iterable[str] = DIMENSIONS,
    help: str = "group by these dimensions; an empty value for no grouping",
) -> Param:
    return Param("by", "list", list(default), help, tuple(choices))


PERIOD = Param("period", "str", None, "one row per period as well", tuple(PERIODS))
SINCE = Param("since", "time", None, "from this time on (ISO-8601, inclusive)")
UNTIL = Param("until", "time", None, "before this time (ISO-8601, exclusive)")
CONFIDENCE = Param(
    "confidence", "float", 0.95, "two-sided level of every interval", ge=0.5, lt=1.0,
    example="0.9, 0.95 or 0.99",
)  # fmt: skip
FILTER_HELP = (
    "keep records with these values (comma-separated or repeated); an empty value selects "
    "records without one"
)


@dataclass(frozen=True)
class Analysis:
    """One analysis, declared once. See the module docstring."""

    name: str
    title: str
    run: Callable[..., Any]
    #: API path under ``/api/v1`` (``{person_id}`` for an analysis of one person)
    path: str
    description: str
    #: the words of the ``corridor`` command
    command: tuple[str, ...] = ()
    #: the OpenAPI tag and docs section
    tag: str = "analyses"
    #: the ``by`` parameter (None: the analysis does not group)
    by: Param | None = None
    period: Param | None = None
    #: dimensions a filter may name (none: the analysis takes no filters)
    filters: tuple[str, ...] = ()
    since: bool = True
    until: bool = True
    confidence: bool = True
    #: its own parameters
    params: tuple[Param, ...] = ()
    #: the measure columns of ``frame`` (the grouping dimensions and periods come on top)
    columns: tuple[Column, ...] = ()
    #: metadata keys beyond n, confidence, method and query (``model``, ``test``, ...)
    extras: tuple[str, ...] = ()
    #: the few columns a terminal table shows (empty: every column); ``name±`` stands for the
    #: column and the two ends of its interval (:func:`with_intervals`)
    brief: tuple[str, ...] = ()
    #: how a scoped role's view restricts it
    scope: ScopeRule | None = None
    #: who may run it: "analyst" (every role but agent) or "everyone" (signed-in roles)
    audience: Literal["analyst", "everyone"] = "analyst"
    #: the function takes one person's id first (``run(source, person_id, **params)``)
    person: bool = False
    #: fixed keywords passed to ``run`` (one function serving several analyses)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    #: keep only measure columns starting with these prefixes (one function, several views)
    keep_columns: tuple[str, ...] | None = None
    #: the answer an owner's fitted models (:class:`~corridor.analytics.customers.models.
    #: FittedModels`, fitted in the background) already hold for these bound keywords, on the
    #: store as it is now; None when they hold none (then the analysis runs)
    reuse: Callable[[Any, Any, dict[str, Any]], AnalyticsResult | None] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "brief", with_intervals(self.brief))

    # -- parameters ---------------------------------------------------------------------------
    def parameters(self) -> list[Param]:
        """Every parameter the analysis takes, common ones first (filters excluded)."""
        common: list[Param] = []
        if self.by is not None:
            common.append(self.by)
        if self.period is not None:
            common.append(self.period)
        if self.since:
            common.append(SINCE)
        if self.until:
            common.append(UNTIL)
        if self.confidence:
            common.append(CONFIDENCE)
        return [*common, *self.params]

    def filter_params(self) -> list[Param]:
        return [
            Param(d, "list", None, f"{DIMENSIONS[d].description}: {FILTER_HELP}")
            if d in DIMENSIONS
            else Param(d, "list", None, FILTER_HELP)
            for d in self.filters
        ]

    def allowed(self) -> str:
        names = [p.name for p in self.parameters()]
        text = ", ".join(names) or "none"
        if self.filters:
            text += f", or a filter named after {', '.join(self.filters)}"
        return text

    def parse(self, query: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """Keyword arguments from strings (a query string or command-line options), every name
        and value checked; unknown names are refused with the list of what is allowed."""
        params = {p.name: p for p in self.parameters()}
        unknown = sorted(k for k in query if k not in params and k not in self.filters)
        if unknown:
            raise AnalyticsQueryError(
                f"unknown query parameter(s) {', '.join(unknown)}; allowed: {self.allowed()}"
            )
        out: dict[str, Any] = {}
        filters: dict[str, list[str | None]] = {}
        for key, raws in query.items():
            if not raws:
                continue
            if key in params:
                out[key] = params[key].parse(list(raws))
            else:  # a filter: an empty value selects records without one
                filters[key] = [v.strip() or None for raw in raws for v in raw.split(",")]
        if filters:
            out["filters"] = filters
        return out

    def bind(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments ``run`` takes, from the calling convention's: defaults filled,
        values checked, common parameters the analysis does not take refused when given."""
        params = {p.name: p for p in self.parameters()}
        kwargs: dict[str, Any] = dict(self.fixed)
        for key, value in given.items():
            if key == "filters":
                continue
            if key not in params:
                if value is None or (key == "confidence" and value == 0.95):
                    continue
                raise AnalyticsQueryError(
                    f"{self.name} takes no parameter {key!r}; allowed: {self.allowed()}"
                )
        for name, p in params.items():
            value = given.get(name)
            checked = p.check(value)
            if checked is None:
                checked = list(p.default) if isinstance(p.default, list | tuple) else p.default
            kwargs[name] = checked
        filters = given.get("filters")
        if filters:
            if not self.filters:
                raise AnalyticsQueryError(f"{self.name} takes no filters")
            bad = sorted(k for k in filters if k not in self.filters)
            if bad:
                raise AnalyticsQueryError(
                    f"unknown filter {', '.join(map(repr, bad))}; allowed: "
                    f"{', '.join(self.filters)}"
                )
        if self.filters:
            kwargs["filters"] = dict(filters) if filters else None
        return kwargs

    # -- running ------------------------------------------------------------------------------
    def __call__(
        self,
        source: Any,
        *,
        by: Sequence[str] | None = None,
        filters: Mapping[str, Any] | None = None,
        since: Any = None,
        until: Any = None,
        period: str | None = None,
        confidence: float = 0.95,
        **own: Any,
    ) -> AnalyticsResult:
        if self.person:
            raise AnalyticsQueryError(f"{self.name} answers about one person: use .person()")
        given = {
            "by": by, "filters": filters, "since": since, "until": until, "period": period,
            "confidence": confidence, **own,
        }  # fmt: skip
        return self.finish(self.run(source, **self.bind(given)))

    def person_answer(self, source: Any, person_id: str, **own: Any) -> Any:
        """An analysis of one person: its typed answer."""
        return self.run(source, person_id, **self.bind(own))

    def body(self, result: AnalyticsResult) -> dict[str, Any]:
        """The answer every surface gives: name, title, metadata and rows (JSON-friendly)."""
        return {
            "analysis": self.name,
            "title": self.title,
            **result.metadata(),
            "rows": result.to_records(),
        }

    def finish(self, result: AnalyticsResult) -> AnalyticsResult:
        """Keep the declared view of a shared function's frame (``keep_columns``)."""
        if self.keep_columns is None:
            return result
        prefixes = tuple(
            f"{change}{p}" for p in self.keep_columns for change in ("", "delta_", "p_value_")
        )
        keys = ("period", "period_label", "n")
        keep = [
            c
            for c in result.frame.columns
            if c in DIMENSIONS or c in keys or str(c).startswith(prefixes)
        ]
        return replace(result, frame=result.frame[keep])


_REGISTRY: dict[str, Analysis] = {}

#: the modules that declare analyses (imported on first use of the registry)
MODULES: tuple[str, ...] = (
    "corridor.analytics.feedback.gaps",
    "corridor.analytics.feedback.metrics",
    "corridor.analytics.feedback.promises",
    "corridor.analytics.feedback.drift",
    "corridor.analytics.feedback.facets",
    "corridor.analytics.feedback.text",
    "corridor.analytics.customers.churn",
    "corridor.analytics.customers.churn_risk",
    "corridor.analytics.customers.lifetime",
    "corridor.analytics.customers.drivers",
    "corridor.analytics.customers.journeys",
    "corridor.analytics.customers.wallet",
    "corridor.analytics.attribution.ripple",
    "corridor.analytics.attribution.scorecards",
    "corridor.analytics.attribution.alignment",
    "corridor.analytics.surveys.response_rates",
    "corridor.analytics.surveys.dropoff",
    "corridor.analytics.anticipation.forecasts",
)


def register(analysis: Analysis) -> Analysis:
    """Add a declaration to the registry (its module calls this at import)."""
    if analysis.name in _REGISTRY and _REGISTRY[analysis.name] is not analysis:
        raise ValueError(f"analysis {analysis.name!r} is declared twice")
    _REGISTRY[analysis.name] = analysis
    return analysis


def analyses() -> dict[str, Analysis]:
    """Every registered analysis by name, in declaration order."""
    for module in MODULES:
        importlib.import_module(module)
    return dict(_REGISTRY)


def get(name: str) -> Analysis:
    found = analyses().get(name)
    if found is None:
        raise AnalyticsQueryError(f"unknown analysis {name!r}; allowed: {', '.join(_REGISTRY)}")
    return found


__all__ = [
    "COMMON",
    "CONFIDENCE",
    "DIMENSION_NAMES",
    "PERIOD",
    "SINCE",
    "UNTIL",
    "Analysis",
    "Param",
    "analyses",
    "by_param",
    "get",
    "register",
]
