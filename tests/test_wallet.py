"""Share of wallet: the Wallet Allocation Rule by hand, per segment on both engines, bad
answers counted, and the API and CLI doors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from scipy import stats as sp
from statsmodels.stats.proportion import proportion_confint
from typer.testing import CliRunner

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.customers.wallet import wallet_share, wallet_table
from corridor.api.app import create_app
from corridor.cli import app as cli_app
from corridor.settings import Settings


def test_wallet_allocation_rule_by_hand():
    """Keiningham et al. (2011, HBR 89(10)): share = (1 − rank/(N+1)) · 2/N. For N = 3 the
    brands ranked 1, 2, 3 get (1 − 1/4)·2/3 = 1/2, (1 − 2/4)·2/3 = 1/3 and (1 − 3/4)·2/3 = 1/6;
    a sole brand gets everything; one customer's shares always sum to 1."""
    assert wallet_share(np.array([1, 2, 3]), 3) == pytest.approx([1 / 2, 1 / 3, 1 / 6])
    assert wallet_share(1, 1) == 1.0
    for n in range(1, 12):
        assert wallet_share(np.arange(1, n + 1), n).sum() == pytest.approx(1.0)


ANSWERS = [
    # person, segment, when, rank, brands
    ("a", "consumer", "2025-01-01", "2", "3"),
    ("a", "consumer", "2025-02-01", 1, 3),  # latest: counts (a JSON number this time)
    ("b", "consumer", "2025-01-05", "3", "3"),
    ("c", "consumer", "2025-01-06", "1", "2"),
    ("d", "business", "2025-01-07", "1", "1"),
    ("e", "business", "2025-01-08", "2", "4"),
    ("f", "business", "2025-01-09", "5", "2"),  # rank above N: left out, counted
    ("g", "business", "2025-01-10", "first", "2"),  # not a number: left out, counted
]


@pytest.fixture
def loaded(ingestor, store):
    people = sorted({(p, s) for p, s, *_ in ANSWERS})
    ingestor.ingest(
        "people",
        pa.table(
            {
                "person_id": [p for p, _ in people],
                "kind": ["customer"] * len(people),
                "segment": [s for _, s in people],
            }
        ),
    )
    rows = [
        {
            "feedback_id": f"w{i}",
            "person_id": p,
            "occurred_at": f"{when}T09:00:00Z",
            "source": "survey",
            "brand_rank": rank,  # extra columns: kept as attributes
            "brands_used": brands,
        }
        for i, (p, _s, when, rank, brands) in enumerate(ANSWERS)
    ]
    rows.append(  # a survey without the two questions is not an answer
        {"feedback_id": "plain", "person_id": "a", "occurred_at": "2025-03-01", "source": "survey"}
    )
    for row in rows:
        report = ingestor.ingest("feedback", pa.Table.from_pylist([row]))
        assert report.rejected == 0, report
    return store


def test_shares_per_segment(loaded):
    """consumer: a (latest 1 of 3) 1/2, b (3 of 3) 1/6, c (1 of 2) 2/3; business: d (1 of 1)
    1, e (2 of 4) (1 − 2/5)·2/4 = 0.3. Intervals: Student t on the mean share (scipy) and
    Wilson for the share ranking us first (statsmodels)."""
    res = wallet_table(loaded)
    f = res.frame.set_index("segment")
    consumer = np.array([1 / 2, 1 / 6, 2 / 3])
    assert f.loc["consumer", "n"] == 3
    assert f.loc["consumer", "wallet_share"] == pytest.approx(consumer.mean())
    lo, hi = sp.t.interval(0.95, 2, loc=consumer.mean(), scale=sp.sem(consumer))
    assert f.loc["consumer", "wallet_share_low"] == pytest.approx(max(lo, 0.0))
    assert f.loc["consumer", "wallet_share_high"] == pytest.approx(min(hi, 1.0))
    assert f.loc["consumer", "first_choice"] == pytest.approx(2 / 3)
    assert (f.loc["consumer", "first_choice_low"], f.loc["consumer", "first_choice_high"]) == (
        pytest.approx(proportion_confint(2, 3, 0.05, "wilson"))
    )
    assert f.loc["consumer", "mean_brands"] == pytest.approx(8 / 3)
    assert f.loc["business", "wallet_share"] == pytest.approx((1.0 + 0.3) / 2)
    assert f.loc["business", "n"] == 2
    assert res.totals == {"answers": 8, "invalid": 2, "respondents": 5}
    assert res.n == 5
    whole = wallet_table(loaded, by=None, since="2025-01-06")
    assert whole.frame["n"].tolist() == [4]  # a (Feb), c, d, e; b answered before the range
    assert whole.frame["wallet_share"].iloc[0] == pytest.approx(np.mean([1 / 2, 2 / 3, 1, 0.3]))


def test_errors_api_and_cli(loaded, store_url):
    with pytest.raises(AnalyticsQueryError, match="no period"):
        wallet_table(loaded, period="month")
    with TestClient(create_app(Settings(auth="off"), store=loaded)) as c:
        r = c.get("/api/v1/wallet", params={"segment": "business"})
        assert r.status_code == 200, r.text
        assert [row["segment"] for row in r.json()["rows"]] == ["business"]
        assert c.get("/api/v1/wallet", params={"by": "planet"}).status_code == 422
    loaded.close()
    r = CliRunner().invoke(
        cli_app, ["wallet", "--format", "json", "--store", store_url], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["summary"]["invalid"] == 2
