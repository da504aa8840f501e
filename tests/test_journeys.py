"""Journeys: Markov removal effects against a hand computation and an independent power
iteration, order-statistic median intervals, and paths, transitions, stages and attribution
on both engines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from scipy import stats as sp
from typer.testing import CliRunner

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.customers.journeys import journey_table
from corridor.analytics.estimators import markov
from corridor.analytics.estimators.stats import median_interval
from corridor.api.app import create_app
from corridor.cli import app as cli_app
from corridor.settings import Settings

# C1 > C2 > C3 → conversion; C1 → null; C2 > C3 → null
HAND = markov.Paths(
    element=np.array([0, 1, 2, 0, 1, 2]),
    journey=np.array([0, 0, 0, 1, 2, 2]),
    converted=np.array([True, False, False]),
    k=3,
)


def test_removal_effects_of_a_hand_computed_example():
    """Anderl et al. (2016, IJRM 33(3), section 3.2) define the removal effect as the relative
    drop in the conversion probability of the fitted first-order chain when a channel's
    incoming transitions are sent to null. By hand for these three paths: start→C1 2/3,
    start→C2 1/3, C1→C2 1/2, C1→null 1/2, C2→C3 1, C3→conv 1/2, C3→null 1/2, so
    P(conv) = 2/3·1/2·1·1/2 + 1/3·1·1/2 = 1/3; without C1 only start→C2 converts: 1/6, so
    RE(C1) = 1/2; without C2 or C3 nothing converts: RE = 1. Attribution of the one
    conversion in proportion: 0.5/2.5, 1/2.5, 1/2.5."""
    point, _ = markov.markov_attribution(HAND)
    assert point.probability == pytest.approx(1 / 3)
    assert point.removal_effect == pytest.approx([0.5, 1.0, 1.0])
    assert point.attributed == pytest.approx([0.2, 0.4, 0.4])


def _power_iteration(counts: np.ndarray, k: int, removed: int | None) -> float:
    """Conversion probability by pushing the start distribution through the chain (absorbing
    states conv and null), independently of the linear solve."""
    s = k + 3
    p = counts.reshape(s, s).astype(float)
    out = p.sum(1, keepdims=True)
    p = np.divide(p, out, out=np.zeros_like(p), where=out > 0)
    p[k + 1] = 0.0
    p[k + 1, k + 1] = 1.0
    p[k + 2] = 0.0
    p[k + 2, k + 2] = 1.0
    if removed is not None:
        col = removed + 1
        p[:, k + 2] += p[:, col]
        p[:, col] = 0.0
    dist = np.zeros(s)
    dist[0] = 1.0
    for _ in range(5000):
        dist = dist @ p
    return float(dist[k + 1])


def test_chain_matches_power_iteration_and_the_observed_rate_on_random_paths():
    """The fitted chain's conversion probability equals the observed conversion share (the
    maximum-likelihood transition counts conserve flow), as ChannelAttribution reports it;
    removal effects equal those from an independent power iteration."""
    rng = np.random.default_rng(4)
    k, n = 5, 400
    lengths = rng.integers(1, 7, n)
    element = rng.integers(0, k, lengths.sum())
    journey = np.repeat(np.arange(n), lengths)
    converted = rng.random(n) < 0.2 + 0.1 * np.bincount(journey, element == 2, n) / lengths
    paths = markov.Paths(element, journey, converted, k)
    point, boots = markov.markov_attribution(paths, replicates=30, seed=1)
    assert point.probability == pytest.approx(converted.mean(), abs=1e-9)
    counts = np.bincount(markov.transition_index(paths)[0], minlength=(k + 3) ** 2)
    base = _power_iteration(counts, k, None)
    assert base == pytest.approx(point.probability, abs=1e-9)
    for j in range(k):
        assert point.removal_effect[j] == pytest.approx(
            1 - _power_iteration(counts, k, j) / base, abs=1e-9
        )
    assert point.attributed.sum() == pytest.approx(converted.sum())
    assert len(boots) == 30


def test_median_interval_from_order_statistics():
    """Conover (1999), Practical Nonparametric Statistics, §3.2: for n = 10 at 95 % the
    interval is (x(2), x(9)) — binom(10, ½) puts 0.0107 below 2 and above 9 each."""
    x = np.arange(1.0, 11.0)[::-1]
    med, lo, hi = median_interval(x, 0.95)
    assert (med, lo, hi) == (5.5, 2.0, 9.0)
    cover = sp.binom.cdf(8, 10, 0.5) - sp.binom.cdf(1, 10, 0.5)
    assert cover >= 0.95
    assert np.isnan(median_interval(np.array([1.0, 2.0]), 0.95)[1])


# -- on the engines ------------------------------------------------------------------------------

# person: (touch points in time order, outcome of each)
JOURNEYS = {
    "a": ["ad_click", "ad_click", "checkout*", "home_delivery"],
    "b": ["ad_click", "checkout"],
    "c": ["ad_click", "home_delivery", "checkout*"],
    "d": ["support_call"],
    "e": ["checkout*", "home_delivery", "support_call"],
}


@pytest.fixture
def loaded(ingestor, store):
    rows = []
    for person, steps in JOURNEYS.items():
        for i, step in enumerate(steps):
            tp = step.rstrip("*")
            rows.append(
                {
                    "interaction_id": f"{person}{i}",
                    "person_id": person,
                    "occurred_at": f"2025-01-{1 + 2 * i:02d}T12:00:00Z",
                    "touchpoint": tp,
                    "channel": {"support_call": "voice", "home_delivery": "partner"}.get(tp, "web"),
                    "outcome": "purchase" if step.endswith("*") else None,
                }
            )
    report = ingestor.ingest("interactions", pa.Table.from_pylist(rows))
    assert report.rejected == 0, report
    return store


def test_paths_and_transitions(loaded):
    paths = journey_table(loaded, view="paths").frame.set_index("path")
    assert paths.loc["ad_click > checkout > home_delivery", "persons"] == 1  # repeats merged
    assert paths["persons"].sum() == 5
    assert paths.loc["ad_click > checkout > home_delivery", "conversions"] == 1
    assert paths.loc["ad_click > checkout", "conversion_rate"] == 0.0
    short = journey_table(loaded, view="paths", max_length=1).frame.set_index("path")
    assert short.loc["ad_click > …", "persons"] == 3
    lo, hi = short.loc["ad_click > …", ["share_low", "share_high"]]
    assert (lo, hi) == pytest.approx(
        __import__("statsmodels.stats.proportion", fromlist=["x"]).proportion_confint(
            3, 5, 0.05, "wilson"
        )
    )
    # a cut past any engine's array bounds (PostgreSQL's are 32-bit) is no cut (found by the
    # API fuzz test: max_length=2**31 was a server error on PostgreSQL)
    for huge in (2**31, 2**62):
        whole = journey_table(loaded, view="paths", max_length=huge).frame.set_index("path")
        pd.testing.assert_frame_equal(whole, paths)
    tr = journey_table(loaded, view="transitions").frame.set_index(["from", "to"])
    assert tr.loc[("ad_click", "checkout"), "count"] == 2
    assert tr.loc[("ad_click", "checkout"), "share_of_from"] == pytest.approx(2 / 3)
    # from the last of a merged run: a's second ad click (day 3) to its checkout (day 5)
    assert tr.loc[("ad_click", "checkout"), "median_hours"] == pytest.approx(48.0)
    assert tr.loc[("checkout", "home_delivery"), "count"] == 2


def test_stage_dropoff_and_time(loaded):
    """Stages of the test map: awareness (ad_click), purchase (checkout), delivery
    (home_delivery), support (support_call). Persons reaching purchase: a, b, c, e; of them
    a and e reach delivery after it (c's delivery came before its checkout): drop-off 2/4."""
    f = journey_table(loaded, view="stages").frame.set_index("stage")
    assert f.loc["purchase", "next_stage"] == "delivery"
    assert f.loc["purchase", "reached"] == 4
    assert f.loc["purchase", "continued"] == 2
    assert f.loc["purchase", "dropoff"] == pytest.approx(0.5)
    assert f.loc["purchase", "median_hours"] == pytest.approx(48.0)
    assert f.loc["delivery", "next_stage"] == "use"  # map order, even with no touch point
    assert f.loc["delivery", "reached"] == 3 and f.loc["delivery", "continued"] == 0
    assert f.loc["use", "reached"] == 0 and np.isnan(f.loc["use", "dropoff"])


def test_attribution_on_the_store_matches_the_chain(loaded):
    """Converters' paths stop before the converting interaction: a: ad_click; c: ad_click >
    home_delivery; e: (empty, start → conversion). Non-converters: b: ad_click > checkout;
    d: support_call."""
    res = journey_table(loaded, view="attribution", bootstrap=50)
    names = ["ad_click", "checkout", "home_delivery", "support_call"]
    code = {n: i for i, n in enumerate(names)}
    seqs = [
        ["ad_click"],
        ["ad_click", "checkout"],
        ["ad_click", "home_delivery"],
        [],
        ["support_call"],
    ]
    conv = np.array([True, False, True, True, False])
    element = np.array([code[s] for seq in seqs for s in seq])
    journey = np.repeat(np.arange(5), [len(s) for s in seqs])
    point, _ = markov.markov_attribution(markov.Paths(element, journey, conv, 4))
    f = res.frame.set_index("step")
    for n in names:
        assert f.loc[n, "removal_effect"] == pytest.approx(point.removal_effect[code[n]])
    assert res.totals["conversions"] == 3 and res.n == 5
    assert res.totals["model_conversion_probability"] == pytest.approx(0.6)
    assert f.loc["ad_click", "first_touch"] == 2 and f.loc["home_delivery", "last_touch"] == 1
    filtered = journey_table(loaded, view="attribution", filters={"touchpoint": ["ad_click"]})
    assert filtered.totals["conversions"] == 2  # e has no ad click; conversions still seen


def test_errors_api_and_cli(loaded, store_url):
    with pytest.raises(AnalyticsQueryError, match="allowed: paths, transitions"):
        journey_table(loaded, view="funnel")
    with pytest.raises(AnalyticsQueryError, match="cannot be filtered by source"):
        journey_table(loaded, filters={"source": ["survey"]})
    with TestClient(create_app(Settings(auth="off"), store=loaded)) as c:
        r = c.get("/api/v1/journeys", params={"view": "stages"})
        assert r.status_code == 200, r.text
        assert r.json()["n"] == 5
        assert c.get("/api/v1/journeys", params={"level": "x"}).status_code == 422
    loaded.close()
    r = CliRunner().invoke(
        cli_app,
        ["journeys", "--view", "transitions", "--format", "csv", "--store", store_url],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0].startswith("from,to,count")
    assert len(pd.read_csv(__import__("io").StringIO(r.output))) >= 4


def test_an_empty_store_gives_empty_views(store):
    for view in ("paths", "transitions", "stages", "attribution"):
        res = journey_table(store, view=view, bootstrap=20)
        assert res.frame.empty and res.n == 0, view


def test_segment_and_region_filters_join_people(loaded, ingestor):
    """Regression (issue 11.1): a segment or region filter joined people after the column
    expressions were taken, so every such filter failed (IbisTypeError, a 500 in the API)."""
    people = [
        {
            "person_id": p,
            "kind": "customer",
            "segment": "consumer" if p in "abc" else "business",
            "region": "north",
        }
        for p in JOURNEYS
    ]
    assert ingestor.ingest("people", pa.Table.from_pylist(people)).rejected == 0
    for view in ("paths", "transitions", "stages", "attribution"):
        res = journey_table(loaded, view=view, filters={"segment": ["consumer"]}, bootstrap=20)
        assert res.n == 3, view
        assert journey_table(loaded, view=view, filters={"region": ["north"]}, bootstrap=20).n == 5
    with TestClient(create_app(Settings(auth="off"), store=loaded)) as c:
        r = c.get("/api/v1/journeys", params={"view": "stages", "segment": "business"})
        assert r.status_code == 200, r.text
        assert r.json()["n"] == 2
