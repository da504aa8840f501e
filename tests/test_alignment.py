"""Alignment: employee predictions against customers and consistency across channels, on both
engines, against pandas, scipy and statsmodels readings of the same rows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sp
from statsmodels.stats.oneway import anova_oneway

from corridor.analytics.attribution.alignment import alignment_table, welch_anova
from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.ingest.pipeline import Ingestor
from test_ripple import DEPARTMENT, attribution_data, load_attribution, plain_facts


def test_welch_anova_matches_statsmodels():
    """statsmodels.stats.oneway.anova_oneway(groups, use_var="unequal") (Welch 1951)."""
    rng = np.random.default_rng(6)
    groups = [rng.normal(m, s, n) for m, s, n in ((5, 1, 30), (5.5, 2, 12), (4.8, 0.5, 50))]
    ref = anova_oneway(groups, use_var="unequal")
    f, d1, d2, p = welch_anova(
        [len(g) for g in groups], [g.mean() for g in groups], [g.var(ddof=1) for g in groups]
    )
    assert f == pytest.approx(ref.statistic, rel=1e-10)
    assert (d1, d2) == pytest.approx((ref.df_num, ref.df_denom), rel=1e-10)
    assert p == pytest.approx(ref.pvalue, rel=1e-8)


@pytest.fixture
def company(ingestor: Ingestor):
    data = attribution_data()
    load_attribution(ingestor, data)
    return data


def test_employee_bias_and_correlation(store, company):
    res = alignment_table(store, by="touchpoint")
    f = res.frame.set_index("touchpoint")
    facts = plain_facts(company)
    facts["period"] = facts["occurred_at_fb"].dt.strftime("%Y-%m")
    actual = facts.groupby(["touchpoint", "period"])["experience"].mean().rename("actual")
    pred = company["employee_predictions"].to_pandas()
    pairs = pred.merge(actual.reset_index(), on=["touchpoint", "period"])
    for tp, g in pairs.groupby("touchpoint"):
        d = g["predicted_experience"] - g["actual"]
        low, high = sp.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sp.sem(d))
        assert f.loc[tp, "n"] == len(g)
        assert f.loc[tp, "bias"] == pytest.approx(d.mean())
        assert (f.loc[tp, "bias_low"], f.loc[tp, "bias_high"]) == pytest.approx((low, high))
        r = sp.pearsonr(g["predicted_experience"], g["actual"])
        ci = r.confidence_interval(0.95)
        assert f.loc[tp, "correlation"] == pytest.approx(r.statistic)
        assert f.loc[tp, "correlation_low"] == pytest.approx(ci.low)
    by_dept = alignment_table(store).frame.set_index("department")
    for tp, dept in DEPARTMENT.items():  # one touch point per department here
        assert by_dept.loc[dept, "bias"] == pytest.approx(f.loc[tp, "bias"])
    assert by_dept["bias"].idxmax() == "logistics"  # the most optimistic, and its ripple


def test_channel_consistency(store, company):
    res = alignment_table(store, view="channels")
    f = res.frame
    assert set(f["touchpoint"]) == {"ad_click", "checkout", "home_delivery"}  # ≥ 2 channels
    facts = plain_facts(company)
    for tp, rows in f.groupby("touchpoint"):
        mine = facts[facts["touchpoint"] == tp]
        groups = [g["experience"].to_numpy() for _, g in mine.groupby("channel")]
        ref = anova_oneway(groups, use_var="unequal")
        assert rows["p_value"].iloc[0] == pytest.approx(ref.pvalue, rel=1e-8)
        means = mine.groupby("channel")["experience"].mean()
        assert rows["spread"].iloc[0] == pytest.approx(means.max() - means.min())
    checkout = f[f["touchpoint"] == "checkout"].set_index("channel")
    # planted: app +0.6 over web
    assert checkout.loc["app", "mean"] > checkout.loc["web", "mean"]
    assert checkout["p_value"].iloc[0] < 0.001
    with pytest.raises(AnalyticsQueryError, match="allowed: employees, channels"):
        alignment_table(store, view="teams")
    with pytest.raises(AnalyticsQueryError, match="allowed: experience, gap"):
        alignment_table(store, view="channels", measure="nps")
