"""Themes in the store: save a discovery, list, rename, merge (:mod:`corridor.text.themes`).

A saved discovery retires the themes that were active; an analyst's name carries over to the
new theme whose keywords overlap the renamed old one most (Jaccard ≥ 0.4). A merge points the
merged themes at the target (``merged_into``), so every read counts their texts under it; a
rename sets ``renamed`` so rediscovery keeps it. Both persist until changed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from corridor.domain.plain_text import has_control
from corridor.store.base import Store
from corridor.text.errors import TextAnalysisError
from corridor.text.themes import ThemeDraft

__all__ = ["StoredTheme", "list_themes", "merge_themes", "rename_theme", "save_themes"]

CARRY_OVER_JACCARD = 0.4


@dataclass(frozen=True)
class StoredTheme:
    theme_id: str
    label: str
    keywords: list[str]
    model: str
    renamed: bool
    merged_into: str | None
    created_at: datetime
    retired_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "created_at": self.created_at.isoformat(),
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
        }


_COLS = (
    "theme_id, label, CAST(keywords AS VARCHAR), model, renamed, merged_into, created_at, "
    "retired_at"
)


def _row(r: tuple[Any, ...]) -> StoredTheme:
    return StoredTheme(r[0], r[1], list(orjson.loads(r[2])), r[3], bool(r[4]), r[5], r[6], r[7])


def list_themes(store: Store, *, include_retired: bool = False) -> list[StoredTheme]:
    where = "" if include_retired else " WHERE retired_at IS NULL"
    rows = store.query(f"SELECT {_COLS} FROM text_themes{where} ORDER BY created_at, theme_id")
    return [_row(r) for r in rows]


def _jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 0.0


def save_themes(store: Store, drafts: Sequence[ThemeDraft]) -> list[StoredTheme]:
    """Store a discovery: retire the active themes, keep analysts' names where the keywords
    overlap, insert the new ones. Returns the new themes."""
    now = datetime.now(UTC)
    old = [t for t in list_themes(store) if t.renamed and t.merged_into is None]
    with store.transaction() as tx:
        tx.execute("UPDATE text_themes SET retired_at = ? WHERE retired_at IS NULL", (now,))
        taken: set[str] = set()
        for d in drafts:
            label, renamed = d.label, False
            best = max(
                (t for t in old if t.theme_id not in taken),
                key=lambda t: _jaccard(t.keywords, d.keywords),
                default=None,
            )
            if best is not None and _jaccard(best.keywords, d.keywords) >= CARRY_OVER_JACCARD:
                label, renamed = best.label, True
                taken.add(best.theme_id)
            tx.execute(
                "INSERT INTO text_themes (theme_id, label, keywords, model, model_data, renamed, "
                "merged_into, created_at, retired_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, NULL)",
                (
                    d.theme_id,
                    label,
                    orjson.dumps(d.keywords).decode(),
                    d.model,
                    orjson.dumps(d.model_data).decode(),
                    renamed,
                    now,
                ),
            )
    ids = {d.theme_id for d in drafts}
    return [t for t in list_themes(store) if t.theme_id in ids]


def _get(store: Store, theme_id: str) -> StoredTheme:
    # no theme id holds a NUL, and PostgreSQL refuses one in a parameter (a 500)
    rows = (
        store.query(f"SELECT {_COLS} FROM text_themes WHERE theme_id = ?", (theme_id,))
        if "\x00" not in theme_id
        else []
    )
    if not rows:
        known = ", ".join(t.theme_id for t in list_themes(store)[:20]) or "none yet"
        raise TextAnalysisError(
            f"no theme {theme_id!r}; active themes: {known} (corridor themes list)"
        )
    return _row(rows[0])


def rename_theme(store: Store, theme_id: str, label: str) -> StoredTheme:
    """Give a theme an analyst's name (kept across rediscoveries)."""
    label = (label or "").strip()
    if not label or len(label) > 200:
        raise TextAnalysisError("a theme label must have 1 to 200 characters")
    if has_control(label):
        raise TextAnalysisError("a theme label cannot hold control characters (NUL, newline…)")
    _get(store, theme_id)
    with store.transaction() as tx:
        tx.execute(
            "UPDATE text_themes SET label = ?, renamed = TRUE WHERE theme_id = ?",
            (label, theme_id),
        )
    return _get(store, theme_id)


def merge_themes(
    store: Store, theme_ids: Sequence[str], into: str, label: str | None = None
) -> StoredTheme:
    """Merge ``theme_ids`` into theme ``into`` (optionally renaming it); texts of the merged
    themes count under ``into`` from then on."""
    target = _get(store, into)
    if target.merged_into is not None:
        raise TextAnalysisError(
            f"theme {into!r} is itself merged into {target.merged_into!r}; merge into that one"
        )
    sources = [t for t in dict.fromkeys(theme_ids) if t != into]
    if not sources:
        raise TextAnalysisError("name at least one theme to merge other than the target")
    for t in sources:
        _get(store, t)
    with store.transaction() as tx:
        for t in sources:
            # themes merged into a merged theme follow it to the new target
            tx.execute(
                "UPDATE text_themes SET merged_into = ? WHERE theme_id = ? OR merged_into = ?",
                (into, t, t),
            )
    if label:
        return rename_theme(store, into, label)
    return _get(store, into)
