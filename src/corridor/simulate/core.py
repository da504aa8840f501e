"""``simulate()``: build the company, run it month by month, stream every record kind to disk."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from corridor.domain import contract

from . import params as P
from .arrowutil import DAY
from .corridor_map import write_map
from .events import employee_predictions, make_events
from .feedback import make_feedback
from .interactions import World
from .journeys import ACQUISITION, PROSPECT, Rows, expand, expand_mix
from .lifecycle import NEVER, Customers
from .partners import make_partners
from .people import People, make_people
from .precursors import AtRisk, horizon_cut
from .truth import IdentityTally, build_truth
from .wallet import Wallet
from .writer import FORMATS, Background, TableWriter, write_table

#: the record kinds written, one file each: every kind of the data contract
KINDS: tuple[str, ...] = tuple(contract.KINDS)
CHUNK_ROWS = 500_000  # interactions enriched and written at a time (bounds memory)
Progress = Callable[[str, float], None]


@dataclass
class SimulationResult:
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)  # kind -> path, "map", "truth"
    counts: dict[str, int] = field(default_factory=dict)  # rows per kind
    truth: dict[str, Any] = field(default_factory=dict)  # the parsed truth manifest


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def simulate(
    customers: int,
    months: int,
    seed: int,
    out_dir: Path,
    fmt: str = "parquet",
    start: date = date(2025, 1, 1),
    progress: Progress | None = None,
    precursors: bool = False,
) -> SimulationResult:
    """Generate a believable company with planted effects; see the package docstring.
    ``precursors=True`` plants churn precursors (:mod:`corridor.simulate.precursors`); without
    them the output is exactly that of the simulator before they existed."""
    if customers < 1 or months < 1:
        raise ValueError("customers and months must both be at least 1")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    report: Progress = progress or (lambda stage, done: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # spawn(n) children do not depend on n: the ninth stream (share of wallet) and the tenth
    # (churn precursors) were added last and leave everything the earlier ones draw unchanged
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(10)]
    r_people, r_partners, r_events, r_journeys, r_world, r_life, r_rows, r_fb, r_wallet, r_risk = (
        streams
    )
    bounds = [_epoch(add_months(start, m)) for m in range(months + 1)]
    t_start, t_end = bounds[0], bounds[-1]

    report("setup", 0.0)
    people = make_people(customers, t_start, t_end, months, r_people)
    partners = make_partners(customers, r_partners)
    events = make_events(t_start, t_end, months, r_events)
    world = World(people, partners, events, r_world)
    wallet = Wallet.make(people, r_wallet)
    files = {kind: out_dir / f"{kind}.{FORMATS[fmt]}" for kind in KINDS}
    files["map"] = write_map(out_dir / "corridor.yaml")
    counts = {
        "people": write_table(files["people"], "people", fmt, people.table()),
        "operational_events": write_table(
            files["operational_events"], "operational_events", fmt, events.operational
        ),
        "market_events": write_table(files["market_events"], "market_events", fmt, events.market),
        "employee_predictions": write_table(
            files["employee_predictions"],
            "employee_predictions",
            fmt,
            employee_predictions(t_start, t_end, r_events),
        ),
    }

    pending, life_start = _journeys(people, t_start, r_journeys)
    risk = AtRisk(people.n, r_risk) if precursors else None
    state = Customers(customers, people.n, life_start, people.segment, r_life, risk)
    pending = Rows.concat([pending, state.warm_up(t_start)])
    cut = horizon_cut(months)
    tally = IdentityTally(people.ids)
    report("setup", 1.0)
    n_ix = n_fb = 0
    with (
        TableWriter(files["interactions"], "interactions", fmt) as ix_out,
        TableWriter(files["feedback"], "feedback", fmt) as fb_out,
        Background() as bg,
    ):
        for m in range(months):
            ms, me = bounds[m], bounds[m + 1]
            if risk is not None and m == cut:  # score everyone for the ceiling in truth.json
                starts = np.array(bounds[m:])
                risk.project(state.projected_hazard(starts[:-1]), starts, state.churn_time, t_end)
            rows = state.drop_after_churn(Rows.concat([pending, state.month(ms, me, r_life)]))
            due = rows.time < me
            pending = rows.select(np.flatnonzero(~due))
            now = rows.select(np.flatnonzero(due)).sorted()
            drivers: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
            for lo in range(0, len(now), CHUNK_ROWS):
                batch = world.enrich(
                    now.select(np.arange(lo, min(lo + CHUNK_ROWS, len(now)))), r_rows
                )
                batch.first_id = n_ix
                if risk is not None:
                    risk.observe(batch, state.churn_time)
                table = world.table(batch)
                bg.submit(ix_out, table)
                tally.add(batch, table)
                fb = make_feedback(world, batch, n_fb, t_end, r_fb, wallet)
                bg.submit(fb_out, fb)
                n_ix += len(batch)
                n_fb += fb.num_rows
                drivers.append(Customers.driver_rows(batch))
                report("interactions", (m + min(1.0, (lo + CHUNK_ROWS) / len(now))) / months)
            who, where, gap = zip(*drivers, strict=True) if drivers else ((), (), ())
            state.observe(_cat(who, np.int32), _cat(where, np.int16), _cat(gap, np.float64))
            report("interactions", (m + 1) / months)
    counts["interactions"], counts["feedback"] = n_ix, n_fb
    counts = {kind: counts[kind] for kind in KINDS}

    truth = build_truth(
        seed=seed,
        start=start,
        end=add_months(start, months),
        months=months,
        fmt=fmt,
        counts=counts,
        people=people,
        partners=partners,
        events=events,
        churned=state.churned(t_end),
        identity=tally,
        precursors=risk.truth(state.churn_time) if risk is not None else None,
    )
    files["truth"] = out_dir / "truth.json"
    files["truth"].write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2) + b"\n")
    report("done", 1.0)
    return SimulationResult(out_dir, files, counts, truth)


def _cat(parts: tuple[np.ndarray, ...], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def _journeys(people: People, t_start: int, rng: np.random.Generator) -> tuple[Rows, np.ndarray]:
    """Acquisition journeys of new customers and research journeys of prospects; returns the
    rows (from the window start on) and each customer's post-purchase life start."""
    n_c = people.n_customers
    new = np.flatnonzero(people.t0[:n_c] >= 0)
    mix = np.cumsum(np.array(P.SEGMENT_PATH_MIX), axis=1)[people.segment[new]]
    path = np.minimum((rng.random(len(new))[:, None] >= mix).sum(1), len(ACQUISITION) - 1)
    acq, onboarded = expand_mix(ACQUISITION, path, new, people.t0[new], rng)
    life_start = np.full(n_c, t_start, dtype=np.int64)
    life_start[new] = onboarded + DAY  # use, billing and support follow the whole onboarding
    pros = np.arange(n_c, people.n)
    research, _ = expand(PROSPECT, pros, people.t0[pros], rng)
    deadline = np.full(people.n, NEVER, dtype=np.int64)
    for p, c, _col in people.merges:  # a merged prospect's trail ends when it buys
        deadline[p] = people.t0[c]
    research = research.select(np.flatnonzero(research.time < deadline[research.person]))
    rows = Rows.concat([acq, research])
    return rows.select(np.flatnonzero(rows.time >= t_start)), life_start
