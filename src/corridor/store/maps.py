"""The corridor map in the store: the current map in tables, every loaded version kept."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from corridor.domain.corridor_map import CorridorMap
from corridor.errors import CorridorMapError
from corridor.store.base import Store


def load_map(store: Store) -> CorridorMap | None:
    """The map most recently saved, or None when no map was loaded yet."""
    rows = store.query("SELECT document FROM corridor_maps ORDER BY version DESC LIMIT 1")
    if not rows:
        return None
    doc = rows[0][0]
    return CorridorMap.model_validate(orjson.loads(doc) if isinstance(doc, str | bytes) else doc)


def orphaned_touchpoints(store: Store, cmap: CorridorMap) -> list[tuple[str, int, int, int]]:
    """Touch points that stored records, or survey links still open, use and ``cmap`` drops:
    ``(key, interactions, feedback, open links)`` each, most first. An open link's answers
    would be refused after the customer was thanked (their touch point no longer exists)."""
    return _orphans(store.query, cmap)


#: the survey links that may still bring answers: not revoked, not expired, not answered (a
#: personal one; an anonymous one takes many)
_OPEN_LINKS = (
    "SELECT touchpoint, count(*) FROM survey_links WHERE revoked_at IS NULL "
    "AND (expires_at IS NULL OR expires_at > CURRENT_TIMESTAMP) "
    "AND (used_at IS NULL OR kind = 'anonymous') GROUP BY touchpoint"
)


def _orphans(
    fetch: Callable[[str], list[tuple[Any, ...]]], cmap: CorridorMap
) -> list[tuple[str, int, int, int]]:
    keys = set(cmap.touchpoint_keys)
    counts: dict[str, list[int]] = {}
    # (a store at a schema from before surveys, being upgraded, has no links)
    surveys = fetch(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'survey_links' "
        "AND table_schema = current_schema()"
    )[0][0]
    for i, sql in enumerate(
        (
            "SELECT touchpoint, count(*) FROM interactions GROUP BY touchpoint",
            "SELECT COALESCE(f.touchpoint, i.touchpoint), count(*) FROM feedback f "
            "LEFT JOIN interactions i ON i.interaction_id = f.interaction_id "
            "WHERE COALESCE(f.touchpoint, i.touchpoint) IS NOT NULL GROUP BY 1",
            *([_OPEN_LINKS] if surveys else []),
        )
    ):
        for tp, n in fetch(sql):
            if tp not in keys:
                counts.setdefault(tp, [0, 0, 0])[i] += int(n)
    return sorted(
        ((k, a, b, c) for k, (a, b, c) in counts.items()), key=lambda t: (-sum(t[1:]), t[0])
    )


def describe(orphans: list[tuple[str, int, int, int]], most: int = 20) -> str:
    """``home_delivery (1,204 interactions, 310 feedback, 3 open survey links)``, … for a
    message."""

    def counts(a: int, b: int, c: int) -> str:
        links = f", {c:,} open survey links" if c else ""
        return f"{a:,} interactions, {b:,} feedback{links}"

    shown = ", ".join(f"{k} ({counts(a, b, c)})" for k, a, b, c in orphans[:most])
    more = f" and {len(orphans) - most} more" if len(orphans) > most else ""
    return shown + more


def save_map(store: Store, cmap: CorridorMap, *, force: bool = False) -> int:
    """Make ``cmap`` the current map; returns its version number.

    A map that drops touch points which stored records still reference, or survey links still
    open, is refused unless ``force``: those records would otherwise point nowhere, and those
    links' answers would be refused after the customer was thanked.
    """
    with store.transaction() as tx:
        if not force:
            lost = _orphans(tx.fetchall, cmap)
            if lost:
                raise CorridorMapError(
                    "the new map drops touch points that stored records or open survey links "
                    f"use: {describe(lost)}; keep them in the map (or revoke the links), or, if "
                    "those records should point nowhere, have an "
                    "admin force the load (`corridor map load --force`, or PUT "
                    "/api/v1/map?force=true)"
                )
        version = int(tx.fetchall("SELECT coalesce(max(version), 0) FROM corridor_maps")[0][0]) + 1
        doc = orjson.dumps(cmap.model_dump(exclude_none=True)).decode()
        tx.execute(
            "INSERT INTO corridor_maps (version, loaded_at, document) VALUES (?, ?, ?)",
            (version, datetime.now(UTC), doc),
        )
        for table in ("promises", "touchpoints", "stages"):
            tx.execute(f"DELETE FROM {table}")
        for pos, stage in enumerate(cmap.stages):
            tx.execute("INSERT INTO stages (position, key) VALUES (?, ?)", (pos, stage))
        for pos, tp in enumerate(cmap.touchpoints):
            tx.execute(
                "INSERT INTO touchpoints (key, name, stage, stage_position, position, channels, "
                "department, description) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tp.key,
                    tp.name,
                    tp.stage,
                    cmap.stages.index(tp.stage),
                    pos,
                    ";".join(tp.channels),
                    tp.department,
                    tp.description,
                ),
            )
            for p in tp.promises:
                tx.execute(
                    "INSERT INTO promises (key, touchpoint, metric, operator, threshold, target, "
                    "source, description) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        p.key,
                        tp.key,
                        p.metric,
                        p.operator,
                        p.threshold,
                        p.target,
                        p.source,
                        p.description,
                    ),
                )
    return version
