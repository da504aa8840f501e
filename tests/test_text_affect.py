"""Intent and emotion facets: scored on the hand-labelled set written for Corridor and on the
intents the simulator planted.

``tests/data/text/labelled.csv``: 318 customer texts (delivery, billing, support calls, stores,
app, partners, returns, renewal; reviews, social posts, transcripts, field notes; negation,
sarcasm and mixed texts), each labelled by hand with one intent, its emotion facets and a
3-class sentiment. ``split`` = ``dev`` (200 texts; the rules were written against these) or
``holdout`` (118 texts; committed before the rules, scored but never tuned on).

Holdout figures of the committed rules (sklearn ``classification_report``):
intent accuracy 0.881, macro-F1 0.894 (complaint 0.882, praise 0.806, suggestion 0.941,
question 0.947); emotion facets F1: anger 0.53, frustration 0.55, disappointment 0.48,
worry 0.67, joy 0.54, trust 0.67, surprise 0.80 (micro 0.56). Dev: intent macro-F1 0.973.
The tests pin these as floors a little below the measured values.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import accuracy_score, f1_score

from corridor.simulate.corridor_map import TP_KEYS
from corridor.simulate.text import SENTIMENTS, SOURCES, build_text
from corridor.text.affect import EMOTIONS, INTENTS, affect, affect_many

LABELLED = Path(__file__).parent / "data" / "text" / "labelled.csv"


def _rows(split: str | None = None) -> list[dict[str, str]]:
    with LABELLED.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if split is None or r["split"] == split]


def test_the_labelled_set_is_large_varied_and_well_formed() -> None:
    rows = _rows()
    assert len(rows) >= 300
    assert len({r["text"] for r in rows}) == len(rows)
    assert {r["split"] for r in rows} == {"dev", "holdout"}
    assert len(_rows("holdout")) >= 100
    for r in rows:
        assert r["intent"] in INTENTS
        assert r["sentiment"] in ("positive", "negative", "neutral")
        assert set(filter(None, r["emotions"].split(";"))) <= set(EMOTIONS)
    for split in ("dev", "holdout"):
        counts = {i: sum(r["intent"] == i for r in _rows(split)) for i in INTENTS}
        assert min(counts.values()) >= 15, counts
        facets = {e: sum(e in r["emotions"].split(";") for r in _rows(split)) for e in EMOTIONS}
        assert min(facets.values()) >= 4, facets


def _intent_scores(split: str) -> tuple[float, float]:
    rows = _rows(split)
    pred = [a.intent for a in affect_many([r["text"] for r in rows])]
    gold = [r["intent"] for r in rows]
    return accuracy_score(gold, pred), f1_score(gold, pred, average="macro")


def test_intent_on_the_holdout() -> None:
    accuracy, macro_f1 = _intent_scores("holdout")
    assert accuracy == pytest.approx(0.881, abs=0.01)
    assert macro_f1 == pytest.approx(0.894, abs=0.01)


def test_intent_on_dev_is_not_far_above_holdout() -> None:
    """The dev figure is the optimistic one (rules were written on it); reported beside it."""
    _, dev = _intent_scores("dev")
    _, holdout = _intent_scores("holdout")
    assert dev >= holdout
    assert dev - holdout < 0.15


def test_emotion_facets_on_the_holdout() -> None:
    rows = _rows("holdout")
    found = affect_many([r["text"] for r in rows])
    gold = np.array([[e in r["emotions"].split(";") for e in EMOTIONS] for r in rows])
    pred = np.array([[e in a.emotions for e in EMOTIONS] for a in found])
    micro = f1_score(gold, pred, average="micro")
    per = dict(zip(EMOTIONS, f1_score(gold, pred, average=None), strict=True))
    assert micro == pytest.approx(0.56, abs=0.03)
    assert min(per.values()) >= 0.45, per


@pytest.mark.parametrize(
    ("text", "intent", "emotions"),
    [
        ("Why do you keep charging me twice?! Unacceptable.", "complaint", {"anger"}),
        ("Could you tell me when the store opens?", "question", set()),
        ("It would be great to have a dark mode.", "suggestion", set()),
        ("Not happy. The parcel is still missing.", "complaint", {"frustration"}),
        ("I am not disappointed at all, great job!", "praise", {"joy"}),
        ("Great, another delay.", "complaint", {"frustration"}),
        ("Five stars, would order again.", "praise", {"joy"}),
        ("I could not be happier with the service.", "praise", set()),
        ("I am worried my card details were stolen.", "complaint", {"worry"}),
    ],
)
def test_rules_on_examples(text: str, intent: str, emotions: set[str]) -> None:
    a = affect(text)
    assert a.intent == intent
    assert emotions <= set(a.emotions), a.emotions
    if "not disappointed" in text:
        assert "disappointment" not in a.emotions  # negated cue


def test_the_intents_the_simulator_planted_are_recovered() -> None:
    """The simulator writes each text from a sentiment it planted (complaint, praise,
    suggestion, question: ``corridor.simulate.text``); the rules recover it (measured with
    seed 5: 0.94, 0.97, 0.83, 0.92)."""
    rng = np.random.default_rng(5)
    n = 4000
    source = rng.integers(0, len(SOURCES), n)
    tp = rng.integers(0, len(TP_KEYS), n)
    mood = rng.integers(0, 4, n).astype(np.int8)
    texts = build_text(source, tp, mood, pa.nulls(n, pa.string()), rng).to_pylist()
    found = np.array([a.intent for a in affect_many(texts)])
    floors = {"complaint": 0.9, "praise": 0.93, "suggestion": 0.78, "question": 0.88}
    for m, name in enumerate(SENTIMENTS):
        recall = float(np.mean(found[mood == m] == name))
        assert recall >= floors[name], (name, recall)
