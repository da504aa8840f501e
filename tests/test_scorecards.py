"""Partner and agent scorecards: the effects model against statsmodels OLS, and the whole card on
both engines on the small company of :mod:`test_ripple` (partners ``fast`` +1, ``slow`` −1 and
the small ``tiny`` +0.5 at home delivery, against the brand's own web deliveries)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.proportion import proportion_confint

from corridor.analytics.attribution.scorecards import (
    partner_scorecard,
    select_list,
    standardised_effects,
    two_way_effects,
)
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.ingest.pipeline import Ingestor
from test_ripple import attribution_data, load_attribution, plain_facts


def _rows(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    level = {"t1": 0.0, "t2": -1.0, "t3": 0.5, "t4": 1.0}
    effect = {"p1": 0.8, "p2": -0.5, "p3": 0.2}
    serves = {"p1": ("t1", "t2"), "p2": ("t2", "t3"), "p3": ("t3", "t4")}
    rows = []
    for tp in level:
        for unit in (None, "p1", "p2", "p3"):
            if unit is not None and tp not in serves[unit]:
                continue
            if unit is None and tp == "t4":  # only a partner serves t4
                continue
            for _ in range(int(rng.integers(5, 40))):
                y = level[tp] + effect.get(unit or "", 0.0) + rng.normal(0, 1)
                rows.append({"unit": unit, "touchpoint": tp, "y": y})
    return pd.DataFrame(rows)


def _cells(rows: pd.DataFrame) -> pd.DataFrame:
    return (
        rows.groupby(["unit", "touchpoint"], dropna=False)["y"]
        .agg(n="size", sum_gap="sum", sumsq_gap=lambda v: float((v**2).sum()))
        .reset_index()
    )


def test_two_way_effects_equal_ols_with_dummies():
    """statsmodels OLS ``y ~ C(touchpoint) + C(unit, Treatment("brand"))`` on the raw rows: the
    unit coefficients and their standard errors, including a partner-only touch point."""
    rows = _rows()
    got = two_way_effects(_cells(rows)).set_index("unit")
    df = rows.assign(unit=rows["unit"].fillna("brand"))
    fit = smf.ols('y ~ C(touchpoint) + C(unit, Treatment("brand"))', data=df).fit()
    for u in ("p1", "p2", "p3"):
        name = f'C(unit, Treatment("brand"))[T.{u}]'
        assert got.loc[u, "effect"] == pytest.approx(fit.params[name], abs=1e-9)
        assert got.loc[u, "se"] == pytest.approx(fit.bse[name], rel=1e-9)


def test_two_way_effects_leave_unconnected_units_unidentified():
    """A partner serving only a touch point nobody else serves cannot be compared with the
    brand: no estimate rather than a made-up one."""
    rows = pd.concat(
        [_rows(), pd.DataFrame({"unit": "p9", "touchpoint": "t9", "y": [1.0, 2.0, 3.0]})]
    )
    got = two_way_effects(_cells(rows)).set_index("unit")
    assert np.isnan(got.loc["p9", "effect"]) and np.isnan(got.loc["p9", "se"])
    assert np.isfinite(got.loc["p1", "effect"])


def test_standardised_effects_by_hand():
    rows = _rows().dropna(subset=["unit"])
    got = standardised_effects(_cells(rows)).set_index("unit")
    mu = rows.groupby("touchpoint")["y"].transform("mean")
    adj = rows.assign(a=rows["y"] - mu)
    exp = adj.groupby("unit")["a"].mean()
    resid = adj["a"] - adj.groupby("unit")["a"].transform("mean")
    sigma2 = float((resid**2).sum() / (len(adj) - adj["unit"].nunique()))
    for u in exp.index:
        assert got.loc[u, "effect"] == pytest.approx(exp[u], abs=1e-10)
        n = int((adj["unit"] == u).sum())
        assert got.loc[u, "se"] == pytest.approx(np.sqrt(sigma2 / n), rel=1e-10)


@pytest.fixture
def company(ingestor: Ingestor):
    data = attribution_data()
    load_attribution(ingestor, data)
    return data


def test_partner_card_on_both_engines(store, company):
    res = partner_scorecard(store, kind="partner")
    f = res.frame
    base = f[f["baseline"]].iloc[0]
    cards = f[~f["baseline"]].set_index("partner")
    facts = plain_facts(company)
    brand = facts[facts["partner_id"].isna()]
    assert base["n"] == len(brand)
    assert base["mean_gap"] == pytest.approx(brand["gap"].mean())
    # raw figures against pandas / statsmodels
    for p in ("fast", "slow", "tiny"):
        mine = facts[facts["partner_id"] == p]
        assert cards.loc[p, "n"] == len(mine)
        assert cards.loc[p, "mean_gap"] == pytest.approx(mine["gap"].mean())
        k = int((mine["experience"] <= 4).sum())
        low, high = proportion_confint(k, len(mine), method="wilson")
        assert cards.loc[p, "complaint_share"] == pytest.approx(k / len(mine))
        assert cards.loc[p, "complaint_share_low"] == pytest.approx(low)
        assert cards.loc[p, "complaint_share_high"] == pytest.approx(high)
    # planted offsets against the brand's own deliveries at the same touch point
    assert cards.loc["fast", "adjusted_gap_low"] < 1.0 < cards.loc["fast", "adjusted_gap_high"]
    assert cards.loc["slow", "adjusted_gap_low"] < -1.0 < cards.loc["slow", "adjusted_gap_high"]
    assert list(cards["rank"].sort_values().index[[0, -1]]) == ["fast", "slow"]
    assert cards.loc["fast", "select"] == "better" and cards.loc["slow", "select"] == "worse"
    # the small partner is pulled towards the others more than the big ones
    w = cards["shrink_weight"]
    assert w["tiny"] < w["fast"] and w["tiny"] < w["slow"]
    assert set(select_list(res)["partner"]) >= {"fast", "slow"}


def test_agent_card_and_bad_input(store, company):
    f = partner_scorecard(store, kind="agent").frame
    assert sorted(f["agent"]) == ["a1", "a2", "a3", "a4", "a5"]
    assert not f["baseline"].any()
    assert (f["shrunk_gap_low"] <= f["shrunk_gap"]).all()
    # no planted agent effect: nobody credibly better or worse than the average agent
    assert f["select"].isna().all()
    with pytest.raises(AnalyticsQueryError, match="allowed: partner, agent"):
        partner_scorecard(store, kind="dealer")
    with pytest.raises(AnalyticsQueryError, match="cannot be filtered by 'partner'"):
        partner_scorecard(store, filters={"partner": "fast"})


@pytest.mark.parametrize("kind", ["partner", "agent"])
def test_filters_that_match_nothing_give_an_empty_card(store, company, kind):
    """Regression (issue 11.4): with no feedback under the filters the empty frames typed their
    unit key float and the merge raised (a 500 on /partners and /agents)."""
    for kw in ({"filters": {"region": "nowhere"}}, {"since": "2030-01-01"}):
        res = partner_scorecard(store, kind=kind, **kw)
        assert res.n == 0 and res.frame[~res.frame["baseline"]].empty, kw
