"""Ripple effects: the estimators against hand computation and statsmodels, and the whole path on
both engines against a plain pandas reading of a small data set with one planted ripple.

:func:`attribution_data` (also used by the scorecard, alignment and API tests) is a small
company on the conftest map: 400 customers in four regions, 9,000 interactions over the first
half of 2025, one survey per interaction. Experience = 7 + partner offset + ripple + N(0, 1.3)
(rounded, clipped); planted: logistics ``ops-1`` lowers experience at home_delivery in the north
by 2 points from 1 April to 15 May; ``ops-2`` (marketing, ad_click, everywhere) and ``ops-3``
(service, no touch points named: its department's support_call) have no effect. Partners at
home_delivery: ``fast`` (+1), ``slow`` (−1), ``tiny`` (+0.5, few records).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import statsmodels.api as sm
from statsmodels.stats.multitest import multipletests

from corridor.analytics.attribution.ripple import department_impact, ripple_table
from corridor.analytics.attribution.ripple_events import COMPLAINT_MAX, feedback_cells
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.estimators.ripple_estimators import (
    benjamini_hochberg,
    did,
    its,
    proportion_did,
)
from corridor.ingest.pipeline import Ingestor

START = datetime(2025, 1, 1, tzinfo=UTC)
REGIONS = ("north", "south", "east", "west")
PARTNERS = {"fast": 1.0, "slow": -1.0, "tiny": 0.5}
RIPPLE = (
    "ops-1",
    "home_delivery",
    "north",
    datetime(2025, 4, 1, tzinfo=UTC),
    datetime(2025, 5, 15, tzinfo=UTC),
    -2.0,
)
OPTIMISM = {"marketing": 0.5, "ecommerce": 0.0, "logistics": 1.5, "service": 0.8}
DEPARTMENT = {
    "ad_click": "marketing",
    "checkout": "ecommerce",
    "home_delivery": "logistics",
    "support_call": "service",
}
CHANNELS = {
    "ad_click": ("web", "social"),
    "checkout": ("web", "app"),
    "home_delivery": ("partner", "web"),
    "support_call": ("voice",),
}
CHANNEL_EFFECT = {"web": 0.0, "social": -0.8, "app": 0.6, "partner": 0.0, "voice": 0.0}


def _ts(values: list[datetime]) -> pa.Array:
    return pa.array(values, pa.timestamp("us", tz="UTC"))


def attribution_data(seed: int = 11, n: int = 9000) -> dict[str, pa.Table]:
    rng = np.random.default_rng(seed)
    people = [f"p{i:03d}" for i in range(400)]
    region = {p: REGIONS[i % 4] for i, p in enumerate(people)}
    tps = list(CHANNELS)
    ix: dict[str, list] = {
        k: []
        for k in (
            "interaction_id",
            "person_id",
            "occurred_at",
            "touchpoint",
            "channel",
            "partner_id",
            "agent_id",
            "outcome",
        )
    }
    fb: dict[str, list] = {
        k: []
        for k in (
            "feedback_id",
            "person_id",
            "occurred_at",
            "interaction_id",
            "source",
            "expectation",
            "experience",
            "nps",
        )
    }
    for i in range(n):
        tp = tps[int(rng.integers(0, 4))]
        person = people[int(rng.integers(0, 400))]
        at = START + timedelta(seconds=int(rng.integers(0, 181 * 86400)))
        channel = CHANNELS[tp][int(rng.integers(0, len(CHANNELS[tp])))]
        partner = None
        if channel == "partner":
            partner = ("fast", "slow", "tiny")[int(rng.choice(3, p=[0.5, 0.45, 0.05]))]
        agent = f"a{int(rng.integers(1, 6))}" if tp == "support_call" else None
        exper = 7.0 + CHANNEL_EFFECT[channel] + PARTNERS.get(partner or "", 0.0)
        _, r_tp, r_region, r_start, r_end, r_effect = RIPPLE
        if tp == r_tp and region[person] == r_region and r_start <= at < r_end:
            exper += r_effect
        exper = float(np.clip(round(exper + rng.normal(0, 1.3)), 0, 10))
        expect = float(np.clip(round(7.0 + rng.normal(0, 1.0)), 0, 10))
        ix["interaction_id"].append(f"i{i:05d}")
        ix["person_id"].append(person)
        ix["occurred_at"].append(at)
        ix["touchpoint"].append(tp)
        ix["channel"].append(channel)
        ix["partner_id"].append(partner)
        ix["agent_id"].append(agent)
        ix["outcome"].append("cancel" if tp == "support_call" and rng.random() < 0.03 else None)
        fb["feedback_id"].append(f"f{i:05d}")
        fb["person_id"].append(person)
        fb["occurred_at"].append(at + timedelta(hours=int(rng.integers(1, 48))))
        fb["interaction_id"].append(f"i{i:05d}")
        fb["source"].append("survey")
        fb["expectation"].append(expect)
        fb["experience"].append(exper)
        fb["nps"].append(int(np.clip(round(exper + rng.normal(0, 1.5)), 0, 10)))
    events = pa.table(
        {
            "event_id": ["ops-1", "ops-2", "ops-3"],
            "department": ["logistics", "marketing", "service"],
            "kind": ["carrier_change", "policy_change", "staffing"],
            "started_at": _ts(
                [RIPPLE[3], datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 5, 20, tzinfo=UTC)]
            ),
            "ended_at": _ts(
                [RIPPLE[4], datetime(2025, 3, 20, tzinfo=UTC), datetime(2025, 6, 10, tzinfo=UTC)]
            ),
            "touchpoints": ["home_delivery", "ad_click", None],
            "region": ["north", None, None],
        }
    )
    months = [f"2025-{m:02d}" for m in range(1, 7)]
    preds: dict[str, list] = {
        "prediction_id": [],
        "department": [],
        "touchpoint": [],
        "period": [],
        "predicted_experience": [],
    }
    for tp, dept in DEPARTMENT.items():
        for m in months:
            preds["prediction_id"].append(f"pr-{tp}-{m}")
            preds["department"].append(dept)
            preds["touchpoint"].append(tp)
            preds["period"].append(m)
            preds["predicted_experience"].append(
                round(7.0 + OPTIMISM[dept] + float(rng.normal(0, 0.2)), 1)
            )
    return {
        "people": pa.table(
            {"person_id": people, "kind": ["customer"] * 400, "region": [region[p] for p in people]}
        ),
        "interactions": pa.table({**ix, "occurred_at": _ts(ix["occurred_at"])}),
        "feedback": pa.table({**fb, "occurred_at": _ts(fb["occurred_at"])}),
        "operational_events": events,
        "employee_predictions": pa.table(preds),
    }


def load_attribution(ingestor: Ingestor, data: dict[str, pa.Table]) -> None:
    for kind in (
        "people",
        "interactions",
        "feedback",
        "operational_events",
        "employee_predictions",
    ):
        report = ingestor.ingest(kind, data[kind])
        assert report.rejected == 0, report.as_dict(max_errors=5)


def plain_facts(data: dict[str, pa.Table]) -> pd.DataFrame:
    """Feedback joined in pandas: interaction time, touch point, region, channel, partner, agent."""
    fb = data["feedback"].to_pandas()
    ix = data["interactions"].to_pandas()
    pe = data["people"].to_pandas()[["person_id", "region"]]
    df = fb.merge(
        ix[["interaction_id", "occurred_at", "touchpoint", "channel", "partner_id", "agent_id"]],
        on="interaction_id",
        suffixes=("_fb", ""),
    ).merge(pe, on="person_id", how="left")
    return df.assign(gap=df["experience"] - df["expectation"])


# -- pure estimators ----------------------------------------------------------------------------


def _cells(rows: pd.DataFrame) -> pd.DataFrame:
    g = rows.groupby(["day", "touchpoint", "region", "_t", "_w"], as_index=False).agg(
        n=("y", "size"), s=("y", "sum"), ss=("y", lambda v: float((v**2).sum()))
    )
    return g


def test_did_with_one_unit_a_side_is_the_plain_difference_in_differences():
    """Two units, iid records: the estimate is (ȳT1 − ȳT0) − (ȳC1 − ȳC0) and the independent
    standard error √(Σ s²/n) over the four cells (each cell's own variance, as the pooled one
    is with one unit per group), computed here from the raw rows with numpy."""
    rng = np.random.default_rng(3)
    days = pd.date_range("2025-01-01", periods=60, freq="D", tz="UTC")
    rows = []
    for t in (True, False):
        for d in days:
            w = d >= days[30]
            for _ in range(int(rng.integers(3, 9))):
                y = rng.normal(0.0, 1.5) + (-1.0 if (t and w) else 0.0)
                rows.append(
                    {
                        "day": d,
                        "touchpoint": "a" if t else "b",
                        "region": "x",
                        "_t": t,
                        "_w": w,
                        "y": y,
                    }
                )
    raw = pd.DataFrame(rows)
    res = did(_cells(raw), "n", "s", "ss", 0.95)
    m = raw.groupby(["_t", "_w"])["y"]
    mean, var, cnt = m.mean(), m.var(ddof=1), m.size()
    expected = (mean[(True, True)] - mean[(True, False)]) - (
        mean[(False, True)] - mean[(False, False)]
    )
    se_iid = float(np.sqrt((var / cnt).sum()))
    assert res.effect == pytest.approx(expected, abs=1e-12)
    assert res.se >= se_iid - 1e-12  # the larger of independent and cluster-robust
    assert res.se == pytest.approx(se_iid, rel=0.35)  # no day shocks: the two agree roughly
    assert res.low < -1.0 < res.high and res.p_value < 0.01
    assert (res.n_treated, res.n_control) == (cnt[(True, True)], cnt[(False, True)])


def test_did_standard_error_grows_with_shocks_shared_by_a_day():
    """Day shocks hitting only the treated unit (not cancelled by the control) are extra
    variance the independent-records error misses; the cluster-robust one sees it."""
    rng = np.random.default_rng(5)
    days = pd.date_range("2025-01-01", periods=80, freq="D", tz="UTC")
    rows = []
    for d in days:
        shock = rng.normal(0, 1.0)
        for t in (True, False):
            for _ in range(20):
                rows.append(
                    {
                        "day": d,
                        "touchpoint": "a" if t else "b",
                        "region": "x",
                        "_t": t,
                        "_w": d >= days[40],
                        "y": rng.normal(0, 1.0) + (shock if t else 0.0),
                    }
                )
    raw = pd.DataFrame(rows)
    res = did(_cells(raw), "n", "s", "ss", 0.95)
    naive = float(np.sqrt((raw.groupby(["_t", "_w"])["y"].var() / 800).sum()))
    assert res.se > 2.0 * naive


def test_did_null_p_values_are_calibrated():
    """200 data sets without an effect: about 5 % of p-values fall below 0.05 (binomial 95 %
    range for 200 draws at 5 %: 4 to 17)."""
    rng = np.random.default_rng(8)
    days = pd.date_range("2025-01-01", periods=40, freq="D", tz="UTC")
    hits = 0
    for _ in range(200):
        k = rng.integers(1, 6, size=(4, len(days)))
        rows = [
            {
                "day": d,
                "touchpoint": tp,
                "region": "x",
                "_t": tp in ("a", "b"),
                "_w": j >= 20,
                "y": float(v),
            }
            for u, tp in enumerate("abcd")
            for j, d in enumerate(days)
            for v in rng.normal(u * 0.5, 1.5, k[u, j])
        ]
        hits += did(_cells(pd.DataFrame(rows)), "n", "s", "ss", 0.95).p_value < 0.05
    assert 4 <= hits <= 17


def test_its_matches_statsmodels_wls_and_recovers_a_level_change():
    """Interrupted time series: the level change equals statsmodels WLS on the daily means
    (weights n), and the SE is the larger of its classical and HC1 errors."""
    rng = np.random.default_rng(4)
    days = pd.date_range("2025-01-01", periods=70, freq="D", tz="UTC")
    rows = []
    for j, d in enumerate(days):
        for _ in range(int(rng.integers(5, 15))):
            y = 0.01 * j + (-0.8 if j >= 35 else 0.0) + rng.normal(0, 1.2)
            rows.append(
                {"day": d, "touchpoint": "a", "region": "x", "_t": True, "_w": j >= 35, "y": y}
            )
    cells = _cells(pd.DataFrame(rows))
    res = its(cells, "n", "s", "ss", 0.95)
    daily = cells.groupby("day").agg(n=("n", "sum"), s=("s", "sum"), w=("_w", "first"))
    y = (daily["s"] / daily["n"]).to_numpy() - cells["s"].sum() / cells["n"].sum()
    t = np.arange(len(daily), dtype=float)
    x = np.column_stack([np.ones(len(t)), (t - t.mean()) / t.std(), daily["w"].astype(float)])
    fit = sm.WLS(y, x, weights=daily["n"].to_numpy()).fit()
    assert res.effect == pytest.approx(fit.params[2], abs=1e-10)
    robust = fit.get_robustcov_results(cov_type="HC1")
    assert res.se == pytest.approx(max(fit.bse[2], robust.bse[2]), rel=1e-8)
    assert res.low < -0.8 < res.high


def test_proportion_did_by_hand():
    counts = {
        "persons_T1": 200,
        "churned_T1": 30,
        "persons_T0": 250,
        "churned_T0": 20,
        "persons_C1": 800,
        "churned_C1": 40,
        "persons_C0": 900,
        "churned_C0": 45,
    }
    res = proportion_did(counts, False, 0.95)
    ps = [(30 / 200, 200), (20 / 250, 250), (40 / 800, 800), (45 / 900, 900)]
    se = np.sqrt(sum(p * (1 - p) / n for p, n in ps))
    assert res.effect == pytest.approx((0.15 - 0.08) - (0.05 - 0.05))
    assert res.se == pytest.approx(se)
    assert res.low == pytest.approx(res.effect - 1.959964 * se, abs=1e-6)


def test_benjamini_hochberg_matches_statsmodels():
    """statsmodels.stats.multitest.multipletests(method="fdr_bh"); NaN stays NaN."""
    p = np.array([0.01, 0.04, 0.03, 0.2, np.nan, 0.001, 0.5, 0.049])
    ok = ~np.isnan(p)
    expected = multipletests(p[ok], method="fdr_bh")[1]
    got = benjamini_hochberg(p)
    assert np.isnan(got[4])
    np.testing.assert_allclose(got[ok], expected, rtol=1e-12)


# -- the whole path on both engines ---------------------------------------------------------------


@pytest.fixture
def company(ingestor: Ingestor) -> dict[str, pa.Table]:
    data = attribution_data()
    load_attribution(ingestor, data)
    return data


def test_feedback_cells_equal_a_pandas_reading(store, company):
    cells = feedback_cells(store)
    f = plain_facts(company)
    f["day"] = f["occurred_at"].dt.floor("D")
    exp = f.groupby(["day", "touchpoint", "region"]).agg(
        n_gap=("gap", "size"),
        sum_gap=("gap", "sum"),
        n_complaint=("experience", lambda v: int((v <= COMPLAINT_MAX).sum())),
    )
    got = cells.set_index(["day", "touchpoint", "region"]).sort_index()
    exp = exp.sort_index()
    assert got.index.equals(exp.index)
    np.testing.assert_array_equal(got["n_gap"], exp["n_gap"])
    np.testing.assert_allclose(got["sum_gap"], exp["sum_gap"])
    np.testing.assert_array_equal(got["n_complaint"], exp["n_complaint"])


def test_planted_ripple_found_and_null_events_not(store, company):
    res = ripple_table(store)
    f = res.frame.set_index("event_id")
    planted = f.loc["ops-1"]
    assert planted["design"] == "did-regions" and planted["control_units"] == 3
    # the latent −2 survives rounding and clipping almost whole
    assert planted["effect_gap_low"] < -1.8 < planted["effect_gap_high"]
    assert planted["significant"] and planted["direction"] == "harmful"
    assert planted["effect_complaint"] > 0.1 and planted["p_value_complaint"] < 0.01
    for null in ("ops-2", "ops-3"):
        assert not f.loc[null, "significant"], f.loc[null]
    assert f.loc["ops-2", "design"] == "did-touchpoints"
    assert f.loc["ops-3", "touchpoints"] == "support_call"  # from its department
    assert "department" in f.loc["ops-3", "note"]
    assert f["n_exposed"].notna().all()  # churn measured on both engines
    q = benjamini_hochberg(f["p_value_gap"])
    np.testing.assert_allclose(f["q_value_gap"], q)


def test_department_impact_ranks_the_harmful_department_first(store, company):
    ripples = ripple_table(store, churn=False)
    impact = department_impact(store, ripples=ripples).frame
    first = impact.iloc[0]
    assert first["department"] == "logistics" and first["rank"] == 1
    row = ripples.frame.set_index("event_id").loc["ops-1"]
    assert first["impact"] == pytest.approx(row["effect_gap"] * row["affected_interactions"])
    assert first["impact_low"] < first["impact"] < first["impact_high"] < 0
    assert (impact.loc[impact["department"] != "logistics", "impact"] == 0).all()


def test_filters_and_bad_input(store, company):
    assert list(ripple_table(store, department="marketing", churn=False).frame["event_id"]) == [
        "ops-2"
    ]
    assert ripple_table(store, since="2025-05-01", churn=False).frame["event_id"].tolist() == [
        "ops-3"
    ]
    with pytest.raises(AnalyticsQueryError, match="unknown operational event 'ops-9'"):
        ripple_table(store, event="ops-9")
    with pytest.raises(AnalyticsQueryError, match="alpha"):
        ripple_table(store, alpha=1.5)
