"""Customer journeys: the paths people take through the corridor, where they drop off, how long
each step takes, and how much each touch point contributes to conversion.

A journey is one (canonical) person's interactions in time order (ties by interaction id),
after the filters and time range; its elements are touch points (``level="touchpoint"``) or
corridor stages (``level="stage"``), with **consecutive repeats merged** (three invoices in a
row are one step). Views (``view``):

* ``paths`` — the most common journeys, cut after ``max_length`` steps (a cut path ends in
  ``…``): persons and share (Wilson interval), and how many of them converted (Wilson).
* ``transitions`` — the directly-follows graph: how often step ``b`` immediately follows ``a``,
  the share of ``a``'s next steps that go to ``b`` (Wilson), and the time from the last
  interaction of ``a`` to the first of ``b`` (median with a distribution-free interval,
  quartiles, n).
* ``stages`` — drop-off and time per stage of the corridor map, in map order: of the persons
  who reached stage k (any interaction there), the share who never reached stage k+1 after it
  (Wilson), and the time from first reaching k to first reaching k+1 (median with interval,
  quartiles, 90th percentile, n).
* ``attribution`` — the Markov-chain removal effect of each step on conversion (Anderl et al.
  2016; :mod:`corridor.analytics.estimators.markov`), with attributed conversions, first- and
  last-touch counts for comparison, and seeded bootstrap percentile intervals over persons. A person
  *converts* at their first interaction whose outcome is one of ``conversion`` (default
  ``purchase``), looked up among all their interactions in the time range whatever the
  filters; their path is what they did before it. Everyone else's path is all of it.

The median's interval is the distribution-free one from order statistics: the ranks
``j, k`` are the binomial(n, ½) quantiles around ``n/2`` (Conover 1999, *Practical
Nonparametric Statistics*, 3rd ed., §3.2), so it holds for any distribution of times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from corridor.analytics.core import dimensions as dims
from corridor.analytics.core.dimensions import DIMENSIONS, Filters, Query, Source, TimeLike
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.core.persons import canonical
from corridor.analytics.core.registry import Analysis, Param, register
from corridor.analytics.core.result import AnalyticsResult
from corridor.analytics.core.result_columns import columns
from corridor.analytics.estimators import markov, stats

VIEWS = ("paths", "transitions", "stages", "attribution")
LEVELS = ("touchpoint", "stage")
#: dimensions an interaction has (feedback ``source`` has no meaning here)
JOURNEY_DIMENSIONS = tuple(d for d in DIMENSIONS if d != "source")
HOUR = 3600.0


@dataclass(frozen=True, eq=False)
class JourneyResult(AnalyticsResult):
    """One journey view; ``summary`` holds the totals (persons, conversions, conversion rate
    with its Wilson interval, and for attribution the model's conversion probability)."""

    totals: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "summary": self.totals}


def interaction_facts(source: Source, dimensions: Sequence[str] = ()) -> ir.Table:
    """One row per interaction: ``interaction_id``, ``person`` (canonical), ``occurred_at``,
    ``outcome``, ``touchpoint``, ``stage`` and the requested dimensions."""
    bad = [d for d in dimensions if d not in JOURNEY_DIMENSIONS]
    if bad:
        raise AnalyticsQueryError(
            f"journeys cannot be filtered by {', '.join(bad)}; allowed: "
            f"{', '.join(JOURNEY_DIMENSIONS)}"
        )
    i = dims.get_table(source, "interactions")
    tp = dims.get_table(source, "touchpoints")
    tp = tp.select(_tp_key=tp.key, stage=tp.stage, department=tp.department)
    t = i.left_join(tp, i.touchpoint == tp._tp_key)
    with_people = bool({"segment", "region"} & set(dimensions))
    if with_people:
        # join people before naming the columns: the expressions below must refer to the
        # joined table, whose columns keep their base names (partner_id, agent_id)
        pe = dims.get_table(source, "people")
        pe = pe.select(_pe_id=pe.person_id, segment=pe.segment, region=pe.region)
        t = t.left_join(pe, t.person_id == pe._pe_id)
    cols: dict[str, Any] = {
        "interaction_id": t.interaction_id,
        "person_id": t.person_id,
        "occurred_at": t.occurred_at,
        "outcome": t.outcome,
        "touchpoint": t.touchpoint,
        "stage": t.stage,
        "department": t.department,
        "channel": t.channel,
        "partner": t.partner_id,
        "agent": t.agent_id,
    }
    if with_people:
        cols |= {"segment": t.segment, "region": t.region}
    keep = ["interaction_id", "person_id", "occurred_at", "outcome", "touchpoint", "stage"]
    keep += [d for d in dimensions if d not in keep]
    return canonical(t.select(**{k: cols[k] for k in keep}), source)


def _step_starts(source: Source, query: Query, level: str) -> ir.Table:
    """The first interaction of every merged step, from one engine window pass over the
    filtered interactions: a step starts where the person's previous interaction (in time
    order, ties by interaction id) was at another element. ``person``, ``pos`` (the
    interaction's place in the person's journey, increasing with the steps), ``element``,
    ``at`` (seconds), ``prev`` (the element of the step before it, null for the person's
    first step) and ``prev_at`` (the time of the last interaction of the step before)."""
    t = dims.apply_query(interaction_facts(source, query.dimensions), query)
    t = t.select("person", "interaction_id", at=t.occurred_at.epoch_seconds(), element=t[level])
    t = t.filter(t.element.notnull())
    w = ibis.window(group_by=t.person, order_by=[t.at, t.interaction_id])
    t = t.mutate(
        prev=t.element.lag().over(w), prev_at=t.at.lag().over(w), pos=ibis.row_number().over(w)
    )
    t = t.filter(t.prev.isnull() | (t.prev != t.element))
    return t.select("person", "pos", "element", "at", "prev", "prev_at")


def _whole_seconds(values: Any) -> np.ndarray:
    """An Arrow column of epoch seconds as whole seconds (truncated, as an int64 cast does)."""
    return np.trunc(np.asarray(values.to_numpy(zero_copy_only=False), dtype=float))


def _sequence(source: Source, query: Query, level: str) -> pa.Table:
    """Merged journey steps sorted by person and step (Arrow): ``person``, ``element`` and
    ``at`` (whole seconds, the step's first interaction)."""
    tab = _step_starts(source, query, level).select("person", "pos", "element", "at")
    # sorted by Arrow (strings by code point, as Python sorts them; the keys are unique)
    tab = tab.to_pyarrow().sort_by([("person", "ascending"), ("pos", "ascending")])
    at = pa.array(_whole_seconds(tab.column("at")).astype(np.int64))
    return pa.table({"person": tab.column("person"), "element": tab.column("element"), "at": at})


def _converters(source: Source, query: Query, outcomes: Sequence[str]) -> ir.Table:
    """Per person, ``at``: the time (seconds) of their first converting interaction in the
    range, whatever the filters (an engine expression)."""
    t = interaction_facts(source)
    if query.since is not None:
        t = t.filter(t.occurred_at >= ibis.literal(query.since))
    if query.until is not None:
        t = t.filter(t.occurred_at < ibis.literal(query.until))
    t = t.filter(t.outcome.isin(list(outcomes)))
    return t.group_by("person").aggregate(at=t.occurred_at.epoch_seconds().min())


def _conversions(source: Source, query: Query, outcomes: Sequence[str]) -> pd.Series:
    """Per person, the time (seconds) of their first converting interaction in the range."""
    df = _converters(source, query, outcomes).to_pyarrow().to_pandas()
    return df.set_index("person")["at"]


def journey_table(
    source: Source,
    view: str = "paths",
    level: str = "touchpoint",
    filters: Filters | None = None,
    since: TimeLike = None,
    until: TimeLike = None,
    confidence: float = 0.95,
    conversion: Sequence[str] = ("purchase",),
    max_length: int = 8,
    limit: int = 20,
    bootstrap: int = 200,
    seed: int = 0,
    by: Sequence[str] | str | None = None,
    period: str | None = None,
) -> JourneyResult:
    """One journey view (see the module docstring) over the filtered interactions."""
    if view not in VIEWS:
        raise AnalyticsQueryError(f"unknown view {view!r}; allowed: {', '.join(VIEWS)}")
    if level not in LEVELS:
        raise AnalyticsQueryError(f"unknown level {level!r}; allowed: {', '.join(LEVELS)}")
    if by:
        raise AnalyticsQueryError(
            "journeys are not grouped; filter instead (e.g. segment=consumer) and compare"
        )
    if period is not None:
        raise AnalyticsQueryError("journeys have no period; narrow with since/until instead")
    for name, value, lo in (("max_length", max_length, 1), ("limit", limit, 1)):
        if not isinstance(value, int) or value < lo:
            raise AnalyticsQueryError(f"{name} must be a whole number of at least {lo}")
    if not isinstance(bootstrap, int) or not 20 <= bootstrap <= 10_000:
        raise AnalyticsQueryError("bootstrap must be a whole number from 20 to 10000")
    outcomes = tuple(dict.fromkeys(c.strip().lower() for c in conversion if c and c.strip()))
    if not outcomes:
        raise AnalyticsQueryError("conversion needs at least one interaction outcome")
    conf = dims.check_confidence(confidence)
    seed = dims.check_seed(seed)
    query = Query.build(None, None, filters, since, until)
    if view == "paths":
        starts = _step_starts(source, query, level)
        converters = _converters(source, query, outcomes)
        frame, summary = _paths(starts, converters, max_length, limit, conf)
        method = (
            f"journeys of merged consecutive steps, cut after {max_length}; shares and "
            "conversion rates with Wilson score intervals"
        )
    elif view == "transitions":
        frame, summary = _transitions(source, query, level, limit, conf)
        method = (
            "directly-follows counts of merged steps; share of the source step's next steps "
            "with Wilson intervals; median time with a distribution-free order-statistic "
            "interval"
        )
    elif view == "stages":
        frame, summary = _stages(source, query, conf)
        method = (
            "per corridor stage in map order: share of persons reaching it who never reach "
            "the next stage afterwards (Wilson interval); time from first reaching it to first "
            "reaching the next (median with a distribution-free interval, quartiles)"
        )
    else:
        seq = _sequence(source, query, level)
        conv = _conversions(source, query, outcomes)
        frame, summary = _attribution(seq, conv, conf, bootstrap, seed)
        method = (
            "first-order Markov chain over merged steps (start → … → conversion/null); "
            "removal effect of each step and conversions attributed in proportion (Anderl et "
            f"al. 2016); percentile intervals from {bootstrap} seeded bootstrap resamples of "
            "persons"
        )
    summary["conversion"] = list(outcomes)
    return JourneyResult(
        frame=frame,
        n=int(summary.get("persons", 0)),
        confidence=conf,
        method=method,
        query=query.describe() | {"view": view, "level": level, "conversion": list(outcomes)},
        totals=summary,
    )


#: the largest array slice bound every engine takes (PostgreSQL's are 32-bit integers)
_MAX_ARRAY_BOUND = 2**31 - 1


def _paths(
    starts: ir.Table, converters: ir.Table, max_length: int, limit: int, conf: float
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The most common paths, built by the engine: per person the first ``max_length`` steps
    joined (plus `` > …`` when cut) and whether they converted, counted per path; only the
    top ``limit`` paths (and those tied with the last of them) come back, with the totals.
    Paths with as many persons are in the order of their first person (the smallest id)."""
    steps = starts.element.collect(order_by=starts.pos)
    per = starts.group_by("person").aggregate(steps=steps, length=starts.count())
    # (PostgreSQL's array bounds are 32-bit: a longer cut is no cut at all)
    head = per.steps[: min(max_length, _MAX_ARRAY_BOUND)].join(" > ")
    conv = converters.select(_c_person=converters.person)
    per = per.mutate(head=head).left_join(conv, per.person == conv._c_person)
    per = per.select(
        "person",
        path=ibis.ifelse(per.length > max_length, per["head"].concat(" > …"), per["head"]),
        converted=ibis.ifelse(per._c_person.notnull(), 1, 0),
    )
    g = per.group_by("path").aggregate(
        persons=per.count(), conversions=per.converted.sum(), first=per.person.min()
    )
    whole = ibis.window()
    g = g.mutate(
        total=g.persons.sum().over(whole),
        total_conversions=g.conversions.sum().over(whole),
        rank=ibis.rank().over(ibis.window(order_by=ibis.desc(g.persons))),
    )
    top = g.filter(g["rank"] < limit).to_pyarrow().to_pandas()
    total = int(top["total"].iloc[0]) if len(top) else 0
    converted = int(top["total_conversions"].iloc[0]) if len(top) else 0
    top = top.astype({"persons": "int64", "conversions": "int64"})
    top = top.sort_values(["first"], kind="mergesort")
    top = top.sort_values(["persons"], ascending=False, kind="mergesort").head(limit)
    share = stats.proportion(top["persons"].to_numpy(), total, conf)
    rate = stats.proportion(top["conversions"].to_numpy(), top["persons"].to_numpy(), conf)
    names = [str(p) for p in top["path"]]
    frame = pd.DataFrame(
        {
            "path": pd.Index(names, dtype=object),
            "steps": [p.count(" > ") + 1 - p.endswith("…") for p in names],
            "persons": top["persons"].to_numpy(),
            "share": share.share,
            "share_low": share.low,
            "share_high": share.high,
            "conversions": top["conversions"].to_numpy(),
            "conversion_rate": rate.share,
            "conversion_rate_low": rate.low,
            "conversion_rate_high": rate.high,
        }
    )
    return frame, _summary(total, converted, conf)


def _summary(persons: int, conversions: int, conf: float) -> dict[str, Any]:
    rate = stats.proportion(conversions, persons, conf)
    return {
        "persons": persons,
        "conversions": conversions,
        "conversion_rate": float(rate.share) if persons else None,
        "conversion_rate_low": float(rate.low) if persons else None,
        "conversion_rate_high": float(rate.high) if persons else None,
    }


def _durations(hours: pd.Series, conf: float) -> dict[str, float]:
    x = hours.to_numpy(dtype=float)
    med, lo, hi = stats.median_interval(x, conf)
    q = np.quantile(x, [0.25, 0.75, 0.9]) if len(x) else [np.nan] * 3
    return {
        "median_hours": med,
        "median_hours_low": lo,
        "median_hours_high": hi,
        "q25_hours": float(q[0]),
        "q75_hours": float(q[1]),
        "q90_hours": float(q[2]),
    }


def _codes(values: Any, names: list[Any]) -> np.ndarray:
    """Positions in ``names`` of an Arrow string array's values (all present in it)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    enc = values.dictionary_encode()
    where = pd.Index(names).get_indexer(enc.dictionary.to_pylist())
    return np.asarray(where, dtype=np.int64)[enc.indices.to_numpy(zero_copy_only=False)]


def _transitions(
    source: Source, query: Query, level: str, limit: int, conf: float
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Directly-follows counts of merged steps: a step's first interaction whose previous
    interaction (the person's, in time order) was at another element is one transition, and
    the time between those two interactions is the time from the last of ``a`` to the first
    of ``b``. Counted with numpy over the step starts (Arrow, no Python objects per row)."""
    tab = _step_starts(source, query, level).select("prev", "element", "at", "prev_at")
    tab = tab.to_pyarrow()
    first = tab.column("prev").is_null().to_numpy(zero_copy_only=False)
    pairs = tab.filter(pc.invert(tab.column("prev").is_null()))
    names = sorted(
        set(pairs.column("prev").unique().to_pylist())
        | set(pairs.column("element").unique().to_pylist())
    )
    k = len(names)
    src = _codes(pairs.column("prev"), names)
    dst = _codes(pairs.column("element"), names)
    # whole seconds, as the merged steps' times are
    hours_all = (
        _whole_seconds(pairs.column("at")) - _whole_seconds(pairs.column("prev_at"))
    ) / HOUR
    pair = src * k + dst
    counts = np.bincount(pair, minlength=k * k)
    out_total = np.bincount(src, minlength=k)
    seen = np.flatnonzero(counts)  # (from, to) in sorted order, as a grouping sorts them
    top = seen[np.argsort(-counts[seen], kind="stable")][:limit]
    order = np.argsort(pair, kind="stable")
    bounds = np.searchsorted(pair[order], np.stack([top, top + 1]))
    rows = []
    for key, lo, hi in zip(top, bounds[0], bounds[1], strict=True):
        a, b = divmod(int(key), k)
        count = int(counts[key])
        share = stats.proportion(count, out_total[a], conf)
        hours = pd.Series(hours_all[order[lo:hi]])
        rows.append(
            {
                "from": names[a],
                "to": names[b],
                "count": count,
                "share_of_from": float(share.share),
                "share_of_from_low": float(share.low),
                "share_of_from_high": float(share.high),
                "n": len(hours),
                **_durations(hours, conf),
            }
        )
    frame = pd.DataFrame(rows)
    return frame, {"persons": int(first.sum()), "transitions": len(pair)}


def _stages(source: Source, query: Query, conf: float) -> tuple[pd.DataFrame, dict[str, Any]]:
    st = dims.get_table(source, "stages").to_pyarrow().to_pandas().sort_values("position")
    order = list(st["key"])
    first = _first_reached(source, query, order)
    rows = []
    for a, b in pairwise(order):
        reached = first[a].notna()
        nxt = first[b]
        went = reached & nxt.notna() & (nxt >= first[a])
        n_reached, n_went = int(reached.sum()), int(went.sum())
        drop = stats.proportion(n_reached - n_went, n_reached, conf)
        hours = ((nxt - first[a]) / HOUR)[went]
        rows.append(
            {
                "stage": a,
                "next_stage": b,
                "reached": n_reached,
                "continued": n_went,
                "dropoff": float(drop.share),
                "dropoff_low": float(drop.low),
                "dropoff_high": float(drop.high),
                "n": n_went,
                **_durations(hours, conf),
            }
        )
    return pd.DataFrame(rows), {"persons": len(first)}


def _first_reached(source: Source, query: Query, order: Sequence[str]) -> pd.DataFrame:
    """Per person with any interaction at a stage, the time (whole seconds) they first
    reached each stage of ``order`` (NaN: never), aggregated by the engine: the first step
    at a stage is its first interaction there, so no steps need merging."""
    t = dims.apply_query(interaction_facts(source, query.dimensions), query)
    t = t.filter(t.stage.notnull())
    at = t.occurred_at.epoch_seconds()
    first = {f"_s{i}": at.min(where=t.stage == key) for i, key in enumerate(order)}
    df = t.group_by("person").aggregate(_any=t.count(), **first).to_pyarrow().to_pandas()
    # whole seconds, as the steps are (truncated like their int64 cast)
    out = {key: np.trunc(df[f"_s{i}"].to_numpy(dtype=float)) for i, key in enumerate(order)}
    return pd.DataFrame(out, index=pd.Index(df["person"], name="person"))


_ATTRIBUTION_COLUMNS = (
    "step",
    "persons",
    "conversions_through",
    "removal_effect",
    "removal_effect_low",
    "removal_effect_high",
    "attributed_conversions",
    "attributed_conversions_low",
    "attributed_conversions_high",
    "attribution_share",
    "first_touch",
    "last_touch",
)


def _attribution(
    seq: pa.Table, conv: pd.Series, conf: float, replicates: int, seed: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    if seq.num_rows == 0:
        return pd.DataFrame(columns=list(_ATTRIBUTION_COLUMNS)), _summary(0, 0, conf)
    # the steps are sorted by person: a journey starts where the person changes
    person = seq.column("person").combine_chunks()
    n = len(person)
    starts = np.ones(n, dtype=bool)
    starts[1:] = pc.not_equal(person.slice(1), person.slice(0, n - 1)).to_numpy(
        zero_copy_only=False
    )
    row_journey = np.cumsum(starts) - 1
    persons = pd.Index(person.filter(pa.array(starts)).to_pylist(), dtype=object)
    converted = np.asarray(persons.isin(conv.index), dtype=bool)
    at_conv = conv.reindex(persons).to_numpy(dtype=float)[row_journey]
    at = seq.column("at").to_numpy()
    keep = np.isnan(at_conv) | (at < at_conv)
    # converters whose filtered path is empty still count (start → conversion)
    before = seq.column("element").filter(pa.array(keep))
    names = sorted(set(before.unique().to_pylist()))
    codes = _codes(before, names)
    journey = row_journey[keep]
    k = len(names)
    paths = markov.Paths(codes, journey, converted, k)
    point, boots = markov.markov_attribution(paths, replicates, seed)
    summary = _summary(len(persons), int(converted.sum()), conf)
    summary["model_conversion_probability"] = point.probability
    # persons (and converting persons) through each step: distinct (journey, step) pairs
    pairs = np.unique(journey * max(k, 1) + codes)
    touched = np.bincount(pairs % max(k, 1), minlength=k)[:k]
    through_pairs = pairs[converted[pairs // max(k, 1)]]
    through = np.bincount(through_pairs % max(k, 1), minlength=k)[:k]
    # first and last step of each converting journey with a path (journeys are contiguous)
    first = np.ones(len(journey), dtype=bool)
    first[1:] = journey[1:] != journey[:-1]
    last = np.ones(len(journey), dtype=bool)
    last[:-1] = first[1:]
    first_touch = np.bincount(codes[first][converted[journey[first]]], minlength=k)[:k]
    last_touch = np.bincount(codes[last][converted[journey[last]]], minlength=k)[:k]
    alpha = (1.0 - conf) / 2.0
    re_b = np.array([b.removal_effect for b in boots]).reshape(-1, k)
    at_b = np.array([b.attributed for b in boots]).reshape(-1, k)
    with np.errstate(all="ignore"):
        re_lo, re_hi = np.nanquantile(re_b, [alpha, 1 - alpha], axis=0)
        at_lo, at_hi = np.nanquantile(at_b, [alpha, 1 - alpha], axis=0)
    total = point.attributed.sum()
    frame = pd.DataFrame(
        {
            "step": [str(n) for n in names],
            "persons": touched,
            "conversions_through": through,
            "removal_effect": point.removal_effect,
            "removal_effect_low": re_lo,
            "removal_effect_high": re_hi,
            "attributed_conversions": point.attributed,
            "attributed_conversions_low": at_lo,
            "attributed_conversions_high": at_hi,
            "attribution_share": point.attributed / total if total > 0 else np.nan,
            "first_touch": first_touch,
            "last_touch": last_touch,
        }
    )
    frame = frame.sort_values("removal_effect", ascending=False, kind="mergesort")
    return frame.reset_index(drop=True), summary


JOURNEYS = register(
    Analysis(
        "journeys",
        "Journeys",
        journey_table,
        path="/journeys",
        command=("journeys",),
        tag="drivers and journeys",
        description="Customer journeys over the filtered interactions (consecutive repeats "
        "merged): the top paths with their conversion rates (`view=paths`), the "
        "directly-follows transitions with the time between steps (`transitions`), drop-off "
        "and time between the corridor's stages (`stages`), or Markov removal-effect "
        "attribution of conversions with bootstrap intervals (`attribution`); the totals "
        "(persons, conversions, conversion rate) in `summary`. Not grouped: filter by any "
        "dimension but source instead and compare.",
        filters=JOURNEY_DIMENSIONS,
        params=(
            Param("view", "str", "paths", "what to show", VIEWS),
            Param("level", "str", "touchpoint", "the steps: touch points or stages", LEVELS),
            Param(
                "conversion", "list", ["purchase"],
                "interaction outcomes that count as converting",
            ),
            Param("max_length", "int", 8, "paths are cut after this many steps", ge=1),
            Param("limit", "int", 20, "rows shown (paths, transitions)", ge=1),
            Param(
                "bootstrap", "int", 200, "bootstrap resamples of persons (attribution)",
                ge=20, le=10_000,
            ),
            Param("seed", "int", 0, "seed of the bootstrap", ge=0),
        ),
        # every view's columns (a reply has its view's only)
        columns=columns(
            "path:str steps:int step:str from:str to:str next_stage:str persons:int share "
            "share_low share_high conversions:int conversion_rate conversion_rate_low "
            "conversion_rate_high count:int share_of_from share_of_from_low share_of_from_high "
            "reached:int continued:int dropoff dropoff_low dropoff_high n:int median_hours "
            "median_hours_low median_hours_high q25_hours q75_hours q90_hours "
            "conversions_through:int removal_effect removal_effect_low removal_effect_high "
            "attributed_conversions attributed_conversions_low attributed_conversions_high "
            "attribution_share first_touch:int last_touch:int",
            path="paths: the journey's steps, ' > '-joined (ending in … when cut)",
            steps="paths: its steps",
            step="attribution: the touch point or stage",
            to="transitions: the step that immediately follows",
            next_stage="stages: the stage after it in map order",
            persons="persons on the path (paths) or through the step (attribution)",
            share="paths: share of all persons",
            conversions="paths: persons on the path who converted",
            conversion_rate="paths: share of them who converted",
            count="transitions: how often the next step follows",
            share_of_from="transitions: share of the step's next steps",
            reached="stages: persons who reached the stage",
            continued="stages: of them, those who reached the next stage after it",
            dropoff="stages: share of those who reached it who never reached the next",
            n="durations the times rest on (transitions, stages)",
            median_hours="median time to the next step or stage (hours)",
            q25_hours="first quartile of the time (hours)",
            q75_hours="third quartile of the time (hours)",
            q90_hours="90th percentile of the time (hours)",
            conversions_through="attribution: converting persons whose path passes through it",
            removal_effect="attribution: share of conversions lost without the step",
            attributed_conversions="attribution: conversions attributed to the step",
            attribution_share="attribution: its share of the conversions",
            first_touch="attribution: converting paths starting with the step",
            last_touch="attribution: converting paths ending with the step",
            **{"from": "transitions: the step"},
        ),
        brief=(
            "step", "path", "from", "to", "next_stage", "persons", "share", "conversions",
            "conversion_rate", "count", "share_of_from", "reached", "dropoff", "dropoff_low",
            "dropoff_high", "median_hours", "median_hours_low", "median_hours_high", "q75_hours",
            "n", "removal_effect", "removal_effect_low", "removal_effect_high",
            "attributed_conversions", "attribution_share", "first_touch", "last_touch",
        ),
        extras=("summary",),
    )
)  # fmt: skip

__all__ = [
    "JOURNEY_DIMENSIONS",
    "LEVELS",
    "VIEWS",
    "JourneyResult",
    "interaction_facts",
    "journey_table",
]
