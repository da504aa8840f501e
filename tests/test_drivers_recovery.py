"""Recovery of the planted churn drivers: on a simulated company the touch points whose gaps
the simulator made drive churn rank as the top drivers of churn.

The simulator (``truth["churn"]``) sets each customer's monthly churn hazard by
``logit h = α + Σ β_k g_k`` over the latest latent gap ``g_k`` at support_call (β = −0.35),
home_delivery (−0.30) and invoice (−0.25); no other touch point matters. The analysis sees
only what a company would: survey gaps (10–30 % of those contacts are rated), cancellations.

Why 20,000 customers: a support call is rated by ~20 % of callers, so few customers have a
support-call gap at all. Measured (seeds 1–5 and 7, 12 months): with 10,000 customers the
three planted drivers were the top three in 3 of 5 seeds (seed 1 put repair_visit third,
seed 4 support_chat); with 20,000 in all of them. ~30 s of CPU: simulate, import, analyse.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from corridor.analytics.drivers import driver_table
from corridor.ingest.files import import_dataset
from corridor.ingest.pipeline import Ingestor
from corridor.simulate import simulate
from corridor.store import open_store

pytestmark = pytest.mark.slow


def test_planted_churn_drivers_rank_top_three(tmp_path: Path):
    result = simulate(20_000, 12, 7, tmp_path / "data", fmt="parquet")
    planted = {d["touchpoint"] for d in result.truth["churn"]["drivers"]}
    assert planted == {"support_call", "home_delivery", "invoice"}
    store = open_store(f"duckdb:///{tmp_path / 'corridor.duckdb'}")
    try:
        ingestor = Ingestor(store)
        try:
            import_dataset(ingestor, tmp_path / "data")
        finally:
            ingestor.close()
        res = driver_table(store, outcome="churn", bootstrap=100)
    finally:
        store.close()
    f = res.frame
    assert set(f["driver"].head(3)) == planted, f[["driver", "weight", "r"]].head(6)
    top = f[f["driver"].isin(planted)]
    assert (top["r"] < 0).all()  # a worse gap, more churn
    assert (top["weight_low"] > 0).all()
    # the planted drivers carry most of what the model explains
    assert top["share"].sum() > 0.6
    assert 0.5 * res.n < f["n_persons"].iloc[0] <= res.n
