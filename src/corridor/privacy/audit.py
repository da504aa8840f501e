"""The audit log: append-only, in the store (``audit_log``, schema v13).

Each line says who (a user, an API key's id, the CLI's operating-system user, or the system's
scheduler), what (an action such as ``person.export``, ``person.erase``, ``privacy.settings``,
``retention.run``), to what (``target_kind`` and ``target``), when (UTC) and from where (the
client address, or ``cli``). A person is named only by the salted hash of their id
(:func:`corridor.privacy.ledger.subject_hash`), and ``detail`` holds counts and kinds, never
personal data: the log records access to personal data without becoming a copy of it. Nothing
updates or deletes a line; :func:`entries` reads them and :func:`export_lines` writes them out
as JSON lines.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from corridor.store.base import Store, Tx

ACTOR_KINDS = ("user", "key", "cli", "system")


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where."""

    name: str
    kind: str = "user"
    address: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        try:
            user = getpass.getuser()
        except Exception:  # no user name in this environment
            user = "unknown"
        return cls(user, "cli", "cli")


SYSTEM = Actor("scheduler", "system", None)


def append(
    tx: Tx,
    actor: Actor,
    action: str,
    *,
    target_kind: str | None = None,
    target: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Write one line inside ``tx`` (it commits with the change it records, or not at all)."""
    tx.execute(
        "INSERT INTO audit_log (logged_at, actor, actor_kind, action, target_kind, target, "
        "address, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            datetime.now(UTC),
            actor.name[:200],
            actor.kind,
            action,
            target_kind,
            target,
            actor.address,
            orjson.dumps(dict(detail or {}), default=str).decode(),
        ),
    )


def log(store: Store, actor: Actor, action: str, **kw: Any) -> None:
    """:func:`append` in a transaction of its own."""
    with store.transaction() as tx:
        append(tx, actor, action, **kw)


_COLUMNS = "seq, logged_at, actor, actor_kind, action, target_kind, target, address, detail"


def _entry(row: tuple[Any, ...]) -> dict[str, Any]:
    seq, at, actor, kind, action, tkind, target, address, detail = row
    if isinstance(detail, str | bytes):
        detail = orjson.loads(detail)
    return {
        "seq": int(seq),
        "at": at.isoformat() if isinstance(at, datetime) else str(at),
        "actor": actor,
        "actor_kind": kind,
        "action": action,
        "target_kind": tkind,
        "target": target,
        "address": address,
        "detail": detail or {},
    }


def entries(
    store: Store,
    *,
    action: str | None = None,
    target: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], int]:
    """Lines after ``after`` (a ``seq``), oldest first, at most ``limit``; and how many match.
    ``action``: exact, or a prefix ending in ``*`` (``person.*``)."""
    where: list[str] = ["seq > ?"]
    params: list[object] = [after]
    if action:
        if action.endswith("*"):
            where.append("starts_with(action, ?)")
            params.append(action[:-1])
        else:
            where.append("action = ?")
            params.append(action)
    if target:
        where.append("target = ?")
        params.append(target)
    cond = " AND ".join(where)
    total = int(store.query(f"SELECT count(*) FROM audit_log WHERE {cond}", params)[0][0])
    rows = store.query(
        f"SELECT {_COLUMNS} FROM audit_log WHERE {cond} ORDER BY seq LIMIT ?", [*params, limit]
    )
    return [_entry(r) for r in rows], total


def latest(store: Store, *, limit: int = 30) -> tuple[list[dict[str, Any]], int]:
    """The latest ``limit`` lines, newest first, and how many there are."""
    total = int(store.query("SELECT count(*) FROM audit_log")[0][0])
    rows = store.query(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT ?", (limit,))
    return [_entry(r) for r in rows], total


def export_lines(store: Store, *, batch: int = 5000) -> Iterator[bytes]:
    """Every line, oldest first, as JSON lines."""
    after = 0
    while True:
        rows = store.query(
            f"SELECT {_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, batch),
        )
        if not rows:
            return
        for r in rows:
            yield orjson.dumps(_entry(r)) + b"\n"
        after = int(rows[-1][0])
