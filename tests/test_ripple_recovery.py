"""Attribution recovers what the simulator planted: ripples, partner quality, staff optimism.

One simulated company (20,000 customers, 12 months, seed 7: ~770 k interactions, ~97 k feedback
records) is imported into a DuckDB file and read with the public analytics API; every
assertion is checked against ``truth.json``:

* **ripples** (:func:`~corridor.analytics.attribution.ripple.ripple_table`): every planted ripple (a
regional
  logistics carrier change, −2 experience points at two touch points; a national billing error,
  −1.5 at the invoice) is significant (BH q < 0.05) and harmful, its effect near the planted
  size; of the operational events planted with no effect at most 10 % are flagged, and at least
  half are estimable (enough records); the two planted departments rank first by impact.
  Measured offline over 11 seeds (1–11) of this size: recall 22 of 22; null events flagged
  0–2 of 14–16 per company (3 of 176 in all, 6 of the 95 estimable at raw p < 0.05; the null
  p-values pass a Kolmogorov–Smirnov test of uniformity, p = 0.95); seed 7 flags none.
* **partners** (:func:`~corridor.analytics.attribution.scorecards.partner_scorecard`): the shrunk
adjusted
  gap ranks the 21 partners like their planted experience offsets (Spearman ≥ 0.8) and lies
  closer to them (RMSE) than the unshrunk estimate, over the year and over a two-month slice
  where small partners have a handful of records. Over the 11 seeds: Spearman 0.88–0.99 (year)
  and 0.79–0.96 (slice); shrunk closer than raw in 8 of 11 years and 9 of 11 slices.
* **alignment**: the departments' biases (predicted − actual) rank like the planted optimism
  (Spearman ≥ 0.8), and the payment touch point's channels differ as planted (app > web > voice).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from corridor.analytics.attribution.alignment import alignment_table
from corridor.analytics.attribution.ripple import department_impact, ripple_table
from corridor.analytics.attribution.scorecards import partner_scorecard
from corridor.store import Store, open_store
from shared_builds import private_copy, simulated_company

CUSTOMERS = 20_000
MONTHS = 12
SEED = 7

pytestmark = pytest.mark.slow  # ~25 s: simulate, import ~900 k records, analyse


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, dict[str, Any]]]:
    # the same company as tests/test_drivers_recovery.py: simulated and imported once a run,
    # this module reads its own copy of the store
    shared, truth = simulated_company(tmp_path_factory, CUSTOMERS, MONTHS, SEED)
    copy = private_copy(shared, tmp_path_factory.mktemp("attribution"))
    store = open_store(f"duckdb:///{copy}")
    yield store, truth
    store.close()


def test_planted_ripples_found_and_few_false_alarms(company):
    store, truth = company
    ripples = ripple_table(store, churn=False)
    f = ripples.frame.set_index("event_id")
    planted = {r["event_id"]: r for r in truth["ripples"]}
    assert len(planted) == 2
    found = [e for e in planted if f.loc[e, "significant"] and f.loc[e, "effect_gap"] < 0]
    assert len(found) / len(planted) >= 0.9, f.loc[list(planted)]
    for event_id, r in planted.items():
        # rounding to whole points and clipping at 0 and 10 shave a little off the latent size
        assert f.loc[event_id, "effect_gap"] == pytest.approx(r["experience_effect"], abs=0.4)
    nulls = truth["null_events"]["operational"]
    flagged = [e for e in nulls if f.loc[e, "significant"]]
    estimable = [e for e in nulls if np.isfinite(f.loc[e, "p_value_gap"])]
    assert len(flagged) <= 0.10 * len(nulls), f.loc[flagged]
    assert len(estimable) >= 0.5 * len(nulls)
    impact = department_impact(store, ripples=ripples).frame
    assert set(impact["department"].iloc[:2]) == {r["department"] for r in planted.values()}


def _partner_truth(truth: dict[str, Any]) -> pd.DataFrame:
    t = pd.DataFrame(truth["partners"])
    return t.rename(columns={"partner_id": "partner"})[["partner", "experience_offset"]]


@pytest.mark.parametrize(
    "window", [{}, {"since": "2025-03-01", "until": "2025-05-01"}], ids=["year", "two-months"]
)
def test_partner_scores_recover_planted_quality_and_shrinkage_helps(company, window):
    store, truth = company
    card = partner_scorecard(store, kind="partner", **window).frame
    m = card[~card["baseline"]].merge(_partner_truth(truth), on="partner")
    assert len(m) == len(truth["partners"])
    rho = sp.spearmanr(m["shrunk_gap"], m["experience_offset"]).statistic
    assert rho >= 0.8
    rmse_raw = float(np.sqrt(((m["adjusted_gap"] - m["experience_offset"]) ** 2).mean()))
    rmse_shrunk = float(np.sqrt(((m["shrunk_gap"] - m["experience_offset"]) ** 2).mean()))
    assert rmse_shrunk < rmse_raw
    # the select list agrees with the truth about which side of the brand a partner is on
    sel = m[m["select"].notna()]
    agree = (sel["select"] == "better") == (sel["experience_offset"] > 0)
    assert agree.mean() >= 0.9


def test_alignment_recovers_staff_optimism_and_channel_effects(company):
    store, truth = company
    by_dept = alignment_table(store).frame.set_index("department")
    optimism = by_dept.index.map(truth["employee_optimism"])
    assert sp.spearmanr(by_dept["bias"], optimism).statistic >= 0.8
    assert by_dept["bias"].idxmax() == "sales"  # the most optimistic department
    assert (by_dept["bias_low"] > 0).all()  # every department thinks customers fare better
    channels = alignment_table(store, view="channels", filters={"touchpoint": "payment"}).frame
    order = channels.sort_values("mean", ascending=False)["channel"].tolist()
    assert order == ["app", "web", "voice"]  # planted +0.3, 0, −0.3
    assert channels["p_value"].iloc[0] < 1e-6
