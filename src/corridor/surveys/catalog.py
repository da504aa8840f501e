"""Survey definitions in the store, versioned.

Loading a definition whose content differs from the survey's latest version stores it as the
next version; loading the same content again changes nothing. Every version's document is kept,
so a response is always shown and stored with the version it started on.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from corridor.domain.corridor_map import CorridorMap
from corridor.store import Store
from corridor.store.maps import load_map
from corridor.surveys.definition import Survey, parse
from corridor.surveys.errors import SurveyDefinitionError, SurveyNotFoundError


def as_json(value: Any) -> Any:
    """A JSON column's value: DuckDB hands out text, PostgreSQL the parsed value."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Stored:
    """A survey's latest version (or the one asked for) and what the store says about it."""

    survey: Survey
    version: int
    latest: int
    created_at: datetime
    updated_at: datetime
    loaded_at: datetime
    loaded_by: str | None

    def as_dict(self) -> dict[str, Any]:
        s = self.survey
        return {
            "survey_id": s.id,
            "title": s.title,
            "version": self.version,
            "latest_version": self.latest,
            "touchpoints": list(s.touchpoints),
            "languages": list(s.languages),
            "fallback_language": s.fallback_language,
            "questions": len(s.questions),
            "pages": s.pages,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "loaded_at": self.loaded_at,
            "loaded_by": self.loaded_by,
            "definition": s.document,
        }


def check_touchpoints(survey: Survey, cmap: CorridorMap | None, source: str) -> None:
    """Every touch point of ``survey`` must be in the corridor map."""
    if cmap is None:
        raise SurveyDefinitionError(
            source,
            [("touchpoints", "no corridor map is loaded; load it first (`corridor map load`)")],
        )
    keys = {t.key for t in cmap.touchpoints}
    bad = [
        (f"touchpoints[{i}]", f"{tp!r} is not a touch point of the corridor map; use one of "
         f"{', '.join(sorted(keys))}")
        for i, tp in enumerate(survey.touchpoints)
        if tp not in keys
    ]  # fmt: skip
    if bad:
        raise SurveyDefinitionError(source, bad)


def save(
    store: Store,
    survey: Survey,
    *,
    by: str | None = None,
    cmap: CorridorMap | None = None,
    source: str = "the definition",
) -> tuple[int, bool]:
    """Store ``survey``: (its version, whether that version is new)."""
    check_touchpoints(survey, cmap if cmap is not None else load_map(store), source)
    now = datetime.now(UTC)
    digest = survey.digest
    with store.transaction() as tx:
        row = tx.fetchall(
            "SELECT v.version, v.digest FROM surveys s JOIN survey_versions v "
            "ON v.survey_id = s.survey_id AND v.version = s.version WHERE s.survey_id = ?",
            (survey.id,),
        )
        if row and row[0][1] == digest:
            return int(row[0][0]), False
        version = int(row[0][0]) + 1 if row else 1
        tx.execute(
            "INSERT INTO survey_versions (survey_id, version, digest, document, loaded_at, "
            "loaded_by) VALUES (?, ?, ?, ?, ?, ?)",
            (survey.id, version, digest, json.dumps(survey.document), now, by),
        )
        values = (
            survey.title.get(survey.fallback_language, survey.id),
            version,
            ";".join(survey.touchpoints),
            ";".join(survey.languages),
            survey.fallback_language,
        )
        if row:
            tx.execute(
                "UPDATE surveys SET title = ?, version = ?, touchpoints = ?, languages = ?, "
                "fallback_language = ?, updated_at = ? WHERE survey_id = ?",
                (*values, now, survey.id),
            )
        else:
            tx.execute(
                "INSERT INTO surveys (survey_id, title, version, touchpoints, languages, "
                "fallback_language, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (survey.id, *values, now, now),
            )
    return version, True


_SELECT = (
    "SELECT s.survey_id, v.version, s.version, s.created_at, s.updated_at, v.loaded_at, "
    "v.loaded_by, v.document FROM surveys s JOIN survey_versions v ON v.survey_id = s.survey_id "
)


@functools.lru_cache(maxsize=64)
def _parsed(text: str, source: str) -> Survey:
    """A stored version's definition, validated once per content (a version never changes:
    the form pages read it on every request)."""
    return parse(json.loads(text), source=source, stored=True)


def _stored(row: tuple[Any, ...]) -> Stored:
    raw = row[7]
    text = raw if isinstance(raw, str) else json.dumps(as_json(raw), sort_keys=True)
    survey = _parsed(text, f"survey {row[0]} version {row[1]}")
    return Stored(
        survey=survey,
        version=int(row[1]),
        latest=int(row[2]),
        created_at=utc(row[3]),  # type: ignore[arg-type]
        updated_at=utc(row[4]),  # type: ignore[arg-type]
        loaded_at=utc(row[5]),  # type: ignore[arg-type]
        loaded_by=row[6],
    )


def get(store: Store, survey_id: str, version: int | None = None) -> Stored:
    """The survey's latest version, or ``version``; :class:`SurveyNotFoundError` else."""
    if version is None:
        rows = store.query(
            _SELECT + "AND v.version = s.version WHERE s.survey_id = ?", (survey_id,)
        )
    else:
        rows = store.query(
            _SELECT + "WHERE s.survey_id = ? AND v.version = ?", (survey_id, int(version))
        )
    if not rows:
        known = exists(store, survey_id)
        if known and version is not None:
            raise SurveyNotFoundError(
                f"survey {survey_id!r} has no version {version}; `corridor surveys show "
                f"{survey_id}` shows the latest"
            )
        raise SurveyNotFoundError(
            f"no survey {survey_id!r}; `corridor surveys list` lists them, `corridor surveys "
            "load FILE` adds one"
        )
    return _stored(rows[0])


def exists(store: Store, survey_id: str) -> bool:
    return bool(store.query("SELECT 1 FROM surveys WHERE survey_id = ?", (survey_id,)))


def list_all(store: Store) -> list[Stored]:
    rows = store.query(_SELECT + "AND v.version = s.version ORDER BY s.survey_id")
    return [_stored(r) for r in rows]


def activity(store: Store) -> dict[str, tuple[int, int, int]]:
    """Per survey: (links made, responses opened, responses sent)."""
    rows = store.query(
        "SELECT l.survey_id, count(DISTINCT l.link_id), count(r.response_id), "
        "count(r.submitted_at) FROM survey_links l "
        "LEFT JOIN survey_responses r ON r.link_id = l.link_id GROUP BY l.survey_id"
    )
    return {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}


__all__ = [
    "Stored",
    "activity",
    "as_json",
    "check_touchpoints",
    "exists",
    "get",
    "list_all",
    "save",
    "utc",
]
