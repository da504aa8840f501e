"""Key drivers: which touch-point gaps (or facets of the experience) drive an outcome.

The unit is the (canonical) person — within each group when ``by`` is given. For each person:

* **drivers** — ``touchpoint``: the mean gap (experience − expectation) of their rated feedback
  at each touch point; ``facet``: the mean of each feedback facet (:data:`FACETS`: expectation,
  experience, emotion, csat, ces) over their feedback;
* **outcome** — ``nps``: the mean NPS score (0–10) of their feedback; ``churn``: 1 when they
  have an interaction with outcome ``cancel`` after their first rated feedback, else 0;
  ``repurchase``: the same with outcome ``purchase``. For churn and repurchase only customers
  count (``people.kind``), and only feedback given *before* that interaction: a driver must
  precede what it drives (a complaint about the cancellation itself never explains it).

The filters and time range select the feedback (and, for churn and repurchase, bound the
interactions); the importance of each driver in the person-level linear model of the outcome is
split by Johnson's relative weights and by the exact LMG/Shapley decomposition of R²
(:mod:`corridor.analytics.estimators.importance`), each with a seeded percentile-bootstrap interval
over persons. A person who never rated a touch point has no value there: it is filled with the
driver's mean, so it carries no information (see :mod:`~corridor.analytics.estimators.importance`).
For a 0/1 outcome the model is the linear probability model, whose R² is the share of the
outcome's variance the drivers explain. The persons are taken in order of their id before
resampling, so a seed gives the same intervals whatever order the engine returns rows in.

The importance × performance table (Martilla & James 1977) puts each driver in a quadrant,
with the medians of importance (relative weight) and performance (mean value) as cut points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from corridor.analytics.core import dimensions as dims
from corridor.analytics.core.dimensions import Filters, Query, Source, TimeLike
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.persons import canonical, persons
from corridor.analytics.core.registry import DIMENSION_NAMES, Analysis, Param, by_param, register
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.core.result_columns import described
from corridor.analytics.core.scoping import ScopeRule
from corridor.analytics.estimators import importance as imp
from corridor.analytics.estimators import stats

if TYPE_CHECKING:
    from corridor.auth.scope import Scope

OUTCOMES: dict[str, str] = {
    "nps": "mean NPS score (0–10) of the person's feedback",
    "churn": "an interaction with outcome 'cancel' after the first rated feedback (0/1)",
    "repurchase": "an interaction with outcome 'purchase' after the first rated feedback (0/1)",
}
EVENT_OUTCOMES: dict[str, tuple[str, ...]] = {"churn": ("cancel",), "repurchase": ("purchase",)}
DRIVER_KINDS = ("touchpoint", "facet")
FACETS: tuple[str, ...] = ("expectation", "experience", "emotion", "csat", "ces")
QUADRANTS = {
    (True, False): "concentrate here",
    (True, True): "keep up the good work",
    (False, False): "low priority",
    (False, True): "possible overkill",
}

METHOD = (
    "person-level linear model of the outcome on the drivers (mean gap per touch point, or mean "
    "facet); importance by Johnson's (2000) relative weights and the exact LMG/Shapley "
    "decomposition of R² (Lindeman, Merenda & Gold 1980; Grömping 2006) over all subsets; "
    "a person without a value gets the driver's mean; percentile intervals from {b} seeded "
    "bootstrap resamples of persons; performance = mean with a Student-t interval; quadrants "
    "of importance × performance cut at their medians (Martilla & James 1977)"
)


@dataclass(frozen=True, eq=False)
class DriverResult(AnalyticsResult):
    """Driver importance, one row per (group and) driver, ranked by relative weight.

    ``frame`` columns: the ``by`` dimensions; ``driver``; ``rank`` (1 = most important by
    relative weight); ``n`` (persons with a value for this driver) and ``coverage`` (their share
    of ``n_persons``); ``n_persons`` (persons in the model); ``outcome_mean`` (mean outcome: NPS,
    or churn/repurchase rate); ``r`` (correlation with the outcome: its sign is the direction);
    ``weight`` (raw relative weight; they sum to ``r2``) with ``weight_low``/``weight_high``;
    ``share`` (weight / r2) with ``share_low``/``share_high``; ``lmg`` with
    ``lmg_low``/``lmg_high`` and ``lmg_share``; ``r2`` with ``r2_low``/``r2_high``;
    ``performance`` (mean driver value: mean gap or facet) with ``performance_low``/
    ``performance_high``; ``quadrant``.

    ``notes`` says which drivers or groups were left out and why.
    """

    notes: tuple[str, ...] = field(default=())

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "notes": list(self.notes)}


def _check(outcome: str, drivers: str, bootstrap: int, min_n: int) -> tuple[str, str, int, int]:
    if outcome not in OUTCOMES:
        raise AnalyticsQueryError(f"unknown outcome {outcome!r}; allowed: {', '.join(OUTCOMES)}")
    if drivers not in DRIVER_KINDS:
        raise AnalyticsQueryError(
            f"unknown drivers {drivers!r}; allowed: {', '.join(DRIVER_KINDS)}"
        )
    if not isinstance(bootstrap, int) or not 20 <= bootstrap <= 10_000:
        raise AnalyticsQueryError(
            f"bootstrap must be a whole number of resamples from 20 to 10000, got {bootstrap!r}"
        )
    if not isinstance(min_n, int) or min_n < 5:
        raise AnalyticsQueryError(f"min_n must be a whole number of at least 5, got {min_n!r}")
    return outcome, drivers, bootstrap, min_n


def _check_selection(selected: Sequence[str] | None, kind: str) -> tuple[str, ...] | None:
    if selected is None:
        return None
    names = tuple(dict.fromkeys(s.strip() for s in selected if s and s.strip()))
    if not names:
        return None
    if len(names) > imp.MAX_DRIVERS:
        raise AnalyticsQueryError(
            f"{len(names)} drivers given; the exact decomposition takes at most "
            f"{imp.MAX_DRIVERS}: name fewer"
        )
    if kind == "facet":
        bad = [n for n in names if n not in FACETS]
        if bad:
            raise AnalyticsQueryError(
                f"unknown facet(s) {', '.join(bad)}; allowed: {', '.join(FACETS)}"
            )
    return names


def driver_values(
    source: Source, query: Query, kind: str, outcome: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per unit (person and ``by`` groups) and driver: ``n``, ``total`` and ``total_sq`` of
    the driver values; and per unit the outcome ``y``. Computed in the engine."""
    wanted = tuple(dict.fromkeys(("touchpoint", *query.dimensions)))
    facts = dims.apply_query(dims.feedback_facts(source, wanted), query)
    fb = dims.get_table(source, "feedback")
    fb = fb.select(_fb_id=fb.feedback_id, person_id=fb.person_id, emotion=fb.emotion)
    rows = facts.inner_join(fb, facts.feedback_id == fb._fb_id)
    rows = canonical(rows, source)
    keys = ["person", *query.by]
    if outcome in EVENT_OUTCOMES:
        kinds = persons(source)
        customers = kinds.filter(kinds.kind == "customer").select(_c=kinds.person).distinct()
        rows = rows.inner_join(customers, rows.person == customers._c).drop("_c")
    long = _long(rows, kind)
    if outcome == "nps":
        rated = rows.filter(rows.nps.notnull())
        y = rated.group_by(keys).aggregate(y=rated.nps.cast("float64").mean())
        long = long.inner_join(y.select(*keys), keys)
    else:
        event_at = _events(source, query, long, EVENT_OUTCOMES[outcome])
        long = long.left_join(event_at, long.person == event_at._e_person)
        long = long.filter(long._e_at.isnull() | (long.occurred_at < long._e_at))
        long = long.drop("_e_person", "_e_at")
        units = long.select(*keys).distinct()
        units = units.left_join(event_at, units.person == event_at._e_person)
        y = units.select(*keys, y=ibis.ifelse(units._e_at.notnull(), 1, 0).cast("float64"))
    v = long.value
    agg = long.group_by([*keys, "driver"]).aggregate(
        n=long.count(), total=v.sum(), total_sq=(v * v).sum()
    )
    return agg.to_pyarrow().to_pandas(), y.to_pyarrow().to_pandas()


def _long(rows: ir.Table, kind: str) -> ir.Table:
    """Driver values in long form: unit keys, ``occurred_at``, ``driver``, ``value``."""
    keep = [c for c in rows.columns if c not in (*FACETS, "nps", "feedback_id", "_fb_id")]
    if kind == "touchpoint":
        t = rows.filter(
            rows.touchpoint.notnull(), rows.expectation.notnull(), rows.experience.notnull()
        )
        return t.select(
            *keep, driver=t.touchpoint, value=(t.experience - t.expectation).cast("float64")
        )
    parts = [
        rows.filter(rows[f].notnull()).select(
            *keep, driver=ibis.literal(f), value=rows[f].cast("float64")
        )
        for f in FACETS
    ]
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p)
    return out


def _events(source: Source, query: Query, long: ir.Table, outcomes: tuple[str, ...]) -> ir.Table:
    """Per person, the first interaction with one of ``outcomes`` after their first rated
    feedback (within the query's time range): ``_e_person``, ``_e_at``."""
    first = long.group_by("person").aggregate(_first=long.occurred_at.min())
    ix = dims.get_table(source, "interactions")
    ix = ix.filter(ix.outcome.isin(list(outcomes)))
    if query.since is not None:
        ix = ix.filter(ix.occurred_at >= ibis.literal(query.since))
    if query.until is not None:
        ix = ix.filter(ix.occurred_at < ibis.literal(query.until))
    ix = canonical(ix.select("person_id", "occurred_at"), source)
    ev = ix.inner_join(first, ix.person == first.person)
    ev = ev.filter(ev.occurred_at > ev._first)
    return ev.group_by(_e_person=ev.person).aggregate(_e_at=ev.occurred_at.min())


def driver_table(
    source: Source,
    outcome: str = "nps",
    drivers: str = "touchpoint",
    select: Sequence[str] | None = None,
    by: Sequence[str] | str | None = None,
    filters: Filters | None = None,
    since: TimeLike = None,
    until: TimeLike = None,
    confidence: float = 0.95,
    bootstrap: int = 200,
    seed: int = 0,
    min_n: int = 30,
    period: str | None = None,
) -> DriverResult:
    """Key-driver analysis (see the module docstring).

    ``select`` names the drivers (touch point keys or facets, at most 15); by default the 15
    touch points rated by the most persons (at least ``min_n``) are used. ``bootstrap``
    resamples (seeded by ``seed``) give the intervals. Groups (``by``) with fewer than
    ``min_n`` persons, and drivers with fewer than ``min_n`` persons in a group, are left out
    and named in ``notes``.
    """
    if period is not None:
        raise AnalyticsQueryError(
            "key drivers have no period: narrow the time range with since/until instead"
        )
    outcome, drivers, bootstrap, min_n = _check(outcome, drivers, bootstrap, min_n)
    conf = dims.check_confidence(confidence)
    seed = dims.check_seed(seed)
    chosen = _check_selection(select, drivers)
    query = Query.build(by, None, filters, since, until)
    if drivers == "touchpoint" and "touchpoint" in query.by:
        raise AnalyticsQueryError(
            "touch-point drivers cannot be grouped by touchpoint (one driver per group); "
            "group by stage, segment, region … or use drivers=facet"
        )
    agg, y = driver_values(source, query, drivers, outcome)
    notes: list[str] = []
    if chosen is not None:
        missing_names = [c for c in chosen if c not in set(agg["driver"])]
        if missing_names:
            notes.append(f"no values for {', '.join(missing_names)} in the selection")
        agg = agg[agg["driver"].isin(chosen)]
    else:
        reach = agg.groupby("driver")["person"].nunique().sort_values(ascending=False)
        reach = reach[reach >= min_n]
        kept = list(reach.index[: imp.MAX_DRIVERS])
        dropped = [d for d in reach.index if d not in kept]
        if dropped:
            notes.append(
                f"the {imp.MAX_DRIVERS} drivers rated by the most persons were used; left "
                f"out: {', '.join(map(str, dropped))} (name drivers to choose others)"
            )
        agg = agg[agg["driver"].isin(kept)]
    frames = []
    groups = _groups(agg, y, list(query.by))
    for key, g_agg, g_y in groups:
        frame = _analyse(g_agg, g_y, conf, bootstrap, seed, min_n, notes, key)
        if frame is None:
            continue
        for name, value in zip(query.by, key, strict=True):
            frame.insert(list(query.by).index(name), name, value)
        frames.append(frame)
    columns = [*query.by, *_COLUMNS]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    describe = query.describe() | {
        "outcome": outcome,
        "drivers": drivers,
        "select": list(chosen) if chosen else None,
        "bootstrap": bootstrap,
        "seed": seed,
        "min_n": min_n,
    }
    n = (
        int(frame.groupby(list(query.by), dropna=False)["n_persons"].first().sum())
        if (len(frame) and query.by)
        else (int(frame["n_persons"].iloc[0]) if len(frame) else 0)
    )
    return DriverResult(
        frame=frame[columns],
        n=n,
        confidence=conf,
        method=METHOD.format(b=bootstrap),
        query=describe,
        notes=tuple(notes),
    )


_COLUMNS = (
    "driver",
    "rank",
    "n",
    "coverage",
    "n_persons",
    "outcome_mean",
    "r",
    "weight",
    "weight_low",
    "weight_high",
    "share",
    "share_low",
    "share_high",
    "lmg",
    "lmg_low",
    "lmg_high",
    "lmg_share",
    "r2",
    "r2_low",
    "r2_high",
    "performance",
    "performance_low",
    "performance_high",
    "quadrant",
)


def _groups(
    agg: pd.DataFrame, y: pd.DataFrame, by: list[str]
) -> list[tuple[tuple[Any, ...], pd.DataFrame, pd.DataFrame]]:
    if not by:
        return [((), agg, y)]
    out = []
    for key, g in agg.groupby(by, dropna=False, sort=True):
        key_t = key if isinstance(key, tuple) else (key,)
        mask = np.ones(len(y), dtype=bool)
        for name, value in zip(by, key_t, strict=True):
            col = y[name]
            missing = value is None or (isinstance(value, float) and np.isnan(value))
            mask &= col.isna().to_numpy() if missing else (col == value).to_numpy()
        out.append((key_t, g, y[mask]))
    return out


def _analyse(
    agg: pd.DataFrame,
    y: pd.DataFrame,
    conf: float,
    replicates: int,
    seed: int,
    min_n: int,
    notes: list[str],
    key: tuple[Any, ...],
) -> pd.DataFrame | None:
    where = f" in group {', '.join(map(str, key))}" if key else ""
    agg = agg.assign(mean=agg["total"] / agg["n"])
    wide = agg.pivot_table(index="person", columns="driver", values="mean", aggfunc="first")
    # persons in order of their id, not in the order the engine returned them (PySpark's is not
    # DuckDB's): the bootstrap draws rows by position, so one seed gives one set of intervals
    yy = y.drop_duplicates("person").set_index("person")["y"].astype(float).sort_index()
    wide = wide.reindex(yy.index.intersection(wide.index))
    reach = wide.notna().sum()
    low = [str(d) for d in reach.index if reach[d] < min_n]
    if low:
        notes.append(f"fewer than {min_n} persons{where}: {', '.join(low)} left out")
    wide = wide.loc[:, reach >= min_n]
    wide = wide.loc[:, wide.std(skipna=True) > 0]
    wide = wide[wide.notna().any(axis=1)]
    yv = yy.reindex(wide.index).to_numpy(dtype=float)
    if wide.shape[1] == 0 or len(wide) < max(min_n, wide.shape[1] + 2) or np.std(yv) == 0:
        notes.append(f"too few persons or no variation in the outcome{where}: no model")
        return None
    names = [str(c) for c in wide.columns]
    z = np.column_stack([wide.to_numpy(dtype=float), yv])
    point = imp.importance(imp.correlation(imp.moments(z)))
    boot = imp.bootstrap(z, replicates, seed)
    w_lo, w_hi = imp.percentile_interval(boot.weights, conf)
    l_lo, l_hi = imp.percentile_interval(boot.lmg, conf)
    with np.errstate(all="ignore"):
        shares = boot.weights / boot.r2[:, None]
    s_lo, s_hi = imp.percentile_interval(shares, conf)
    r2_lo, r2_hi = imp.percentile_interval(boot.r2[:, None], conf)
    x = wide.to_numpy(dtype=float)
    n = (~np.isnan(x)).sum(axis=0)
    perf = stats.mean_interval(n, np.nansum(x, axis=0), np.nansum(x * x, axis=0), conf)
    out = pd.DataFrame(
        {
            "driver": names,
            "n": n.astype("int64"),
            "coverage": n / len(wide),
            "n_persons": len(wide),
            "outcome_mean": float(np.mean(yv)),
            "r": point.r,
            "weight": point.weights,
            "weight_low": w_lo,
            "weight_high": w_hi,
            "share": point.weights / point.r2 if point.r2 > 0 else np.nan,
            "share_low": s_lo,
            "share_high": s_hi,
            "lmg": point.lmg,
            "lmg_low": l_lo,
            "lmg_high": l_hi,
            "lmg_share": point.lmg / point.r2 if point.r2 > 0 else np.nan,
            "r2": point.r2,
            "r2_low": float(r2_lo[0]),
            "r2_high": float(r2_hi[0]),
            "performance": perf.mean,
            "performance_low": perf.low,
            "performance_high": perf.high,
        }
    )
    out["quadrant"] = quadrants(out["weight"], out["performance"])
    out = out.sort_values("weight", ascending=False, kind="mergesort").reset_index(drop=True)
    out.insert(1, "rank", np.arange(1, len(out) + 1))
    return out


def quadrants(importance: pd.Series, performance: pd.Series) -> list[str]:
    """Importance × performance quadrant of each driver, cut at the medians (a value on the
    median counts as high)."""
    hi_imp = importance >= importance.median()
    hi_perf = performance >= performance.median()
    return [QUADRANTS[(bool(i), bool(p))] for i, p in zip(hi_imp, hi_perf, strict=True)]


def _selection_in_scope(scope: Scope, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A ``select`` naming a touch point outside the scope is refused, as a filter naming it
    would be (facets are not touch points)."""
    if kwargs.get("select") and kwargs.get("drivers") != "facet":
        hidden = [t for t in kwargs["select"] if not scope.sees_touchpoint(t)]
        if hidden:
            scope.restrict({"touchpoint": hidden})  # refuses with the scope's 403 message
    return kwargs


DRIVERS = register(
    Analysis(
        "drivers",
        "Key drivers",
        driver_table,
        path="/drivers",
        command=("drivers",),
        tag="drivers and journeys",
        description="Which touch-point gaps (or facets) drive an outcome: relative weights and "
        "LMG shares of R² with bootstrap intervals, and the importance × performance quadrant "
        "of each driver; drivers or groups left out, and why, in `notes`. Filter by any "
        "dimension (`region=north`; an empty value selects records without one).",
        by=by_param(),
        filters=DIMENSION_NAMES,
        params=(
            Param(
                "outcome", "str", "nps", "what the drivers explain: "
                + "; ".join(f"{k} = {v}" for k, v in OUTCOMES.items()),
                tuple(OUTCOMES),
            ),
            Param(
                "drivers", "str", "touchpoint",
                "the drivers: each touch point's mean gap, or each facet's mean",
                DRIVER_KINDS,
            ),
            Param(
                "select", "list", None,
                f"the drivers to use, at most {imp.MAX_DRIVERS}: touch point keys, or facets "
                f"({', '.join(FACETS)}) with drivers=facet; default: the touch points rated by "
                "the most persons",
            ),
            Param("bootstrap", "int", 200, "bootstrap resamples of persons", ge=20, le=10_000),
            Param("seed", "int", 0, "seed of the bootstrap", ge=0),
            Param(
                "min_n", "int", 30, "persons a driver (and a group) needs to be analysed", ge=5
            ),
        ),
        columns=described(
            "driver:str touch point key or facet",
            "rank:int 1 = most important by relative weight",
            "n:int persons with a value for this driver",
            "coverage their share of n_persons",
            "n_persons:int persons in the model",
            "outcome_mean mean outcome: NPS, or churn/repurchase rate",
            "r correlation with the outcome (its sign is the direction)",
            "weight± raw relative weight (they sum to r2)",
            "share± relative weight / r2",
            "lmg± LMG (Shapley) share of R², raw",
            "lmg_share lmg / r2",
            "r2± R² of the model",
            "performance± mean driver value: mean gap or facet",
            "quadrant:str importance × performance quadrant",
        ),
        extras=("notes",),
        brief=(
            "driver", "rank", "n", "r", "share", "share_low", "share_high", "lmg_share",
            "performance", "quadrant",
        ),
        scope=ScopeRule(
            prepare=_selection_in_scope,
            note="filters forced to the scope; rows of touch points outside it dropped; a "
            "select naming a touch point outside it refused",
        ),
    )
)  # fmt: skip

__all__ = [
    "DRIVER_KINDS",
    "FACETS",
    "OUTCOMES",
    "QUADRANTS",
    "DriverResult",
    "driver_table",
    "driver_values",
    "quadrants",
]
