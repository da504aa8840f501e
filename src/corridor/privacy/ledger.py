"""The erasure ledger: salted hashes of an erased person's identities and person ids
(``erased_identities``), so that a later record naming one does not silently bring the person
back, while the values themselves are gone.

A hash is SHA-256 of ``salt NUL type:value`` (the salt: :func:`corridor.privacy.settings.salt`,
random per store), so the ledger cannot be reversed by hashing a list of known e-mails without
the store's salt. :func:`guard_batch` is the one place the ingest path asks it
(:meth:`corridor.ingest.pipeline.Ingestor.ingest`): with the ``resurrection`` setting
``refuse`` (the default) such records are rejected with a reason saying why (a file import
quarantines them); with ``accept`` they are stored as a new person.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from corridor.domain.contract import IDENTITY_TYPES, RecordKind
from corridor.ingest.validate import ROW, Rejection
from corridor.privacy import settings
from corridor.store.base import Store, Tx

#: the hash kind of a person id (identities are hashed under their own type)
PERSON = "person_id"


def identity_hash(salt: str, id_type: str, value: str) -> str:
    return hashlib.sha256(f"{salt}\x00{id_type}:{value}".encode()).hexdigest()


def subject_hash(tx: Tx, person_id: str) -> str:
    """How a person is named where their id may not be kept (the audit log, requests)."""
    return identity_hash(settings.salt(tx), PERSON, person_id)


def record(tx: Tx, request_id: str, pairs: Iterable[tuple[str, str]], at: object) -> int:
    """Add the hashes of ``(type, value)`` pairs to the ledger; returns how many were new."""
    salt = settings.salt(tx)
    hashes = sorted({identity_hash(salt, t, v) for t, v in pairs})
    if not hashes:
        return 0
    tx.stage(
        "_erased",
        pa.table(
            {
                "id_hash": pa.array(hashes, pa.string()),
                "request_id": pa.array([request_id] * len(hashes), pa.string()),
                "erased_at": pa.array([at] * len(hashes), pa.timestamp("us", tz="UTC")),
            }
        ),
    )
    return tx.insert(
        "erased_identities", "_erased", ["id_hash", "request_id", "erased_at"], key=["id_hash"]
    )


def is_erased(store: Store, id_type: str, value: str) -> bool:
    """Whether ``type:value`` belonged to an erased person."""
    with store.transaction() as tx:
        h = identity_hash(settings.salt(tx), id_type, value)
        return bool(tx.fetchall("SELECT 1 FROM erased_identities WHERE id_hash = ?", (h,)))


def guard_batch(
    store: Store, kind: RecordKind, valid: pa.Table
) -> tuple[pa.Table, list[Rejection], int]:
    """The rows of a validated batch that may be stored, the rejections of those naming an
    erased identity or person id (when the ``resurrection`` setting is ``refuse``), and how
    many rows were refused."""
    if not kind.has_person or valid.num_rows == 0:
        return valid, [], 0
    if not store.query("SELECT 1 FROM erased_identities LIMIT 1"):
        return valid, [], 0
    if settings.read_settings(store)[settings.RESURRECTION] == "accept":
        return valid, [], 0
    with store.transaction() as tx:
        salt = settings.salt(tx)
    erased = {str(r[0]) for r in store.query("SELECT id_hash FROM erased_identities")}
    columns = [c for c in (PERSON, *IDENTITY_TYPES) if c in valid.schema.names]
    named: dict[int, str] = {}  # row position -> the column that names an erased one
    for col in columns:
        for i, value in enumerate(valid.column(col).to_pylist()):
            if (
                value is not None
                and i not in named
                and identity_hash(salt, col, str(value)) in erased
            ):
                named[i] = col
    if not named:
        return valid, [], 0
    ids = valid.column(kind.id_field).to_pylist()
    rows = valid.column(ROW).to_pylist()
    rejections = [
        Rejection(
            int(rows[i]),
            None if ids[i] is None else str(ids[i]),
            col,
            f"this {col.replace('_', ' ')} belonged to a person erased on request; the "
            "privacy setting resurrection=refuse keeps them erased (an admin may set it to "
            "accept, to store such records as a new person)",
        )
        for i, col in sorted(named.items())
    ]
    keep = pa.array([i not in named for i in range(valid.num_rows)])
    return pc.filter(valid, keep), rejections, len(named)
