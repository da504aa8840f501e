"""Feedback text at ingest: redacted before it is stored, originals only when asked, analysed
(or left pending and analysed by the batch job), on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from corridor.domain.corridor_map import CorridorMap
from corridor.ingest.pipeline import Ingestor
from corridor.store import Store
from corridor.text import sentiment
from corridor.text.jobs import analyze_pending, pending_count

TEXTS = [
    "Great checkout, thanks! Write to anna.smith@example.com if you need more.",
    "The parcel was late and broken. Call me on +44 20 7946 0958.",
    None,
    "Could you add a delivery slot in the evening?",
    "Charged twice on card 4111 1111 1111 1111, nobody answers.",
]


def _batch(prefix: str = "f") -> pa.Table:
    n = len(TEXTS)
    return pa.table(
        {
            "feedback_id": [f"{prefix}{i}" for i in range(n)],
            "occurred_at": [f"2025-03-0{i + 1}T10:00:00Z" for i in range(n)],
            "source": ["survey", "review", "survey", "social", "survey"],
            "touchpoint": ["checkout", "home_delivery", "checkout", "home_delivery", "checkout"],
            "text": TEXTS,
        }
    )


def _ingestor(store: Store, cmap: CorridorMap, **kw: bool) -> Iterator[Ingestor]:
    ing = Ingestor(store, **kw)
    ing.load_map(cmap)
    yield ing
    ing.close()


@pytest.fixture
def keeping(store: Store, small_map: CorridorMap) -> Iterator[Ingestor]:
    yield from _ingestor(store, small_map, keep_original_text=True)


@pytest.fixture
def lazy(store: Store, small_map: CorridorMap) -> Iterator[Ingestor]:
    yield from _ingestor(store, small_map, analyze_text=False)


def _texts(store: Store) -> dict[str, str | None]:
    return dict(store.query("SELECT feedback_id, text FROM feedback"))


def test_text_is_redacted_before_it_is_stored(ingestor: Ingestor, store: Store) -> None:
    report = ingestor.ingest("feedback", _batch())
    assert report.inserted == 5
    texts = _texts(store)
    assert texts["f0"] == "Great checkout, thanks! Write to [EMAIL] if you need more."
    assert texts["f1"] == "The parcel was late and broken. Call me on [PHONE]."
    assert texts["f2"] is None
    assert texts["f4"] == "Charged twice on card [CARD], nobody answers."
    assert texts["f3"] == TEXTS[3]  # nothing to redact
    # originals are not kept by default
    assert store.count("feedback_text_original") == 0
    stored = " ".join(t for t in texts.values() if t)
    for secret in ("anna.smith", "7946", "4111"):
        assert secret not in stored


def test_originals_kept_only_when_asked_and_only_where_redaction_changed_the_text(
    keeping: Ingestor, store: Store
) -> None:
    keeping.ingest("feedback", _batch())
    originals = dict(store.query("SELECT feedback_id, text FROM feedback_text_original"))
    assert originals == {"f0": TEXTS[0], "f1": TEXTS[1], "f4": TEXTS[4]}


def test_texts_are_analysed_at_ingest_with_the_default_model(
    ingestor: Ingestor, store: Store
) -> None:
    ingestor.ingest("feedback", _batch())
    rows = {
        r[0]: r[1:]
        for r in store.query(
            "SELECT feedback_id, sentiment, sentiment_label, intent, model FROM text_analysis"
        )
    }
    assert set(rows) == {"f0", "f1", "f3", "f4"}  # the one without text has no row
    redacted = _texts(store)
    for fid, (score, label, _intent, model) in rows.items():
        # the stored (redacted) text is what was scored
        assert score == pytest.approx(sentiment.score(redacted[fid] or ""))
        assert label == sentiment.label(score)
        assert model == sentiment.MODEL
    assert rows["f0"][2] == "praise"
    assert rows["f1"][2] == "complaint"
    assert rows["f3"][2] == "question"
    assert rows["f4"][2] == "complaint"


def test_a_retried_batch_keeps_its_analysis(ingestor: Ingestor, store: Store) -> None:
    ingestor.ingest("feedback", _batch())
    before = store.query("SELECT feedback_id, analyzed_at FROM text_analysis ORDER BY 1")
    again = ingestor.ingest("feedback", _batch())
    assert again.inserted == 0 and again.duplicates == 5
    assert store.query("SELECT feedback_id, analyzed_at FROM text_analysis ORDER BY 1") == before


def test_pending_texts_are_analysed_by_the_batch_job(lazy: Ingestor, store: Store) -> None:
    lazy.ingest("feedback", _batch())
    assert store.count("text_analysis") == 0
    assert pending_count(store) == 4
    seen: list[tuple[int, int]] = []
    report = analyze_pending(store, batch_size=3, progress=lambda d, t: seen.append((d, t)))
    assert report.analysed == 4 and report.pending == 4
    assert seen == [(3, 4), (4, 4)]
    assert pending_count(store) == 0
    assert store.count("text_analysis") == 4
    # nothing left: a second run does nothing
    assert analyze_pending(store).analysed == 0


def test_unknown_model_is_refused_with_the_choices(store: Store) -> None:
    from corridor.text.errors import TextAnalysisError

    with pytest.raises(TextAnalysisError, match="lexicon, minilm"):
        analyze_pending(store, model="bert")


def test_the_server_analyses_texts_in_the_background(store: Store, small_map: CorridorMap) -> None:
    """``text_analysis = background`` (the server's default): the ingest request does not
    score texts; the worker does, right after the batch commits."""
    from fastapi.testclient import TestClient

    from corridor.api.app import create_app
    from corridor.settings import Settings

    app = create_app(Settings(auth="off"), store=store)
    with TestClient(app) as client:
        assert client.put("/api/v1/map", json=small_map.model_dump(exclude_none=True)).is_success
        rows = _batch().to_pylist()
        r = client.post("/api/v1/feedback", json=rows)
        assert r.status_code in (200, 201), r.text
        assert app.state.text_worker.wait_idle(timeout=30)
        assert pending_count(store) == 0
        assert store.count("text_analysis") == 4
    inline = create_app(Settings(auth="off", text_analysis="inline"), store=store)
    assert inline.state.text_worker is None and inline.state.ingestor.analyze_text


def test_the_worker_analyses_the_texts_handed_over_and_looks_for_the_rest(
    store: Store, small_map: CorridorMap
) -> None:
    """The background worker analyses the texts of the batches the ingest hands it, without
    looking for pending texts (a search that reads the whole feedback and text_analysis
    tables); it looks for them at start, on a poke without a batch, after a failed round, and
    every ``interval`` seconds: texts left pending by a crash or by another process."""
    from corridor.text.worker import TextWorker

    with_texts = sum(1 for t in TEXTS if t)
    ing = Ingestor(store, analyze_text=False)
    ing.load_map(small_map)
    other = Ingestor(store, analyze_text=False)  # another process's: hands nothing over
    other.load_map(small_map)
    worker = TextWorker(store, interval=3600.0, settle=0.0)
    try:
        ing.ingest("feedback", _batch("a"))  # before the worker ran: left pending (a crash)
        ing.on_pending_text = worker.poke
        worker.start()
        assert worker.wait_idle(timeout=30) and pending_count(store) == 0  # found at start
        other.ingest("feedback", _batch("b"))
        ing.ingest("feedback", _batch("c"))
        assert worker.wait_idle(timeout=30)
        # the batch handed over is analysed; the other process's waits for the next search
        assert pending_count(store) == with_texts
        assert store.count("text_analysis") == 2 * with_texts
        worker.poke()
        assert worker.wait_idle(timeout=30) and pending_count(store) == 0
        assert worker.analysed == store.count("text_analysis") == 3 * with_texts
    finally:
        worker.stop()
        ing.close()
        other.close()


def test_cli_import_analyses_afterwards_or_leaves_pending(
    store_url: str, store: Store, small_map: CorridorMap, tmp_path: Path
) -> None:
    import pyarrow.csv as pacsv
    from typer.testing import CliRunner

    from corridor.cli import app

    ing = Ingestor(store)
    ing.load_map(small_map)
    ing.close()
    path = tmp_path / "feedback.csv"
    pacsv.write_csv(_batch(), path)
    runner = CliRunner()
    r = runner.invoke(
        app,
        ["import", str(path), "--kind", "feedback", "--store", store_url],
        env={"CORRIDOR_TEXT_ANALYSIS": "off"},
    )
    assert r.exit_code == 0, r.output
    assert pending_count(store) == 4
    pacsv.write_csv(_batch("g"), path)
    r = runner.invoke(app, ["import", str(path), "--kind", "feedback", "--store", store_url])
    assert r.exit_code == 0, r.output
    assert pending_count(store) == 0  # background mode: analysed after the import
    assert store.count("text_analysis") == 8


def test_a_batch_analyses_each_distinct_text_once_and_answers_each_row_alike():
    """Repeated texts (short answers, template-made ones) are analysed once per batch: every
    row still gets exactly the analysis the text gets alone, in the batch's order."""
    from datetime import UTC, datetime

    from corridor.text.analyze import analyze_texts

    texts = ["Great service!", "The courier was late again, I'm angry", "ok", "Great service!",
             "Why is the invoice wrong?", "ok", "Great service!"]  # fmt: skip
    ids = [f"f{i}" for i in range(len(texts))]
    now = datetime(2025, 3, 1, tzinfo=UTC)
    batch = analyze_texts(ids, texts, now=now).to_pylist()
    pairs = zip(ids, texts, strict=True)
    alone = [analyze_texts([i], [t], now=now).to_pylist()[0] for i, t in pairs]
    assert batch == alone
    assert len({(r["sentiment"], r["intent"], r["emotions"]) for r in batch}) == 4
    assert analyze_texts([], [], now=now).num_rows == 0
