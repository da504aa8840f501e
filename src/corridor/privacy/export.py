"""Everything held about a person, in one archive (a ZIP file).

The archive holds, for the person and everyone merged into them:

- ``manifest.json``: what the archive is (format version, when, the person ids it covers),
  and one entry per part: its file, the table it comes from, its number of rows, what it is;
- ``parts/<part>.json``: the part's rows as JSON objects, every column as stored (times in
  ISO-8601 UTC); every part of :data:`~corridor.privacy.subject.PARTS`, empty ones included,
  so the archive also says what is *not* held;
- ``csv/people.csv``, ``csv/interactions.csv``, ``csv/feedback.csv``: the records in the data
  contract's own columns (the format they were sent in; ``corridor import`` reads them back).

Exporting is logged in the audit log (``person.export``, the rows per part; the person by the
salted hash of their id).
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

from corridor.domain.contract import get_kind
from corridor.privacy import audit, ledger, subject
from corridor.privacy.subject import PARTS, Group
from corridor.store.base import Store

FORMAT = "corridor-person-export/1"
#: parts also written as CSV in the contract's columns
CSV_KINDS = ("people", "interactions", "feedback")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def collect(store: Store, group: Group) -> dict[str, list[dict[str, Any]]]:
    """Each part's rows (every column as stored)."""
    out: dict[str, list[dict[str, Any]]] = {}
    with store.transaction() as tx:
        subject.stage(tx, group.persons, group.identities)
        tables = subject.existing_tables(tx)
        for p in PARTS:
            if p.table not in tables:
                continue
            names = [
                str(r[0])
                for r in tx.fetchall(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                    "current_schema() AND table_name = ? ORDER BY ordinal_position",
                    (p.table,),
                )
            ]
            rows = tx.fetchall(f"SELECT {', '.join(names)} FROM {p.table} WHERE {p.where}")
            out[p.name] = [{k: _plain(v) for k, v in zip(names, r, strict=True)} for r in rows]
    return out


def _csv(kind: str, rows: list[dict[str, Any]]) -> bytes:
    k = get_kind(kind)
    names = [f.name for f in k.fields]
    flat = []
    for r in rows:
        item = {n: r.get(n) for n in names}
        for key, value in (r.get("attributes") or {}).items():
            item.setdefault(key, value)
        flat.append({n: (None if v is None else str(v)) for n, v in item.items()})
    columns = list(dict.fromkeys([*names, *(c for f in flat for c in f)]))
    table = pa.table({c: pa.array([f.get(c) for f in flat], pa.string()) for c in columns})
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    return buf.getvalue()


def _with_identities(
    people: list[dict[str, Any]], identities: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The profiles with their identities as the contract's columns (email, phone, ...; a
    person with two of one type gets a row per extra value)."""
    out: list[dict[str, Any]] = []
    for person in people:
        own = [i for i in identities if i.get("person_id") == person.get("person_id")]
        rows = [dict(person)]
        for ident in own:
            row = next((r for r in rows if ident["id_type"] not in r), None)
            if row is None:
                row = {"person_id": person.get("person_id"), "kind": person.get("kind")}
                rows.append(row)
            row[ident["id_type"]] = ident["id_value"]
        out.extend(rows)
    return out


def archive(store: Store, group: Group, *, actor: audit.Actor) -> bytes:
    """The ZIP archive of ``group`` (see the module notes); logs the export."""
    parts = collect(store, group)
    now = datetime.now(UTC)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "generated_at": now.isoformat(),
        "person_id": group.canonical,
        "persons": list(group.persons),
        "parts": [],
        "csv": [],
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in PARTS:
            if p.name not in parts:
                continue
            name = f"parts/{p.name}.json"
            z.writestr(name, orjson.dumps(parts[p.name], option=orjson.OPT_INDENT_2))
            manifest["parts"].append(
                {
                    "part": p.name,
                    "file": name,
                    "table": p.table,
                    "rows": len(parts[p.name]),
                    "about": p.about,
                }
            )
        records = {
            "people": _with_identities(parts.get("profile", []), parts.get("identities", [])),
            "interactions": parts.get("interactions", []),
            "feedback": parts.get("feedback", []),
        }
        for kind in CSV_KINDS:
            name = f"csv/{kind}.csv"
            z.writestr(name, _csv(kind, records[kind]))
            manifest["csv"].append(
                {"file": name, "kind": kind, "about": f"{kind} in the data contract's columns"}
            )
        z.writestr("manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    with store.transaction() as tx:
        audit.append(
            tx,
            actor,
            "person.export",
            target_kind="person",
            target=ledger.subject_hash(tx, group.canonical),
            detail={"rows": {p["part"]: p["rows"] for p in manifest["parts"]}},
        )
    return buf.getvalue()
