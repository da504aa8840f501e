"""Erasing or anonymising a person on request: previewed, idempotent, logged, resumable.

- **erase** removes every row of the person group in every part (:data:`~corridor.privacy.
  subject.PARTS`): profile, identities, merges, interactions, feedback with texts, kept
  originals and text analysis, survey links, responses and invitations, alerts, cases with their
  history and notes, the churn score, and notifications about them with their delivery attempts.
- **anonymise** keeps the records for aggregate analytics under a fresh random person id per
  member (segment, region and kind stay, so every aggregate is unchanged) and removes every
  identifier and free text: identities and merges, attributes, feedback texts and kept originals,
  survey answers, alert evidence, case titles and notes, the churn score, notifications.

A request runs in steps, each recorded in ``privacy_requests`` before the next begins:

1. ``collected``: the group's person ids are written to the request (the only copy of them the
   request keeps, removed at the end) and an audit line ``person.<action>.requested``;
2. ``removed``: every part changed in **one transaction**, with the identities' salted hashes
   written to the erasure ledger (:mod:`corridor.privacy.ledger`), the feedback rollup's affected
   days marked dirty and a change marker in ``ingest_batches`` (so the fitted models'
   fingerprint changes and they are fitted again);
3. ``refreshed``: the rollup rebuilt for the marked days;
4. ``done``: the person ids cleared from the request, an audit line ``person.<action>`` with
   the rows per part.

Each step is idempotent, so a request left part-way by a crash is carried on by
:func:`resume` (the server does at start, ``corridor people resume`` on demand). A request for
a person already erased finds the ledger and answers ``already: true``, changing nothing.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from corridor.privacy import audit, ledger, mails, settings, subject
from corridor.privacy.subject import PARTS, Group, PersonNotFoundError
from corridor.store.base import Store, Tx

Action = Literal["erase", "anonymise"]
ACTIONS: tuple[str, ...] = ("erase", "anonymise")
STEPS = ("collected", "removed", "refreshed", "done")


def preview(store: Store, group: Group) -> dict[str, Any]:
    """What a request about ``group`` would touch: rows per part (nothing personal)."""
    with store.transaction() as tx:
        counts = _counts(tx, group.persons, group.identities)
    return {
        "persons": len(group.persons),
        "identities": len(group.identities),
        "parts": [
            {"part": p.name, "table": p.table, "rows": counts[p.name], "about": p.about}
            for p in PARTS
            if p.name in counts
        ],
        "total_rows": sum(counts.values()),
    }


def _counts(
    tx: Tx, persons: Sequence[str], identities: Sequence[tuple[str, str]]
) -> dict[str, int]:
    subject.stage(tx, persons, identities)
    tables = subject.existing_tables(tx)
    return {
        p.name: int(tx.fetchall(f"SELECT count(*) FROM {p.table} WHERE {p.where}")[0][0])
        for p in PARTS
        if p.table in tables
    }


def request(
    store: Store,
    ref: str,
    action: Action,
    *,
    by: str = "person_id",
    actor: audit.Actor,
) -> dict[str, Any]:
    """Erase or anonymise the person ``ref`` names (and their group), start to end."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
    try:
        group = subject.find_group(store, ref, by=by)
    except PersonNotFoundError:
        done = _already(store, ref, by)
        if done is None:
            raise
        return done
    request_id = start(store, group, action, actor=actor)
    return advance(store, request_id, actor=actor)


def _already(store: Store, ref: str, by: str) -> dict[str, Any] | None:
    """The finished request that erased ``ref``, when the ledger knows it."""
    with store.transaction() as tx:
        salt = settings.salt(tx)
        rows = tx.fetchall(
            "SELECT r.request_id, r.action, r.finished_at, r.summary FROM erased_identities e "
            "JOIN privacy_requests r ON r.request_id = e.request_id WHERE e.id_hash = ?",
            (ledger.identity_hash(salt, by, ref),),
        )
    if not rows:
        return None
    request_id, action, finished, summary = rows[0]
    return {
        "request_id": request_id,
        "action": action,
        "state": "done",
        "already": True,
        "finished_at": finished.isoformat() if isinstance(finished, datetime) else finished,
        "removed": _json(summary).get("removed", {}),
    }


def _json(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str | bytes):
        value = orjson.loads(value)
    return value if isinstance(value, dict) else {}


def start(store: Store, group: Group, action: Action, *, actor: audit.Actor) -> str:
    """Step 1: the request, with the group's person ids; returns its id."""
    request_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    with store.transaction() as tx:
        target = ledger.subject_hash(tx, group.canonical)
        tx.execute(
            "INSERT INTO privacy_requests (request_id, action, subject, state, step, persons, "
            "requested_by, requested_at) VALUES (?, ?, ?, 'running', 'collected', ?, ?, ?)",
            (
                request_id,
                action,
                target,
                orjson.dumps(list(group.persons)).decode(),
                actor.name,
                now,
            ),
        )
        audit.append(
            tx,
            actor,
            f"person.{action}.requested",
            target_kind="person",
            target=target,
            detail={"request_id": request_id, "persons": len(group.persons)},
        )
    return request_id


def _load(store: Store, request_id: str) -> tuple[str, str, str, list[str], dict[str, Any]]:
    rows = store.query(
        "SELECT action, state, step, persons, summary FROM privacy_requests WHERE request_id = ?",
        (request_id,),
    )
    if not rows:
        raise PersonNotFoundError(f"no privacy request {request_id!r}")
    action, state, step, persons, summary = rows[0]
    plist = orjson.loads(persons) if isinstance(persons, str | bytes) else (persons or [])
    return str(action), str(state), str(step), [str(p) for p in plist], _json(summary)


def advance(
    store: Store, request_id: str, *, actor: audit.Actor, until: str = "done"
) -> dict[str, Any]:
    """Carry the request on from its step, up to ``until`` (a step name; tests stop part-way
    to stand for a crash); returns its state."""
    action, state, step, persons, summary = _load(store, request_id)
    while state == "running" and STEPS.index(step) < STEPS.index(until):
        nxt = STEPS[STEPS.index(step) + 1]
        if nxt == "removed":
            summary = {"removed": _remove(store, request_id, action, persons)}
        elif nxt == "refreshed":
            from corridor.analytics.feedback import rollup

            rollup.refresh(store)
            _set_step(store, request_id, nxt)
        else:
            _finish(store, request_id, action, summary, actor)
            state = "done"
        step = nxt
    return {
        "request_id": request_id,
        "action": action,
        "state": state,
        "step": step,
        "already": False,
        "removed": summary.get("removed", {}),
    }


def resume(
    store: Store, *, actor: audit.Actor, older_than: timedelta = timedelta(0)
) -> list[dict[str, Any]]:
    """Carry on every request left running (after a crash), or those running since longer
    than ``older_than`` (the scheduler's job: leaving alone the ones being worked on)."""
    ids = [
        str(r[0])
        for r in store.query(
            "SELECT request_id FROM privacy_requests WHERE state = 'running' "
            "AND requested_at <= ? ORDER BY requested_at",
            (datetime.now(UTC) - older_than,),
        )
    ]
    return [advance(store, i, actor=actor) for i in ids]


def _set_step(store: Store, request_id: str, step: str) -> None:
    with store.transaction() as tx:
        tx.execute("UPDATE privacy_requests SET step = ? WHERE request_id = ?", (step, request_id))


def _finish(
    store: Store, request_id: str, action: str, summary: dict[str, Any], actor: audit.Actor
) -> None:
    with store.transaction() as tx:
        (target,) = tx.fetchall(
            "SELECT subject FROM privacy_requests WHERE request_id = ?", (request_id,)
        )[0]
        finished = tx.execute(
            "UPDATE privacy_requests SET state = 'done', step = 'done', persons = NULL, "
            "finished_at = ? WHERE request_id = ? AND state = 'running'",
            (datetime.now(UTC), request_id),
        )
        if finished != 1:  # another run of this request finished it
            return
        audit.append(
            tx,
            actor,
            f"person.{action}",
            target_kind="person",
            target=str(target),
            detail={"request_id": request_id, **summary},
        )


def ran_since(tx: Tx, at: datetime) -> bool:
    """Whether a privacy request (erase, anonymise) ran, or is running, since ``at``: work that
    read the store before it (a text analysis, a report) must not write what it read."""
    return bool(
        tx.fetchall(
            "SELECT 1 FROM privacy_requests WHERE finished_at IS NULL OR finished_at >= ? LIMIT 1",
            [at],
        )
    )


def _remove(store: Store, request_id: str, action: str, persons: list[str]) -> dict[str, int]:
    """Step 2, in one transaction: every part, the ledger, the rollup's marks, the marker."""
    now = datetime.now(UTC)
    with store.transaction() as tx:
        (step, summary), *_ = tx.fetchall(
            "SELECT step, summary FROM privacy_requests WHERE request_id = ?", (request_id,)
        )
        if step != "collected":  # another run of this request did this step already
            return dict(_json(summary).get("removed", {}))
        marks = ", ".join("?" for _ in persons)
        identities = [
            (str(t), str(v))
            for t, v in tx.fetchall(
                f"SELECT id_type, id_value FROM identities WHERE person_id IN ({marks})", persons
            )
        ]
        subject.stage(tx, persons, identities)
        tables = subject.existing_tables(tx)
        _mark_days(tx)
        if "rollup_pending" in tables:
            # their records waiting for the work after the commit: that work (in this process,
            # from the records as their batch handed them over) must not fire rules about them
            # (the days' rebuild, marked above, adds their rollup rows)
            tx.execute(
                "DELETE FROM rollup_pending WHERE feedback_id IN (SELECT feedback_id FROM "
                "feedback WHERE person_id IN (SELECT person_id FROM _subject))"
            )
        ledger.record(tx, request_id, [*((ledger.PERSON, p) for p in persons), *identities], now)
        mails.trim_digests(tx, tables)
        withdrawn = mails.withdraw_reports(tx, tables, request_id)
        erase = action == "erase"
        removed = _erase(tx, tables) if erase else _anonymise(tx, tables, persons)
        swept = [(v, subject.ERASED_MARK) for _, v in identities if len(v) >= subject.MIN_SWEPT]
        removed["free_text_elsewhere"] = _sweep(
            tx, tables, [*swept, *subject.named_in_text(persons)]
        )
        if withdrawn:
            removed["report_mails_withdrawn"] = withdrawn
        tx.execute(
            "INSERT INTO ingest_batches (batch_id, kind, source, received_at, accepted, "
            "duplicates, rejected) VALUES (?, 'people', ?, ?, 1, 0, 0)",
            (uuid.uuid4().hex, f"privacy {action}", now),
        )
        tx.execute(
            "UPDATE privacy_requests SET step = 'removed', summary = ? WHERE request_id = ?",
            (orjson.dumps({"removed": removed}).decode(), request_id),
        )
    return removed


def _mark_days(tx: Tx) -> None:
    """Mark the rollup days the group's feedback (and feedback about its interactions) is in."""
    tx.execute(
        "INSERT INTO rollup_dirty (day) SELECT DISTINCT CAST(occurred_at AS DATE) FROM feedback "
        "WHERE person_id IN (SELECT person_id FROM _subject) OR interaction_id IN "
        "(SELECT interaction_id FROM interactions WHERE person_id IN "
        "(SELECT person_id FROM _subject)) ON CONFLICT (day) DO NOTHING"
    )


def _sweep(tx: Tx, tables: set[str], values: Sequence[tuple[str, str]]) -> int:
    """Replace each ``(value, by)`` where anyone typed it or Corridor wrote it in free text
    (:data:`~corridor.privacy.subject.FREE_TEXT`, and the JSON of
    :data:`~corridor.privacy.subject.FREE_JSON`: a notification still to send, or sent, about
    someone else); returns the fields changed."""
    changed = 0
    for value, by in sorted(set(values)):
        for table, column in subject.FREE_TEXT:
            if table in tables:
                changed += max(
                    tx.execute(
                        f"UPDATE {table} SET {column} = replace({column}, ?, ?) "
                        f"WHERE strpos({column}, ?) > 0",
                        (value, by, value),
                    ),
                    0,
                )
        for table, column in subject.FREE_JSON:
            if table in tables:
                text = f"CAST({column} AS VARCHAR)"
                changed += max(
                    tx.execute(
                        f"UPDATE {table} SET {column} = CAST(replace({text}, ?, ?) AS "
                        f"{tx.json_type}) WHERE strpos({text}, ?) > 0",
                        (_json_text(value), _json_text(by), _json_text(value)),
                    ),
                    0,
                )
    return changed


def _json_text(value: str) -> str:
    """``value`` as it stands inside a JSON string."""
    return orjson.dumps(value).decode()[1:-1]


def _erase(tx: Tx, tables: set[str]) -> dict[str, int]:
    removed: dict[str, int] = {}
    for p in PARTS:
        if p.table in tables:
            removed[p.name] = max(tx.execute(f"DELETE FROM {p.table} WHERE {p.where}"), 0)
    # a table added later with a person column (a test flags it): its rows go too
    for table, columns in subject.unknown_person_tables(tx).items():
        cond = " OR ".join(f"{c} IN (SELECT person_id FROM _subject)" for c in columns)
        removed[table] = max(tx.execute(f"DELETE FROM {table} WHERE {cond}"), 0)
    return removed


#: anonymise: what each part becomes (SET clauses; ``person_id`` is re-keyed separately)
_CLEAR = {
    "interactions": "attributes = NULL",
    "feedback": "text = NULL, attributes = NULL",
    "survey_responses": "answers = '{}', record = NULL, error = NULL",
    "survey_invitations": "held_reason = NULL, error = NULL",
    "alerts": "evidence = NULL, summary = 'about an anonymised person', record_id = NULL",
    "cases": "title = 'Case about an anonymised person', verification_detail = NULL",
    "case_events": "note = NULL, old_value = NULL, new_value = NULL",
    # a link not yet answered could still bring new answers under the pseudonym
    "survey_links": "revoked_at = coalesce(revoked_at, CURRENT_TIMESTAMP)",
}
#: anonymise: keys that name the person inside them (``person=<id>`` in an alert's subject and
#: a case's cause, a list invitation's ``list|<batch>|<id>``), re-keyed with the person
_NAMING: tuple[tuple[str, str, str], ...] = (
    ("alerts", "alert_id", "subject"),
    ("cases", "case_id", "cause"),
    ("survey_invitations", "invitation_id", "source_key"),
)
#: anonymise: parts removed whole (identifiers, free text, personal scores, notifications)
_DROP = (
    "identities",
    "merges",
    "feedback_originals",
    "model_scores",
    "notification_attempts",
    "notifications",
)
#: tables whose person_id is re-keyed to the member's pseudonym
_REKEY = (
    "interactions",
    "feedback",
    "survey_responses",
    "survey_links",
    "survey_invitations",
    "alerts",
    "cases",
)


def _anonymise(tx: Tx, tables: set[str], persons: list[str]) -> dict[str, int]:
    import pyarrow as pa

    changed: dict[str, int] = {}
    pseudo = {p: f"anon-{secrets.token_hex(8)}" for p in persons}
    tx.stage(
        "_pseudo",
        pa.table(
            {"old": pa.array(list(pseudo), pa.string()), "new": pa.array(list(pseudo.values()))}
        ),
    )
    by_name = {p.name: p for p in PARTS}
    # the cleared columns first (the parts' conditions find rows by the old ids)
    for name, sets in _CLEAR.items():
        p = by_name.get(name) or next(x for x in PARTS if x.table == name)
        if p.table in tables:
            changed[p.name] = max(tx.execute(f"UPDATE {p.table} SET {sets} WHERE {p.where}"), 0)
    _rename(tx, tables, pseudo)
    for name in _DROP:
        p = by_name[name]
        if p.table in tables:
            changed[name] = max(tx.execute(f"DELETE FROM {p.table} WHERE {p.where}"), 0)
    for table in _REKEY:
        if table in tables:
            tx.execute(
                f"UPDATE {table} SET person_id = m.new FROM _pseudo m "
                f"WHERE {table}.person_id = m.old"
            )
    # people: the profile under the new id (its kind, segment and region kept), the old row gone
    changed["profile"] = max(
        tx.execute(
            "INSERT INTO people (person_id, kind, created_at, segment, region, attributes, "
            "first_seen_at, canonical_id, merged_at) SELECT m.new, p.kind, p.created_at, "
            "p.segment, p.region, NULL, p.first_seen_at, coalesce(c.new, p.canonical_id), "
            "p.merged_at FROM people p JOIN _pseudo m ON m.old = p.person_id "
            "LEFT JOIN _pseudo c ON c.old = p.canonical_id"
        ),
        0,
    )
    tx.execute("DELETE FROM people WHERE person_id IN (SELECT old FROM _pseudo)")
    for table, columns in subject.unknown_person_tables(tx).items():
        cond = " OR ".join(f"{c} IN (SELECT old FROM _pseudo)" for c in columns)
        changed[table] = max(tx.execute(f"DELETE FROM {table} WHERE {cond}"), 0)
    return changed


def renamed(key: str, old: str, new: str) -> str:
    """``key`` with the person ``old`` named ``new``: ``person=old`` between ``|`` (a subject,
    a cause), or ``old`` as the last ``|`` part (a list invitation's source key)."""
    parts = key.split("|")
    return "|".join(
        f"person={new}"
        if part == f"person={old}"
        else new
        if part == old and i == len(parts) - 1 and i > 0
        else part
        for i, part in enumerate(parts)
    )


def _rename(tx: Tx, tables: set[str], pseudo: dict[str, str]) -> None:
    """Re-key the person's id where it stands inside a key (:data:`_NAMING`), by their rows'
    person column (before it is re-keyed itself)."""
    import pyarrow as pa

    for table, key, column in _NAMING:
        if table not in tables:
            continue
        rows = tx.fetchall(
            f"SELECT {key}, {column}, person_id FROM {table} "
            "WHERE person_id IN (SELECT old FROM _pseudo)"
        )
        changed = [
            (k, new)
            for k, value, person in rows
            if value is not None
            and (new := renamed(str(value), str(person), pseudo[str(person)])) != value
        ]
        if not changed:
            continue
        staged = f"_renamed_{table}"
        tx.stage(
            staged,
            pa.table(
                {
                    "k": pa.array([k for k, _ in changed], pa.string()),
                    "v": pa.array([v for _, v in changed], pa.string()),
                }
            ),
        )
        tx.execute(f"UPDATE {table} SET {column} = r.v FROM {staged} r WHERE {table}.{key} = r.k")


def requests_list(store: Store, *, limit: int = 100) -> list[dict[str, Any]]:
    """The latest requests (no person ids: the subject's hash only)."""
    rows = store.query(
        "SELECT request_id, action, subject, state, step, requested_by, requested_at, "
        "finished_at, summary FROM privacy_requests ORDER BY requested_at DESC LIMIT ?",
        (limit,),
    )
    keys = (
        "request_id",
        "action",
        "subject",
        "state",
        "step",
        "requested_by",
        "requested_at",
        "finished_at",
    )
    out = []
    for r in rows:
        item = {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in zip(keys, r, strict=False)
        }
        item["removed"] = _json(r[8]).get("removed", {})
        out.append(item)
    return out
