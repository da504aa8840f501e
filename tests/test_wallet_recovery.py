"""Recovery of the planted share of wallet: :func:`corridor.analytics.customers.wallet.wallet_table`
on a simulated company finds, per segment, the share the simulator planted.

The simulator (``truth["wallet"]``, :mod:`corridor.simulate.wallet`) asks half of customers'
NPS surveys how many brands of the category they use (N, 1–5, fixed per person, more in larger
segments) and where ours ranks (1 + the rival brands standing above us; our standing follows
the person's experience offset). Its expected values per segment are exact (closed form; the
Wallet Allocation Rule share (1 − rank/(N + 1)) · 2/N of Keiningham et al. 2015, *Journal of
Service Management* 26(1), is linear in the rank): share 0.617 for consumers, 0.491 for small
businesses, 0.371 for enterprises.

One company (20,000 customers, 6 months, seed 7: ~55 k feedback records, ~8,800 respondents)
is imported (corridor map, people, feedback) into each engine. The planted share and share
ranking us first must lie inside the analysis's 99.9 % intervals, the mean number of brands
within 3.29 planted standard errors, and the segments' 95 % share intervals must be apart in
the planted order.

Measured (pandas, the same estimator, seeds 1–40 at this size): the per-segment share's z
against the planted value has mean −0.03 and variance 0.97 over the 120 estimates; 6 of 120
fall outside ±1.96, none outside ±3.29 (largest 3.27: seed 11, consumers). Seed 7: consumers
z = −2.1, small businesses −0.7, enterprises +0.4. ~7 s on DuckDB, ~10 s on PostgreSQL.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from corridor.analytics.customers.wallet import wallet_table
from corridor.ingest.files import import_dataset
from corridor.ingest.pipeline import Ingestor
from corridor.simulate import simulate
from corridor.store import Store

CUSTOMERS = 20_000
MONTHS = 6
SEED = 7
ORDER = ("consumer", "small_business", "enterprise")  # planted: highest share first

pytestmark = pytest.mark.slow  # ~17 s on both engines: simulate once, import twice, analyse


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The simulated company's truth, its raw feedback and a folder with what the analysis
    needs (the corridor map, people and feedback)."""
    root: Path = tmp_path_factory.mktemp("wallet-recovery")
    res = simulate(CUSTOMERS, MONTHS, SEED, root / "all", fmt="parquet")
    load = root / "load"
    load.mkdir()
    for kind in ("map", "people", "feedback"):
        shutil.copy(res.files[kind], load / res.files[kind].name)
    return {
        "truth": res.truth,
        "load": load,
        "feedback": pd.read_parquet(res.files["feedback"]),
        "people": pd.read_parquet(res.files["people"]),
    }


@pytest.fixture
def loaded(store: Store, company: dict[str, Any]) -> Store:
    ingestor = Ingestor(store)
    try:
        summaries = import_dataset(ingestor, company["load"])
    finally:
        ingestor.close()
    assert all(s.rejected == 0 for s in summaries.values())
    return store


def test_planted_share_of_wallet_is_recovered_per_segment(
    loaded: Store, company: dict[str, Any]
) -> None:
    planted = company["truth"]["wallet"]["expected"]
    res = wallet_table(loaded, confidence=0.999)
    frame = res.frame.set_index("segment")
    assert set(frame.index) == set(planted) == set(ORDER)

    # every answer counted, each respondent once (their latest answer), nothing invalid
    fb = company["feedback"]
    answered = fb[fb["brand_rank"].notna()]
    segment = answered["person_id"].map(company["people"].set_index("person_id")["segment"])
    assert res.totals == {
        "answers": len(answered),
        "invalid": 0,
        "respondents": answered["person_id"].nunique(),
    }
    assert frame["n"].to_dict() == answered.groupby(segment)["person_id"].nunique().to_dict()

    for name, p in planted.items():
        row = frame.loc[name]
        assert row["n"] > 300, name
        assert row["wallet_share_low"] <= p["wallet_share"] <= row["wallet_share_high"], (
            name,
            row["wallet_share"],
            p["wallet_share"],
        )
        assert row["first_choice_low"] <= p["first_choice"] <= row["first_choice_high"], name
        brands = np.arange(1, 6)
        probs = np.array([p["brands_used"][str(k)] for k in brands])
        sd = np.sqrt(probs @ (brands - p["mean_brands"]) ** 2)
        assert abs(row["mean_brands"] - p["mean_brands"]) < 3.29 * sd / np.sqrt(row["n"]), name

    # the segments are told apart, in the planted order, at 95 %
    f95 = wallet_table(loaded).frame.set_index("segment").loc[list(ORDER)]
    assert (f95["wallet_share_low"].to_numpy()[:-1] > f95["wallet_share_high"].to_numpy()[1:]).all()
    assert [planted[s]["wallet_share"] for s in ORDER] == sorted(
        (planted[s]["wallet_share"] for s in ORDER), reverse=True
    )
