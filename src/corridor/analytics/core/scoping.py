"""How a scoped role's view restricts an analysis: part of each analysis' declaration.

A :class:`ScopeRule` says, for one analysis, how a department head's or partner manager's
:class:`~corridor.auth.scope.Scope` narrows it: the filters forced on the request
(:meth:`Scope.restrict`, which refuses a request naming anything outside the scope), parameters
set from the scope (a department's own touch points or departments), the rows shown (rows of
touch points or departments outside the scope are dropped), how ``n`` is recounted over the rows
shown, and columns withheld. :func:`run_scoped` applies it; the API, the pages, the SDK over
HTTP (through the API) and the CLI all call it, so a view is the same at every door.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from corridor.analytics.core.result import AnalyticsResult

if TYPE_CHECKING:
    from corridor.analytics.core.registry import Analysis
    from corridor.auth.scope import Scope

Row = Mapping[str, Any]
#: (scope, keyword arguments) -> keyword arguments, for an analysis whose parameters the scope
#: sets (forced departments, the department's touch points)
Prepare = Callable[["Scope", dict[str, Any]], dict[str, Any]]
#: (scope, the analysis' function) -> the function a scoped user runs
Rerun = Callable[["Scope", Callable[..., Any]], Callable[..., Any]]
#: (scope, keyword arguments) -> a predicate on result rows
Keep = Callable[["Scope", dict[str, Any]], Callable[[Row], bool]]


def sees_row_touchpoint(scope: Scope, kwargs: dict[str, Any]) -> Callable[[Row], bool]:
    """Rows about a touch point outside the scope are dropped (rows with none stay)."""
    return lambda r: r.get("touchpoint") is None or scope.sees_touchpoint(r["touchpoint"])


def sees_row_operations(scope: Scope, kwargs: dict[str, Any]) -> Callable[[Row], bool]:
    """Rows about another department's operations are dropped."""
    return lambda r: scope.sees_operations(r.get("department"))


def own_touchpoints(scope: Scope, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A department head's own touch points as the ``touchpoints`` parameter (a model reads
    only their gaps); other scopes leave it as it is."""
    if scope.touchpoints is None:
        return kwargs
    return {**kwargs, "touchpoints": sorted(scope.touchpoints)}


@dataclass(frozen=True)
class ScopeRule:
    """The declared restriction of one analysis for scoped roles (admins and analysts see
    everything; agents run only analyses declared for everyone)."""

    #: force the scope's department or partner into the filters (and refuse others)
    restrict_filters: bool = True
    #: which rows a scoped user is shown
    keep: Keep | None = sees_row_touchpoint
    #: row columns summed to recount ``n`` over the rows shown (None: ``n`` is kept)
    recount: tuple[str, ...] | None = None
    #: parameters set from the scope
    prepare: Prepare | None = None
    #: the function a scoped user runs instead (e.g. a department's own impact)
    rerun: Rerun | None = None
    #: columns withheld from roles that may not see the reasons (``Scope.reasons_withheld``)
    withhold: tuple[str, ...] = ()
    #: a short note for the docs
    note: str = "filters forced to the scope; rows of touch points outside it dropped"


#: the rule most analyses follow
DEFAULT = ScopeRule()


def run_scoped(
    analysis: Analysis, source: Any, scope: Scope | None, kwargs: dict[str, Any]
) -> AnalyticsResult:
    """Run ``analysis`` with already bound ``kwargs`` (see :meth:`Analysis.bind`) as ``scope``
    may see it (``None``: everything)."""
    rule = analysis.scope or DEFAULT
    run = analysis.run
    if scope is None or scope.sees_all:
        return analysis.finish(run(source, **kwargs))
    if rule.restrict_filters and "filters" in kwargs:
        kwargs["filters"] = scope.restrict(kwargs["filters"])
    if rule.prepare is not None:
        kwargs = rule.prepare(scope, kwargs)
    if rule.rerun is not None:
        run = rule.rerun(scope, run)
    result: AnalyticsResult = analysis.finish(run(source, **kwargs))
    frame = result.frame
    extra: dict[str, Any] = {}
    if rule.keep is not None and not frame.empty:
        keep = rule.keep(scope, kwargs)
        mask = [bool(keep(r)) for r in result.to_records()]
        if not all(mask):
            frame = frame[pd.Series(mask, index=frame.index)]
            if rule.recount is not None:  # totals count only what the user is shown
                n = int(sum(float(frame[c].fillna(0).sum()) for c in rule.recount if c in frame))
                result = replace(result, n=n)
    why = scope.reasons_withheld
    if rule.withhold and why is not None:
        frame = frame.drop(columns=[c for c in rule.withhold if c in frame.columns])
        extra["reasons_withheld"] = why
    return replace(result, frame=frame.reset_index(drop=True), extra={**result.extra, **extra})


__all__ = [
    "DEFAULT",
    "ScopeRule",
    "own_touchpoints",
    "run_scoped",
    "sees_row_operations",
    "sees_row_touchpoint",
]
