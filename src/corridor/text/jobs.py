"""Batch jobs over stored feedback text: analyse what is pending, discover and assign themes.

Feedback text is *pending* while it has no ``text_analysis`` row (ingest with
``analyze_text_on_ingest`` off, or a store filled before schema v5), or, with ``redo``, when
its row was made by another model. Jobs read and write in batches (keyset pagination on
``feedback_id``) and report progress through ``progress(done, total)``, so the CLI can draw a
bar and a job stopped half-way resumes where it left off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from corridor.loop import batch_rows, text_rules
from corridor.privacy.requests import ran_since
from corridor.store.base import Store
from corridor.text.analyze import analyze_texts, check_model, model_name
from corridor.text.errors import TextAnalysisError
from corridor.text.themes import ThemeAssigner, current_assigner, discover
from corridor.text.themestore import StoredTheme, save_themes

__all__ = [
    "AnalyzeReport",
    "analyze_handed",
    "analyze_pending",
    "assign_themes",
    "discover_themes",
    "pending_count",
]

Progress = Callable[[int, int], None]
BATCH = 5_000


@dataclass
class AnalyzeReport:
    model: str
    pending: int
    analysed: int
    themed: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "seconds": round(self.seconds, 3),
            "texts_per_second": round(self.analysed / self.seconds, 1) if self.seconds else None,
        }


def _pending_where(redo: bool) -> str:
    base = "f.text IS NOT NULL AND f.text <> ''"
    return (
        f"{base} AND (a.feedback_id IS NULL OR a.model <> ?)"
        if redo
        else (f"{base} AND a.feedback_id IS NULL")
    )


_FROM = "FROM feedback f LEFT JOIN text_analysis a ON a.feedback_id = f.feedback_id"


def pending_count(store: Store, model: str = "lexicon", *, redo: bool = False) -> int:
    """Texts the job would analyse."""
    params = (model_name(model),) if redo else ()
    rows = store.query(f"SELECT count(*) {_FROM} WHERE {_pending_where(redo)}", params)
    return int(rows[0][0])


def analyze_pending(
    store: Store,
    *,
    model: str = "lexicon",
    redo: bool = False,
    batch_size: int = BATCH,
    progress: Progress | None = None,
) -> AnalyzeReport:
    """Analyse every pending text (with ``redo``: every text not analysed by ``model``) and
    assign it to the current themes."""
    check_model(model)
    name = model_name(model)
    total = pending_count(store, model, redo=redo)
    started = time.perf_counter()
    done = themed = 0
    last = ""
    params_tail: tuple[Any, ...] = (name,) if redo else ()
    assigner = _assigner(store)
    while done < total:
        with store.transaction() as tx:
            rows = tx.fetchall(
                f"SELECT f.feedback_id, f.text {_FROM} WHERE {_pending_where(redo)} "
                "AND f.feedback_id > ? ORDER BY f.feedback_id LIMIT ?",
                (*params_tail, last, batch_size),
            )
        if not rows:
            break
        ids = [r[0] for r in rows]
        texts = [r[1] for r in rows]
        themes = assigner.assign(texts) if assigner is not None else None
        table = analyze_texts(ids, texts, model=model, theme_ids=themes)
        with store.transaction() as tx:
            tx.stage("_text_analysis", table)
            tx.insert(
                "text_analysis",
                "_text_analysis",
                table.schema.names,
                key=["feedback_id"],
                update=[c for c in table.schema.names if c != "feedback_id"],
            )
            # text rules (a complaint, a theme) fire with the analysis, in its transaction
            text_rules.evaluate_texts(tx, ids, datetime.now(UTC), analysis=table)
        done += len(rows)
        themed += sum(t is not None for t in themes or ())
        last = ids[-1]
        if progress:
            progress(done, total)
    return AnalyzeReport(name, total, done, themed, time.perf_counter() - started)


def analyze_handed(
    store: Store,
    texts: pa.Table,
    *,
    known: pa.Table | None = None,
    model: str = "lexicon",
    handed_at: datetime | None = None,
) -> int:
    """Analyse the texts of feedback records just committed (``texts``: ``feedback_id``,
    ``text``, as their batch stored them; a server's ingest hands them to its background
    worker) and fire the text rules on them, in one transaction; returns how many were
    analysed. A record whose analysis is stored already (by a sweep of
    :func:`analyze_pending`, in this process or another) is skipped, rules included, so a text
    is analysed once. Nothing is looked for: unlike :func:`analyze_pending`, whose search
    for pending texts reads the whole ``feedback`` and ``text_analysis`` tables (about 90 ms
    at 1.26 M feedback records on DuckDB). ``known``: the text rules' rows of these records
    (see :func:`corridor.loop.text_rules.evaluate_texts`); those of the records a text rule
    may fire on that it lacks are read just before the transaction, beside the store's writer
    (:func:`corridor.loop.text_rules.rows_to_read`). ``handed_at``: when the texts were
    handed over; if a privacy request ran since, only the records still stored with their text
    are analysed, and the rules read them from the store (an erased or anonymised person's
    records, as their batch handed them over, raise nothing)."""
    check_model(model)
    ids: list[str] = []
    bodies: list[str] = []
    seen: set[str] = set()
    for feedback_id, text in zip(
        texts.column("feedback_id").to_pylist(), texts.column("text").to_pylist(), strict=True
    ):
        if text and feedback_id not in seen:  # a record posted twice: its first text
            seen.add(feedback_id)
            ids.append(str(feedback_id))
            bodies.append(str(text))
    if not ids:
        return 0
    assigner = _assigner(store)
    themes = assigner.assign(bodies) if assigner is not None else None
    table = analyze_texts(ids, bodies, model=model, theme_ids=themes)
    cols = ", ".join(table.schema.names)
    # the text rules' rows of the records not handed over, read before the transaction (on
    # DuckDB beside the writer, so a request does not wait behind these reads)
    known = _with_rows_to_read(store, table, known)
    with store.transaction() as tx:
        tx.stage("_text_analysis", table)
        still = ""
        if handed_at is not None and ran_since(tx, handed_at):
            still = (
                " WHERE feedback_id IN (SELECT feedback_id FROM feedback WHERE text IS NOT NULL "
                "AND feedback_id IN (SELECT feedback_id FROM _text_analysis))"
            )
            known = None
        new = [
            str(r[0])
            for r in tx.fetchall(
                f"INSERT INTO text_analysis ({cols}) SELECT {cols} FROM _text_analysis{still} "
                "ON CONFLICT (feedback_id) DO NOTHING RETURNING feedback_id"
            )
        ]
        if new:
            fresh = table.filter(pc.is_in(table.column("feedback_id"), pa.array(new, pa.string())))
            text_rules.evaluate_texts(tx, new, datetime.now(UTC), analysis=fresh, known=known)
    return len(new)


def _with_rows_to_read(store: Store, analysis: pa.Table, known: pa.Table | None) -> pa.Table | None:
    """``known`` with the rows of the records a text rule may fire on that it lacks
    (:func:`corridor.loop.text_rules.rows_to_read`), read beside the writer; as it was where
    the store cannot write beside it (a second transaction would gain nothing), or if they do
    not stack with it (the rules then read those records in the transaction)."""
    if not store.writes_beside:
        return known
    read = store.write_beside(lambda tx: text_rules.rows_to_read(tx, analysis, known))
    if read is None or known is None:
        return read if read is not None else known
    return batch_rows.stack([known, read]) or known


def _assigner(store: Store) -> ThemeAssigner | None:
    from corridor.text.themestore import list_themes

    active = list_themes(store)
    if not active:
        return None
    if all(t.model == "tfidf-nmf" for t in active):
        with store.transaction() as tx:
            return current_assigner(tx)
    import orjson

    rows = store.query(
        "SELECT theme_id, model, CAST(model_data AS VARCHAR) FROM text_themes "
        "WHERE retired_at IS NULL ORDER BY theme_id"
    )
    return ThemeAssigner([(r[0], r[1], orjson.loads(r[2] or "{}")) for r in rows])


def assign_themes(
    store: Store, *, batch_size: int = BATCH, progress: Progress | None = None
) -> int:
    """(Re)assign every analysed text to the active themes; returns how many got one."""
    assigner = _assigner(store)
    total = int(store.query("SELECT count(*) FROM text_analysis")[0][0])
    done = themed = 0
    last = ""
    while done < total:
        rows = store.query(
            "SELECT a.feedback_id, f.text FROM text_analysis a JOIN feedback f "
            "ON f.feedback_id = a.feedback_id WHERE a.feedback_id > ? "
            "ORDER BY a.feedback_id LIMIT ?",
            (last, batch_size),
        )
        if not rows:
            break
        ids = [r[0] for r in rows]
        themes = assigner.assign([r[1] or "" for r in rows]) if assigner else [None] * len(ids)
        staged = pa.table(
            {"feedback_id": pa.array(ids, pa.string()), "theme_id": pa.array(themes, pa.string())}
        )
        with store.transaction() as tx:
            tx.stage("_text_themes", staged)
            tx.execute(
                "UPDATE text_analysis SET theme_id = s.theme_id FROM _text_themes s "
                "WHERE text_analysis.feedback_id = s.feedback_id"
            )
        done += len(ids)
        themed += sum(t is not None for t in themes)
        last = ids[-1]
        if progress:
            progress(done, total)
    return themed


def discover_themes(
    store: Store,
    *,
    k: int = 12,
    method: str = "tfidf-nmf",
    sample: int = 50_000,
    since: datetime | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[StoredTheme]:
    """Discover ``k`` themes in the stored (redacted) feedback texts — a random sample of at
    most ``sample`` of them, from ``since`` on — save them (retiring the previous ones) and
    assign every analysed text."""
    if sample < 100:
        raise TextAnalysisError(f"sample must be at least 100 texts, got {sample}")
    where = "text IS NOT NULL AND text <> ''"
    params: tuple[Any, ...] = ()
    if since is not None:
        where += " AND occurred_at >= ?"
        params = (since.astimezone(UTC),)
    # a deterministic pseudo-random sample, drawn in the engine (md5 of id and seed)
    texts = [
        r[0]
        for r in store.query(
            f"SELECT text FROM feedback WHERE {where} "
            "ORDER BY md5(feedback_id || ?), feedback_id LIMIT ?",
            (*params, str(seed), sample),
        )
    ]
    drafts = discover(texts, k, method=method, seed=seed)
    saved = save_themes(store, drafts)
    assign_themes(store, progress=progress)
    return saved
