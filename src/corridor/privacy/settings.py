"""Privacy settings, kept in the store (``privacy_settings``, schema v13) so every process on it
agrees: the salt of the erasure ledger's hashes, what a record naming an erased identity meets,
and the retention periods.

============================== ========= ===================================================
key                            default   meaning
============================== ========= ===================================================
resurrection                   refuse    a later record naming an erased identity (or person
                                         id): ``refuse`` (rejected, quarantined by a file
                                         import, with the reason) or ``accept`` (stored as a
                                         new person)
retention.feedback_text_days   0 (off)   feedback free text older than this many days is
                                         removed (the scores stay)
retention.original_text_days   0 (off)   kept original (unredacted) texts older than this
retention.prospect_days        0 (off)   prospects with no interaction or feedback for this
                                         many days are erased whole
retention.notification_days    90        notifications (the outbox's rows) finished longer
                                         ago than this are removed, with their delivery log
============================== ========= ===================================================

The salt is made on first use (32 random bytes, hex) and never shown.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime

from corridor.errors import CorridorError
from corridor.store.base import Store, Tx

SALT = "salt"
RESURRECTION = "resurrection"
RESURRECTION_POLICIES = ("refuse", "accept")
RETENTION = {
    "retention.feedback_text_days": "feedback free text older than this many days is removed",
    "retention.original_text_days": "kept original (unredacted) texts older than this are removed",
    "retention.prospect_days": "prospects without contact for this many days are erased",
    "retention.notification_days": "notifications finished (sent, failed, cancelled, put in a "
    "digest) longer ago than this are removed, with their delivery log",
}
#: the longest retention period (a longer one reaches past the dates the store holds)
MAX_DAYS = 36_500
DEFAULTS: dict[str, str] = {
    RESURRECTION: "refuse",
    **{k: "0" for k in RETENTION},
    # the outbox keeps every notification's payload (a report mail's PDF too): bounded unless
    # someone chooses otherwise, as webhook services keep messages (90 days)
    "retention.notification_days": "90",
}


class PrivacySettingError(CorridorError, ValueError):
    """A privacy setting that does not exist, or a value it cannot take."""

    status_code = 422


def _check(key: str, value: str) -> str:
    if key == RESURRECTION:
        if value not in RESURRECTION_POLICIES:
            raise PrivacySettingError(
                f"resurrection must be one of {', '.join(RESURRECTION_POLICIES)}, not {value!r}"
            )
        return value
    if key in RETENTION:
        try:
            days = int(value)
        except ValueError:
            days = -1
        if not 0 <= days <= MAX_DAYS:
            raise PrivacySettingError(
                f"{key} takes a whole number of days from 1 to {MAX_DAYS:,} (100 years), or 0 "
                f"to turn it off; not {value!r}"
            )
        return str(days)
    raise PrivacySettingError(
        f"unknown privacy setting {key!r}; settings: {', '.join(sorted(DEFAULTS))}"
    )


def read_settings(store: Store) -> dict[str, str]:
    """Every setting but the salt, with its default where none is stored."""
    rows = dict(store.query("SELECT key, value FROM privacy_settings WHERE key <> ?", (SALT,)))
    return {k: str(rows.get(k, v)) for k, v in DEFAULTS.items()}


def change_settings(store: Store, changes: Mapping[str, str], *, by: str) -> dict[str, str]:
    """Set some settings (checked first, all or none); returns every setting."""
    checked = {k: _check(k, str(v)) for k, v in changes.items()}
    now = datetime.now(UTC)
    with store.transaction() as tx:
        for key, value in checked.items():
            tx.execute(
                "INSERT INTO privacy_settings (key, value, updated_at, updated_by) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                (key, value, now, by),
            )
    return read_settings(store)


def salt(tx: Tx) -> str:
    """The store's salt for identity hashes, made on first use (inside ``tx``)."""
    rows = tx.fetchall("SELECT value FROM privacy_settings WHERE key = ?", (SALT,))
    if rows:
        return str(rows[0][0])
    value = secrets.token_hex(32)
    tx.execute(
        "INSERT INTO privacy_settings (key, value, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (key) DO NOTHING",
        (SALT, value, datetime.now(UTC)),
    )
    return str(tx.fetchall("SELECT value FROM privacy_settings WHERE key = ?", (SALT,))[0][0])
