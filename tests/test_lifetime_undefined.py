"""Lifetime figures are never impossible: where a model has no finite answer it says so.

Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value curves for customer base
analysis", *JMR* 42(4), 415–430; Fader & Hardie 2013, "The Gamma-Gamma model of monetary
value"): a customer's transaction values are Gamma(p, ν), ν ~ Gamma(q, γ). The population mean
spend E[M] = p·γ/(q − 1) exists only for q > 1; given x repeat transactions of mean m, the
posterior of ν is Gamma(p·x + q, γ + x·m), so E[M | x, m] = p·(γ + x·m)/(p·x + q − 1) exists
only for p·x + q > 1. Beyond those bounds the formulas give negative numbers (issue 11.3: 313
of 353 buyers with CLV < 0 on a 1,000-customer, 6-month company, fitted q = 0.989).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from corridor.analytics.customers.lifetime import lifetime_params, lifetime_table, person_value
from corridor.analytics.estimators.lifetime_models import BetaGeo, GammaGamma, clv

#: twelve repeat buyers' mean spend, heavy-tailed (a Pareto tail of index 0.5: no finite mean),
#: and how many repeat transactions each made
HEAVY = np.round(40 * ((np.arange(12) + 0.5) / 12) ** (-1 / 0.5), 2)
REPEATS = np.array([1, 1, 2, 1, 1, 3, 1, 1, 2, 1, 1, 1], float)


def test_gamma_gamma_with_q_below_one_has_no_mean_spend_for_one_time_buyers():
    """Heavy-tailed spend fits q < 1: a buyer without repeat purchases (x = 0) has no finite
    expected spend p·γ/(q − 1), so their value and CLV are NaN with the reason; repeat buyers
    (p·x + q > 1) keep p·(γ + x·m)/(p·x + q − 1), positive."""
    gg = GammaGamma().fit(REPEATS, HEAVY)
    p, q, g = gg.params_["p"], gg.params_["q"], gg.params_["gamma"]
    assert q < 1
    assert gg.reason_ is None  # the fit itself is usable
    assert gg.note_ is not None and "q = " in gg.note_
    x = np.array([0.0, 1.0, 2.0])
    m = np.array([0.0, 100.0, 250.0])
    ev, se = gg.expected_value(x, m)
    assert np.isnan(ev[0]) and np.isnan(se[0])
    want = p * (g + x[1:] * m[1:]) / (p * x[1:] + q - 1)
    assert ev[1:] == pytest.approx(want, rel=1e-9)
    assert (ev[1:] > 0).all()
    reasons = gg.value_reasons(x)
    assert reasons[0] is not None and "q = " in reasons[0] and "infinite" in reasons[0]
    assert reasons[1] is None and reasons[2] is None

    bg = BetaGeo().fit([0, 1, 2, 0, 3, 1, 0, 2], [0, 5, 9, 0, 20, 3, 0, 15], [30] * 8)
    value, _ = clv(bg, gg, x, [0, 4, 8], [30, 30, 30], m, 12, 4.345, 0.01)
    assert np.isnan(value[0])
    assert (value[1:] > 0).all()


def test_gamma_gamma_posterior_mean_needs_p_x_plus_q_above_one():
    """E[M | x, m] = p·(γ + x·m)/(p·x + q − 1) is finite only where p·x + q > 1: with p = 0.2,
    q = 0.5 one repeat transaction (0.7) is not enough, three (1.1) are."""
    gg = GammaGamma().fit(REPEATS, HEAVY)
    gg.log_params_ = np.log([0.2, 0.5, 10.0])
    ev, _ = gg.expected_value([1, 3], [100.0, 100.0])
    assert np.isnan(ev[0])
    assert ev[1] == pytest.approx(0.2 * (10 + 300) / (0.6 + 0.5 - 1))
    reasons = gg.value_reasons([1, 3])
    assert "p·x + q" in reasons[0] and reasons[1] is None


def test_bgnbd_expected_purchases_at_a_equal_one():
    """FHL (2005) eq. 10 has the factor (a + b + x − 1)/(a − 1): at a = 1 it is 0/0, a removable
    singularity; E[Y(t)] there is the limit from either side, finite and positive."""
    x, tx, t = np.array([0.0, 1, 3]), np.array([0.0, 5, 20]), np.array([39.0] * 3)
    at_one = BetaGeo._expected(np.log([0.5, 5.0, 1.0, 2.5]), x, tx, t, 52.0)
    below = BetaGeo._expected(np.log([0.5, 5.0, 1 - 1e-5, 2.5]), x, tx, t, 52.0)
    above = BetaGeo._expected(np.log([0.5, 5.0, 1 + 1e-5, 2.5]), x, tx, t, 52.0)
    assert np.isfinite(at_one).all() and (at_one > 0).all()
    assert at_one == pytest.approx((below + above) / 2, rel=1e-6)


def test_guard_withholds_an_impossible_figure_and_says_so():
    """The row invariant (0 ≤ P(alive) ≤ 1, expected purchases ≥ 0, expected value > 0,
    CLV ≥ 0, each inside its interval): a figure breaking it is withheld with the figures
    resting on it (P(alive) → expected purchases → CLV; expected value → CLV), with a reason."""
    import pandas as pd

    from corridor.analytics.customers.lifetime import _guard

    nan = np.nan
    rows = pd.DataFrame(
        {
            "p_alive": [0.5, 1.2, 0.5, 0.5],
            "p_alive_low": [0.4, 1.1, 0.4, 0.4],
            "p_alive_high": [0.6, 1.3, 0.6, 0.6],
            "expected_purchases": [2.0, 2.0, 2.0, 2.0],
            "expected_purchases_low": [1.0, 1.0, 1.0, 1.0],
            "expected_purchases_high": [3.0, 3.0, 3.0, 3.0],
            "expected_value": [10.0, 10.0, -4.0, 10.0],
            "clv": [20.0, 20.0, -8.0, nan],
            "clv_low": [10.0, 10.0, -16.0, nan],
            "clv_high": [30.0, 30.0, -4.0, nan],
            "clv_reason": pd.Series([None, None, None, None], dtype=object),
        }
    )
    out = _guard(rows.copy())
    assert out.loc[0, "clv"] == 20.0 and out.loc[0, "clv_reason"] is None
    assert out.loc[1, ["p_alive", "expected_purchases", "clv"]].isna().all()
    assert "impossible p alive" in out.loc[1, "clv_reason"]
    assert out.loc[2, "expected_purchases"] == 2.0
    assert out.loc[2, ["expected_value", "clv", "clv_low", "clv_high"]].isna().all()
    assert "impossible expected value" in out.loc[2, "clv_reason"]
    assert out.loc[3, "clv_reason"] == "the models give no finite value for this buyer"


START = datetime(2025, 1, 6, tzinfo=UTC)


def _company() -> pa.Table:
    """20 one-time buyers and 12 repeat buyers whose repeat purchases average ``HEAVY``."""
    rows: dict[str, list] = {
        k: []
        for k in (
            "interaction_id",
            "person_id",
            "occurred_at",
            "touchpoint",
            "channel",
            "outcome",
            "value",
        )
    }

    def buy(pid: str, k: int, at: datetime, value: float) -> None:
        rows["interaction_id"].append(f"{pid}-{k}")
        rows["person_id"].append(pid)
        rows["occurred_at"].append(at)
        rows["touchpoint"].append("checkout")
        rows["channel"].append("web")
        rows["outcome"].append("purchase")
        rows["value"].append(value)

    for i in range(20):
        buy(f"one{i:02d}", 0, START + timedelta(days=3 * i), 30.0 + 7 * i)
    for i, (m, x) in enumerate(zip(HEAVY, REPEATS, strict=True)):
        pid = f"rep{i:02d}"
        first = START + timedelta(days=2 * i)
        buy(pid, 0, first, 50.0)
        for k in range(int(x)):
            buy(pid, k + 1, first + timedelta(days=20 + 15 * k + i), float(m))
    buy("last", 0, START + timedelta(days=150), 40.0)  # the as-of time
    return pa.table(
        {
            **{k: v for k, v in rows.items() if k not in ("occurred_at", "value")},
            "occurred_at": pa.array(rows["occurred_at"], pa.timestamp("us", tz="UTC")),
            "value": pa.array(rows["value"], pa.float64()),
        }
    )


@pytest.fixture
def heavy(ingestor):
    ingestor.ingest("interactions", _company())
    return ingestor.store


def _check_possible(frame) -> None:
    """The invariants every lifetime row keeps: P(alive) in [0, 1], expected purchases ≥ 0,
    expected value > 0, CLV ≥ 0, each inside its interval; a missing CLV has its reason."""
    for col, lo in (("p_alive", 0.0), ("expected_purchases", 0.0), ("clv", 0.0)):
        v = frame[col].to_numpy(float)
        ok = np.isnan(v) | (v >= lo)
        assert ok.all(), (col, v[~ok])
        low, high = frame[f"{col}_low"].to_numpy(float), frame[f"{col}_high"].to_numpy(float)
        both = ~np.isnan(low) & ~np.isnan(high) & ~np.isnan(v)
        assert (low[both] <= v[both] * (1 + 1e-12)).all() and (
            v[both] <= high[both] * (1 + 1e-12)
        ).all(), col
    assert (frame["p_alive"].dropna() <= 1).all()
    assert (frame["expected_value"].dropna() > 0).all()
    missing = frame["clv"].isna()
    assert frame.loc[missing, "clv_reason"].map(lambda r: isinstance(r, str) and r != "").all()
    assert frame.loc[~missing, "clv_reason"].isna().all()


def test_store_with_heavy_tailed_spend_reports_no_impossible_clv(heavy):
    """On both engines: one-time buyers get no CLV (the reason names q), repeat buyers a
    positive one; no row breaks the invariants; one person's figures say the same."""
    people = lifetime_table(heavy, horizon_months=6)
    f = people.frame.set_index("person_id")
    assert people.model["q"] < 1
    assert "q = " in people.model["clv_note"]
    assert people.model["clv_not_available"] == 21
    _check_possible(f.reset_index())
    one = f.loc[[f"one{i:02d}" for i in range(20)]]
    assert one["clv"].isna().all() and one["expected_value"].isna().all()
    assert one["clv_reason"].str.contains("q = ").all()
    rep = f.loc[[f"rep{i:02d}" for i in range(12)]]
    assert (rep["clv"] > 0).all()
    # highest CLV first, the ones without a CLV last
    assert people.frame["clv"].iloc[:12].notna().all()
    assert people.frame["clv"].iloc[12:].isna().all()
    me = person_value(heavy, "one03", horizon_months=6)
    assert me["status"] == "buyer" and me["clv"] is None and me["expected_value"] is None
    assert "q = " in me["clv_reason"]
    assert person_value(heavy, "rep02", horizon_months=6)["clv"] > 0
    params = lifetime_params(heavy)
    assert "q = " in params.model["clv_note"]


def test_api_and_customer_page_say_not_available(heavy):
    """The API serialises the missing CLV as null with its reason; the customer page shows
    "not available: <reason>" instead of a number."""
    from corridor.api.app import create_app
    from corridor.settings import Settings

    app = create_app(Settings(auth="off", model_refresh="on_request"), store=heavy)
    with TestClient(app) as c:
        r = c.get("/api/v1/lifetime/people", params={"horizon_months": 6})
        assert r.status_code == 200, r.text
        rows = {row["person_id"]: row for row in r.json()["rows"]}
        assert rows["one03"]["clv"] is None and "q = " in rows["one03"]["clv_reason"]
        assert rows["rep02"]["clv"] > 0 and rows["rep02"]["clv_reason"] is None
        assert all(row["clv"] is None or row["clv"] >= 0 for row in rows.values())
        one = c.get("/api/v1/lifetime/people/one03").json()
        assert one["clv"] is None and "q = " in one["clv_reason"]
        page = c.get("/customers/one03")
        assert page.status_code == 200, page.text
        tile = page.text.split("Customer lifetime value", 1)[1].split("</article>", 1)[0]
        assert "not available: " in tile and "q = " in tile
        assert "-" not in tile.split('class="big">', 1)[1].split("<", 1)[0]


def test_cli_says_not_available(ingestor, store_url):
    """``corridor lifetime people`` and ``lifetime person`` say why a CLV is missing."""
    from corridor.cli import app

    ingestor.ingest("interactions", _company())
    ingestor.store.close()  # the CLI opens the store itself
    run = CliRunner().invoke
    r = run(app, ["lifetime", "people", "--limit", "40", "--store", store_url])
    assert r.exit_code == 0, r.output
    assert "CLV not available for 21 of 33 buyers" in " ".join(r.output.split())
    r = run(app, ["lifetime", "params", "--store", store_url])
    assert r.exit_code == 0 and "q = " in " ".join(r.output.split())
    r = run(app, ["lifetime", "person", "one03", "--format", "json", "--store", store_url])
    body = json.loads(r.output)
    assert body["clv"] is None and "q = " in body["clv_reason"]
    r = run(app, ["lifetime", "person", "one03", "--store", store_url])
    assert r.exit_code == 0 and "not available: " in " ".join(r.output.split())
