"""The corridor map in the store: the current map in tables, every loaded version kept."""

from __future__ import annotations

from datetime import UTC, datetime

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


def save_map(store: Store, cmap: CorridorMap, *, force: bool = False) -> int:
    """Make ``cmap`` the current map; returns its version number.

    A map that drops touch points which stored records still reference is refused unless
    ``force``: those records would otherwise point nowhere.
    """
    keys = set(cmap.touchpoint_keys)
    with store.transaction() as tx:
        if not force:
            used = {
                r[0]
                for r in tx.fetchall(
                    "SELECT DISTINCT touchpoint FROM interactions UNION "
                    "SELECT DISTINCT touchpoint FROM feedback WHERE touchpoint IS NOT NULL"
                )
            }
            missing = sorted(used - keys)
            if missing:
                raise CorridorMapError(
                    "the new map drops touch points that stored records use: "
                    f"{', '.join(missing[:20])}; keep them in the map, or force the load "
                    "(`corridor map load --force`, or PUT /api/v1/map?force=true)"
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
