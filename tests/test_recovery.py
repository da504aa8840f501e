"""Recovery of planted truth: the analytics find what the simulator planted, and little else.

One simulated company (60,000 customers, 12 months, seed 7: ~2.3 M interactions, ~290 k
feedback records) is generated, imported into a DuckDB file and read back with the public
analytics API; every assertion is checked against ``truth.json``:

* every planted ripple shows, at each of its touch points and in its region (every region when
  it has none), as a significant (p < 0.05) negative change in mean gap at the calendar month
  the ripple starts (:func:`corridor.analytics.gap_table`, ``by=[touchpoint, region]``,
  ``period="month"``), and the regional ripple's region moves more than any other region;
* the drift detector finds the planted expectation drift at its touch point within one period
  of the planted date, in the planted direction, of the planted size, annotated with the
  planted market event; at most 10 % of the other touch points show a (false) drift — by month
  and by week.

Why 60,000 customers: a regional ripple at a delivery touch point is seen by few surveys, and
the test compares the start month with the month before. The ripple starts around 8 May, so May
carries about −1.4 of its −2 points. With 4,000 customers the north region rates home delivery
~8 times a month (p ≈ 0.09 in May for seed 7); with 30,000, ~80 times, and 1 seed in 13 missed
(seed 9: shipping_notice/north, May −0.08 against a low April, p = 0.84); with 60,000 all of
13 seeds pass (largest p 1e-4), and the drift detector flagged 0–1 of the 33 other touch points.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from corridor.analytics import expectation_drift, gap_table
from corridor.ingest.files import import_dataset
from corridor.ingest.pipeline import Ingestor
from corridor.simulate import simulate
from corridor.store import Store, open_store

CUSTOMERS = 60_000
MONTHS = 12
SEED = 7
REGIONS = ("north", "south", "east", "west", "central")

pytestmark = pytest.mark.slow  # ~30 s: simulate, import 2.6 M records, analyse


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, dict[str, Any]]]:
    root: Path = tmp_path_factory.mktemp("recovery")
    result = simulate(CUSTOMERS, MONTHS, SEED, root / "data", fmt="parquet")
    store = open_store(f"duckdb:///{root / 'corridor.duckdb'}")
    ingestor = Ingestor(store)
    try:
        summaries = import_dataset(ingestor, root / "data")
    finally:
        ingestor.close()
    for kind, summary in summaries.items():
        assert summary.rejected == 0, (kind, summary.as_dict())
        assert summary.accepted == result.counts[kind], kind
    yield store, result.truth
    store.close()


def _month(ts: str) -> pd.Timestamp:
    return pd.Timestamp(ts).tz_convert("UTC").tz_localize(None).to_period("M").start_time


def _period_start(ts: str, period: str) -> pd.Timestamp:
    freq = {"month": "M", "week": "W-SUN"}[period]
    return (
        pd.Timestamp(ts).tz_convert("UTC").tz_localize(None).to_period(freq).start_time
    ).tz_localize("UTC")


def test_planted_ripples_show_as_significant_negative_gap_changes(company):
    store, truth = company
    frame = gap_table(store, by=["touchpoint", "region"], period="month").frame
    frame = frame.assign(month=frame["period"].dt.tz_localize(None))
    assert truth["ripples"], "the simulator plants ripples"
    for ripple in truth["ripples"]:
        start = _month(ripple["start"])
        regions = [ripple["region"]] if ripple["region"] else list(REGIONS)
        for tp in ripple["touchpoints"]:
            at = frame[(frame["touchpoint"] == tp) & (frame["month"] == start)]
            for region in regions:
                row = at[at["region"] == region]
                assert len(row) == 1, (ripple["event_id"], tp, region)
                delta = float(row["delta_mean_gap"].iloc[0])
                p = float(row["p_value_mean_gap"].iloc[0])
                assert delta < 0 and p < 0.05, (ripple["event_id"], tp, region, delta, p)
            if ripple["region"]:  # the planted region moves more than any other
                planted = float(at.loc[at["region"] == ripple["region"], "delta_mean_gap"].iloc[0])
                others = at[at["region"].isin(REGIONS) & (at["region"] != ripple["region"])]
                assert (others["delta_mean_gap"] > planted).all(), (tp, planted, others)


@pytest.mark.parametrize("period", ["month", "week"])
def test_drift_detector_finds_the_planted_drift_and_little_else(company, period):
    store, truth = company
    drift = truth["drift"]
    result = expectation_drift(store, period=period)
    changes = result.frame
    found = changes[changes["touchpoint"] == drift["touchpoint"]]
    planted = _period_start(drift["date"], period)
    step = pd.DateOffset(months=1) if period == "month" else pd.DateOffset(weeks=1)
    assert len(found) >= 1, changes
    first = found.iloc[0]  # the level starts to move here: within one period of the truth
    assert planted - step <= first["date"] <= planted + step, (planted, found)
    assert first["size"] > 0 and first["p_value_adjusted"] < 0.01
    assert drift["market_event_id"] in (first["market_events"] or "").split(";")
    # The drift starts inside a period, which therefore sits between the two levels; with this
    # much data the detector may show it as a short transition (a second step up after it).
    # Together the steps recover the planted shift (+1.5 on the latent scale; rounding to
    # whole points and clipping at 10 shave a little off).
    assert (found["size"] > 0).all()
    assert found["size"].sum() == pytest.approx(drift["size"], abs=0.15)

    touchpoints = set(store.table("touchpoints").key.to_pyarrow().to_pylist())
    others = touchpoints - {drift["touchpoint"]}
    flagged = set(changes["touchpoint"].dropna()) & others
    assert len(flagged) <= 0.10 * len(others), (sorted(flagged), changes)
