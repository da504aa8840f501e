"""Themes: discovery recovers planted topics; new texts are assigned incrementally; an analyst's
rename and merge persist (also across rediscovery); theme figures carry n and intervals."""

from __future__ import annotations

import itertools
import random

import pyarrow as pa
import pytest
from statsmodels.stats.proportion import proportion_confint

from corridor.analytics.feedback.text import theme_summary, theme_table
from corridor.ingest.pipeline import Ingestor
from corridor.store import Store
from corridor.text.errors import TextAnalysisError
from corridor.text.jobs import discover_themes
from corridor.text.themes import ThemeAssigner, discover
from corridor.text.themestore import list_themes, merge_themes, rename_theme

# three planted topics, each a pool of subjects and problems; texts mix in neutral filler
TOPICS = {
    "delivery": (
        ["the parcel", "my delivery", "the courier", "the package", "the driver"],
        ["arrived late", "missed the delivery slot", "left the parcel outside",
         "never showed up at my door", "delivered to the wrong address"],
    ),
    "billing": (
        ["my invoice", "the bill", "my account", "the payment", "my card"],
        ["was charged twice", "shows an incorrect amount", "still waits for the refund",
         "has a hidden fee", "was overcharged again"],
    ),
    "app": (
        ["the app", "the mobile app", "the login screen", "the new update", "the app version"],
        ["crashes on startup", "freezes when I log in", "logs me out constantly",
         "deleted my saved basket", "will not load on my phone"],
    ),
}  # fmt: skip
FILLER = ["", " Not happy.", " Please fix this.", " Third time now.", " Thanks anyway."]


def planted(n_per_topic: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for topic, (subjects, problems) in TOPICS.items():
        combos = list(itertools.product(subjects, problems, FILLER))
        for s, p, f in rng.sample(combos, n_per_topic):
            out.append((topic, f"{s.capitalize()} {p}.{f}"))
    rng.shuffle(out)
    return out


def _purity(drafts_assign: list[str | None], topics: list[str]) -> float:
    by_theme: dict[str | None, list[str]] = {}
    for theme, topic in zip(drafts_assign, topics, strict=True):
        by_theme.setdefault(theme, []).append(topic)
    majority = sum(max(ts.count(t) for t in set(ts)) for ts in by_theme.values())
    return majority / len(topics)


def test_discovery_recovers_planted_topics_and_assigns_new_texts() -> None:
    data = planted(60, seed=1)
    drafts = discover([t for _, t in data], k=3, min_df=2)
    assert len(drafts) == 3
    assert sum(d.size for d in drafts) == len(data)
    assigner = ThemeAssigner([(d.theme_id, d.model, d.model_data) for d in drafts])
    # texts never seen in discovery land with their topic
    fresh = planted(40, seed=2)
    fresh = [(topic, text) for topic, text in fresh if (topic, text) not in data]
    assigned = assigner.assign([t for _, t in fresh])
    assert None not in assigned
    assert _purity(assigned, [topic for topic, _ in fresh]) >= 0.95
    # each theme's keywords name its topic
    words = {
        "delivery": {"parcel", "delivery", "courier", "package", "driver"},
        "billing": {"invoice", "bill", "charged", "refund", "payment", "card", "account"},
        "app": {"app", "login", "update", "mobile", "crashes"},
    }
    found = {
        topic
        for d in drafts
        for topic, ws in words.items()
        if len(ws & set(" ".join(d.keywords).split())) >= 2
    }
    assert found == set(TOPICS)
    # a text sharing no term with any theme has none
    assert assigner.assign(["Lorem ipsum dolor."]) == [None]


def test_discovery_refuses_too_few_texts_or_bad_k() -> None:
    with pytest.raises(TextAnalysisError, match="at least"):
        discover(["a text"] * 5, k=3)
    with pytest.raises(TextAnalysisError, match="2…100"):
        discover(["a text"] * 500, k=1)
    with pytest.raises(TextAnalysisError, match="unknown theme method"):
        discover(["a text"] * 500, k=3, method="lda")


def _load(ingestor: Ingestor, data: list[tuple[str, str]], prefix: str = "f") -> None:
    tps = ["checkout", "home_delivery", "support_call"]
    n = len(data)
    ingestor.ingest(
        "feedback",
        pa.table(
            {
                "feedback_id": [f"{prefix}{i:04d}" for i in range(n)],
                "occurred_at": [f"2025-0{1 + i % 3}-1{i % 10}T08:00:00Z" for i in range(n)],
                "source": ["survey"] * n,
                "touchpoint": [tps[i % 3] for i in range(n)],
                "text": [t for _, t in data],
            }
        ),
    )


def test_themes_persist_rename_merge_and_survive_rediscovery(
    ingestor: Ingestor, store: Store
) -> None:
    data = planted(60, seed=3)
    _load(ingestor, data)
    saved = discover_themes(store, k=3)
    assert [t.theme_id for t in list_themes(store)] == [t.theme_id for t in saved]
    # every stored text was assigned
    assert store.query("SELECT count(*) FROM text_analysis WHERE theme_id IS NULL")[0][0] == 0
    delivery = next(t for t in saved if {"parcel", "delivery", "courier"} & set(t.keywords))
    renamed = rename_theme(store, delivery.theme_id, "Late and lost parcels")
    assert renamed.label == "Late and lost parcels" and renamed.renamed
    # new feedback is assigned to the existing themes as it arrives
    _load(ingestor, planted(10, seed=4), prefix="g")
    rows = store.query(
        "SELECT a.theme_id FROM text_analysis a WHERE a.feedback_id LIKE 'g%' "
        "AND a.theme_id IS NULL"
    )
    assert rows == []
    # merge: the other two become one; counts follow
    others = [t.theme_id for t in saved if t.theme_id != delivery.theme_id]
    merged = merge_themes(store, [others[1]], into=others[0], label="Money and app")
    assert merged.label == "Money and app"
    summary = theme_summary(store)
    assert {r["theme_label"] for r in summary} == {"Late and lost parcels", "Money and app"}
    assert sum(r["n"] for r in summary) == store.count("text_analysis")
    # rediscovery retires the old themes but keeps the analyst's name for the delivery theme
    again = discover_themes(store, k=3)
    assert "Late and lost parcels" in {t.label for t in again}
    assert len(list_themes(store)) == 3
    assert len(list_themes(store, include_retired=True)) == 6
    with pytest.raises(TextAnalysisError, match="no theme"):
        rename_theme(store, "th_nope", "x")
    with pytest.raises(TextAnalysisError, match="at least one theme"):
        merge_themes(store, [again[0].theme_id], into=again[0].theme_id)


def test_theme_table_shares_have_wilson_intervals(ingestor: Ingestor, store: Store) -> None:
    """Shares per touch point against statsmodels' ``proportion_confint(method="wilson")``."""
    _load(ingestor, planted(40, seed=5))
    discover_themes(store, k=3)
    result = theme_table(store, by=["touchpoint"], confidence=0.9)
    frame = result.frame
    assert result.n == store.count("text_analysis")
    for row in frame.itertuples():
        low, high = proportion_confint(row.n, row.group_n, alpha=0.1, method="wilson")
        assert row.share == pytest.approx(row.n / row.group_n)
        assert (row.share_low, row.share_high) == pytest.approx((low, high))
    # per touch point the theme counts add up to the touch point's texts
    sums = frame.groupby("touchpoint")["n"].sum()
    totals = frame.groupby("touchpoint")["group_n"].first()
    assert (sums == totals).all()
    by_month = theme_table(store, by=["touchpoint"], period="month")
    assert {"delta_share", "p_value_share", "period_label"} <= set(by_month.frame.columns)
