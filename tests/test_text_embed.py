"""The optional MiniLM model (``text`` extra). Skipped, with the reason, where the extra is not
installed (CI installs ``.[dev,validation]`` only); the refusal without it is always tested.

Cross-validated figures of the shipped head (``benchmarks/sentiment_validation.py``, 10-fold,
corpora pooled and weighted equally): tweets r 0.8821 / macro-F1 0.7201 (VADER 0.8722 /
0.7024); movies r 0.6585 / F1 0.4818 (VADER 0.4274 / 0.4220).
"""

from __future__ import annotations

import pytest

from corridor.text import embed
from corridor.text.analyze import analyze_texts
from corridor.text.errors import ModelUnavailableError

needs_extra = pytest.mark.skipif(
    not embed.available(), reason="the optional 'text' extra (sentence-transformers) is absent"
)


def test_minilm_without_the_extra_is_refused_with_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(embed, "available", lambda: False)
    embed._encoder.cache_clear()
    with pytest.raises(ModelUnavailableError, match=r"corridor\[text\]"):
        analyze_texts(["f1"], ["Great service"], model="minilm")
    embed._encoder.cache_clear()


def test_the_head_ships_with_the_package() -> None:
    coef, intercept = embed.head()
    assert coef.shape == (386,)  # 384 embedding dimensions + 2 lexicon features
    assert -4 < intercept < 4


@needs_extra
def test_minilm_scores_and_rows() -> None:
    texts = [
        "Absolutely wonderful service, thank you so much!",
        "Terrible. The parcel never arrived and nobody answers.",
        "The parcel arrived on Tuesday.",
    ]
    s = embed.scores(texts)
    assert s[0] > 0.3 and s[1] < -0.3 and abs(s[2]) < s[0]
    rows = analyze_texts(["a", "b", "c"], texts, model="minilm")
    assert rows.column("model").to_pylist() == [embed.MODEL] * 3
    assert rows.column("sentiment_label").to_pylist()[:2] == ["positive", "negative"]


@needs_extra
def test_embedding_themes_recover_planted_topics() -> None:
    from corridor.text.themes import ThemeAssigner, discover
    from test_text_themes import _purity, planted

    data = planted(40, seed=1)
    drafts = discover([t for _, t in data], k=3, method="embeddings")
    assert {d.model for d in drafts} == {"embeddings"}
    assigner = ThemeAssigner([(d.theme_id, d.model, d.model_data) for d in drafts])
    fresh = [x for x in planted(20, seed=2) if x not in data]
    assigned = assigner.assign([t for _, t in fresh])
    assert _purity(assigned, [topic for topic, _ in fresh]) >= 0.9
