"""Reads over stored text analysis, checked against scipy/statsmodels on both engines, and
against what the simulator planted.

References: Student-t interval — ``scipy.stats.t.interval``; Wilson — ``statsmodels``
``proportion_confint(method="wilson")``; Newcombe's hybrid score interval —
``statsmodels`` ``confint_proportions_2indep(method="newcomb")``; Welch — ``scipy.stats.ttest_ind
(equal_var=False)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as sp
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from corridor.analytics.core.errors import AnalyticsQueryError
from corridor.analytics.feedback.text import (
    intent_table,
    recent_comments,
    sentiment_table,
    source_sentiment,
)
from corridor.ingest.files import import_dataset
from corridor.ingest.pipeline import Ingestor
from corridor.simulate import simulate
from corridor.store import Store, open_store

GOOD = ["Great service, thank you!", "Lovely staff and quick delivery.", "Perfect, no complaints."]
BAD = ["Terrible, the parcel was late.", "Awful support, nobody helps.", "Broken on arrival."]
MEH = ["The parcel came on Tuesday.", "I ordered a lamp."]


@pytest.fixture
def texts(ingestor: Ingestor, store: Store) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 120
    tps = ["checkout", "home_delivery"]
    src = rng.choice(["survey", "review", "social"], n, p=[0.6, 0.2, 0.2])
    tp = rng.choice(tps, n)
    pool = [GOOD, BAD, MEH]
    # unsolicited texts are more often bad, as in life
    kind = [rng.choice(3, p=[0.2, 0.6, 0.2] if s != "survey" else [0.5, 0.2, 0.3]) for s in src]
    text = [pool[k][rng.integers(0, len(pool[k]))] for k in kind]
    ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": [f"f{i:03d}" for i in range(n)],
                "occurred_at": [f"2025-0{1 + i % 4}-1{i % 10}T09:00:00Z" for i in range(n)],
                "source": src.tolist(),
                "touchpoint": tp.tolist(),
                "text": text,
            }
        ),
    )
    rows = store.query(
        "SELECT f.feedback_id, f.touchpoint, f.source, a.sentiment, a.sentiment_label, a.intent "
        "FROM feedback f JOIN text_analysis a ON a.feedback_id = f.feedback_id"
    )
    return pd.DataFrame(rows, columns=["id", "touchpoint", "source", "s", "label", "intent"])


def test_sentiment_table_against_scipy_and_statsmodels(store: Store, texts: pd.DataFrame) -> None:
    result = sentiment_table(store, by=["touchpoint"], confidence=0.9)
    assert result.n == len(texts)
    for row in result.frame.itertuples():
        x = texts.loc[texts.touchpoint == row.touchpoint, "s"].to_numpy()
        labels = texts.loc[texts.touchpoint == row.touchpoint, "label"]
        assert row.n == len(x)
        assert row.mean_sentiment == pytest.approx(x.mean())
        low, high = sp.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=sp.sem(x))
        assert (row.mean_sentiment_low, row.mean_sentiment_high) == pytest.approx((low, high))
        k = int((labels == "negative").sum())
        assert (row.share_negative_low, row.share_negative_high) == pytest.approx(
            proportion_confint(k, len(x), alpha=0.1, method="wilson")
        )


def test_source_sentiment_negativity_skew_against_references(
    store: Store, texts: pd.DataFrame
) -> None:
    result = source_sentiment(store, by=None)
    row = result.to_records()[0]
    sol = texts[texts.source == "survey"]
    uns = texts[texts.source.isin(["review", "social"])]
    assert row["solicited_n"] == len(sol) and row["unsolicited_n"] == len(uns)
    k_u, k_s = int((uns.label == "negative").sum()), int((sol.label == "negative").sum())
    assert row["negativity_skew"] == pytest.approx(k_u / len(uns) - k_s / len(sol))
    low, high = confint_proportions_2indep(k_u, len(uns), k_s, len(sol), method="newcomb")
    assert (row["negativity_skew_low"], row["negativity_skew_high"]) == pytest.approx((low, high))
    welch = sp.ttest_ind(uns.s, sol.s, equal_var=False)
    assert row["delta_mean_sentiment"] == pytest.approx(uns.s.mean() - sol.s.mean())
    assert row["p_value_mean_sentiment"] == pytest.approx(welch.pvalue)
    assert row["negativity_skew"] > 0  # planted above
    with pytest.raises(AnalyticsQueryError, match="leave 'source' out"):
        source_sentiment(store, by=["source"])


def test_intents_shares_and_comments(store: Store, texts: pd.DataFrame) -> None:
    frame = intent_table(store, by=None).frame
    assert int(frame["n"].iloc[0]) == len(texts)
    for intent in ("complaint", "praise"):
        k = int((texts.intent == intent).sum())
        assert int(frame[f"n_{intent}"].iloc[0]) == k
        assert frame[f"share_{intent}"].iloc[0] == pytest.approx(k / len(texts))
    rows = recent_comments(store, "checkout", limit=7)
    assert len(rows) == 7 and all(r["touchpoint"] == "checkout" for r in rows)
    assert [r["occurred_at"] for r in rows] == sorted(
        (r["occurred_at"] for r in rows), reverse=True
    )
    scoped = recent_comments(store, None, 50, {"source": ["review"]})
    assert scoped and {r["source"] for r in scoped} == {"review"}
    with pytest.raises(AnalyticsQueryError, match="limit"):
        recent_comments(store, None, 0)


# -- recovery of what the simulator planted ---------------------------------------------------


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root: Path = tmp_path_factory.mktemp("voice")
    simulate(3000, 6, 11, root / "data", fmt="parquet")
    store = open_store(f"duckdb:///{root / 'c.duckdb'}")
    ing = Ingestor(store)
    try:
        import_dataset(ing, root / "data")
    finally:
        ing.close()
    yield store
    store.close()


def _facts(store: Store) -> pd.DataFrame:
    rows: list[Any] = store.query(
        "SELECT f.expectation, f.experience, f.source, a.sentiment, a.intent, f.text "
        "FROM feedback f JOIN text_analysis a ON a.feedback_id = f.feedback_id"
    )
    return pd.DataFrame(rows, columns=["exp", "xp", "source", "s", "intent", "text"])


def test_text_follows_the_planted_gap(company: Store) -> None:
    """The simulator writes a complaint when experience falls 2+ points below expectation
    (unless the experience is 9+) and praise when it beats it (corridor.simulate.text): the
    stored sentiment and intents follow the gap."""
    df = _facts(company).dropna(subset=["exp", "xp"])
    assert len(df) > 1000
    gap = df.xp - df.exp
    r = sp.pearsonr(gap, df.s)
    assert r.statistic > 0.3 and r.pvalue < 1e-10
    bad = df[(gap <= -2) & (df.xp < 9)]
    good = df[(gap >= 1) & (df.xp >= 7)]
    assert (bad.intent == "complaint").mean() > 0.8
    assert (good.intent == "praise").mean() > 0.8
    # no PII left in stored text (the simulator appends e-mails and phones to some)
    assert not df.text.str.contains("@example", regex=False).any()


def test_unsolicited_feedback_is_darker_as_planted(company: Store) -> None:
    """Reviews and social posts are written mostly after a bad gap (corridor.simulate.feedback):
    the negativity skew of text sentiment is positive and significant."""
    row = source_sentiment(company, by=None).to_records()[0]
    assert row["unsolicited_n"] > 100
    assert row["negativity_skew"] > 0.1
    assert row["negativity_skew_low"] > 0 and row["p_value_skew"] < 1e-6
