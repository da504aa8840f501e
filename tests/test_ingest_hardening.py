"""Issue 11.12 a, e: ``attributes`` must be a JSON object at every door, and a pretty-printed JSON
document sent as NDJSON is one clear error with a hint (not one "invalid JSON" per line).
Both engines through the fixtures; real stores, real files, the real app."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corridor.api.app import create_app
from corridor.domain.corridor_map import CorridorMap
from corridor.errors import PayloadError
from corridor.ingest.files import import_file
from corridor.ingest.pipeline import Ingestor
from corridor.settings import Settings
from corridor.store import Store

with warnings.catch_warnings():  # starlette asks for httpx2, which is not a dependency yet
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

NDJSON = "application/x-ndjson"


def interaction(i: int, **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "interaction_id": f"i{i}",
        "person_id": "p1",
        "occurred_at": "2025-03-01T10:00:00Z",
        "touchpoint": "checkout",
        "channel": "web",
    }
    rec.update(extra)
    return rec


@pytest.fixture
def client(store: Store, small_map: CorridorMap) -> Iterator[TestClient]:
    app = create_app(Settings(store_url=store.url, auth="off", text_analysis="off"), store=store)
    with TestClient(app) as c:
        r = c.put("/api/v1/map", json=small_map.model_dump(exclude_none=True))
        assert r.status_code == 200, r.text
        yield c


def attributes_of(store: Store, interaction_id: str) -> dict[str, Any]:
    raw = store.query(
        "SELECT CAST(attributes AS VARCHAR) FROM interactions WHERE interaction_id = ?",
        (interaction_id,),
    )[0][0]
    return dict(orjson.loads(raw)) if raw else {}


def ids(store: Store) -> list[str]:
    return sorted(r[0] for r in store.query("SELECT interaction_id FROM interactions"))


# -- a. attributes must be an object ----------------------------------------------------------
BAD_ATTRIBUTES = [[1, 2], "gold", 3, True]


def test_api_refuses_attributes_that_are_no_object(client: TestClient, store: Store) -> None:
    body = [interaction(1, attributes={"tier": "gold"})] + [
        interaction(i, attributes=bad) for i, bad in enumerate(BAD_ATTRIBUTES, 2)
    ]
    body.append(interaction(9, attributes=None))
    r = client.post("/api/v1/interactions", json=body)
    assert r.status_code == 200, r.text
    rep = r.json()
    assert (rep["received"], rep["accepted"], rep["rejected"]) == (6, 2, 4)
    errors = {e["item"]: e for e in rep["errors"]}
    assert sorted(errors) == [2, 3, 4, 5]
    assert {e["field"] for e in errors.values()} == {"attributes"}
    assert "expected a JSON object of extra fields" in errors[2]["reason"]
    assert "got an array" in errors[2]["reason"] and "got a string" in errors[3]["reason"]
    assert ids(store) == ["i1", "i9"]
    assert attributes_of(store, "i1") == {"tier": "gold"}


def test_api_one_record_with_array_attributes_is_a_422(client: TestClient) -> None:
    r = client.post("/api/v1/interactions", json=interaction(1, attributes=["a"]))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "attributes"


def test_ndjson_file_attributes_merged_or_refused(ingestor: Ingestor, tmp_path: Path) -> None:
    f = tmp_path / "interactions.ndjson"
    lines = [interaction(1, attributes={"tier": "gold", "n": 2})]
    lines += [interaction(i, attributes=bad) for i, bad in enumerate(BAD_ATTRIBUTES, 2)]
    lines.append(interaction(6, attributes={"channel": "tv"}))  # a contract field: refused
    f.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    s = import_file(ingestor, f, "interactions")
    assert (s.rows, s.accepted, s.rejected) == (6, 1, 5)
    assert ids(ingestor.store) == ["i1"]
    assert attributes_of(ingestor.store, "i1") == {"tier": "gold", "n": 2}
    assert s.quarantine is not None
    with s.quarantine.open(newline="", encoding="utf-8") as q:
        rows = list(csv.DictReader(q))
    assert [(r["row"], r["id"], r["field"]) for r in rows] == [
        ("2", "i2", "attributes"),
        ("3", "i3", "attributes"),
        ("4", "i4", "attributes"),
        ("5", "i5", "attributes"),
        ("6", "i6", "attributes.channel"),
    ]
    assert "got an array" in rows[0]["reason"] and "got a boolean" in rows[3]["reason"]
    assert orjson.loads(rows[0]["record"]) == lines[1]  # the line as it was in the file


def test_csv_attributes_column_holds_json_objects(ingestor: Ingestor, tmp_path: Path) -> None:
    f = tmp_path / "interactions.csv"
    f.write_text(
        "interaction_id,person_id,occurred_at,touchpoint,channel,attributes\n"
        'i1,p1,2025-03-01T10:00:00Z,checkout,web,"{""tier"": ""gold""}"\n'
        'i2,p1,2025-03-01T10:00:00Z,checkout,web,"[1, 2]"\n'
        "i3,p1,2025-03-01T10:00:00Z,checkout,web,gold\n"
        "i4,p1,2025-03-01T10:00:00Z,checkout,web,\n"
    )
    s = import_file(ingestor, f, "interactions")
    assert (s.rows, s.accepted, s.rejected) == (4, 2, 2)
    assert ids(ingestor.store) == ["i1", "i4"]
    assert attributes_of(ingestor.store, "i1") == {"tier": "gold"}
    assert attributes_of(ingestor.store, "i4") == {}
    text = s.quarantine.read_text() if s.quarantine else ""
    assert "4,i3,attributes," in text and "this is no JSON" in text  # header = line 1
    assert "3,i2,attributes," in text and "got an array" in text


def test_parquet_attributes_list_refused_struct_merged(ingestor: Ingestor, tmp_path: Path) -> None:
    base = {
        "interaction_id": ["i1", "i2"],
        "person_id": ["p1", "p1"],
        "occurred_at": ["2025-03-01T10:00:00Z"] * 2,
        "touchpoint": ["checkout"] * 2,
        "channel": ["web"] * 2,
    }
    lists = tmp_path / "lists.parquet"
    pq.write_table(pa.table({**base, "attributes": [["a"], None]}), lists)
    s = import_file(ingestor, lists, "interactions")
    assert (s.accepted, s.rejected) == (1, 1)
    assert ids(ingestor.store) == ["i2"]
    structs = tmp_path / "structs.parquet"
    base["interaction_id"] = ["i3", "i4"]
    pq.write_table(pa.table({**base, "attributes": [{"tier": "gold"}, None]}), structs)
    s = import_file(ingestor, structs, "interactions")
    assert (s.accepted, s.rejected) == (2, 0)
    assert attributes_of(ingestor.store, "i3") == {"tier": "gold"}


# -- e. a pretty-printed JSON document is not NDJSON ------------------------------------------
PRETTY = orjson.dumps(interaction(1), option=orjson.OPT_INDENT_2)


def test_api_pretty_printed_ndjson_body_is_one_clear_error(client: TestClient) -> None:
    for body in (PRETTY, PRETTY + b"\n" + PRETTY):  # one document, or one after another
        r = client.post("/api/v1/interactions", content=body, headers={"content-type": NDJSON})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_payload"
        assert "looks like a pretty-printed JSON document" in err["message"]
        assert "NDJSON needs one record per line" in err["message"]
        assert "application/json" in err["message"]
    r = client.post(
        "/api/v1/interactions",
        content=orjson.dumps([interaction(1), interaction(2)]),
        headers={"content-type": NDJSON},
    )
    assert r.status_code == 400 and "one JSON array" in r.json()["error"]["message"]
    # the same document as application/json is fine
    r = client.post(
        "/api/v1/interactions", content=PRETTY, headers={"content-type": "application/json"}
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1


def test_api_ndjson_with_a_bad_line_still_stores_the_good_ones(client: TestClient) -> None:
    body = b"{not json\n" + orjson.dumps(interaction(2)) + b"\n"
    r = client.post("/api/v1/interactions", content=body, headers={"content-type": NDJSON})
    assert r.status_code == 200, r.text
    assert (r.json()["accepted"], r.json()["rejected"]) == (1, 1)


@pytest.mark.parametrize(
    "text",
    [
        PRETTY.decode(),
        PRETTY.decode() + "\n" + PRETTY.decode(),
        '{"interaction_id": "i1",\n "person_id": "p1"}\n',  # another style, one document
    ],
    ids=["one", "stream", "compact-style"],
)
def test_pretty_printed_ndjson_file_is_one_clear_error(
    ingestor: Ingestor, tmp_path: Path, text: str
) -> None:
    f = tmp_path / "interactions.ndjson"
    f.write_text(text)
    with pytest.raises(PayloadError) as e:
        import_file(ingestor, f, "interactions")
    msg = str(e.value)
    assert "interactions.ndjson looks like a pretty-printed JSON document" in msg
    assert "NDJSON needs one record per line" in msg and "jq -c" in msg
    assert ids(ingestor.store) == []


def test_ndjson_file_with_a_broken_first_line_imports_the_rest(
    ingestor: Ingestor, tmp_path: Path
) -> None:
    f = tmp_path / "interactions.ndjson"
    f.write_bytes(b'{"interaction_id": "i1",\n' + orjson.dumps(interaction(2)) + b"\n")
    s = import_file(ingestor, f, "interactions")
    assert (s.accepted, s.rejected) == (1, 1)


def test_an_ndjson_file_and_the_api_judge_a_value_alike(
    client: TestClient, ingestor: Ingestor, tmp_path: Path
) -> None:
    """A boolean where a field wants a text, an object where it wants a single value: the file
    door stored the one as its Python text ("{'a': 1}"), as the API refuses both; now both
    doors quarantine them, with the same reasons, and keep the good record beside them."""

    def body(first: int) -> bytes:
        records = [
            interaction(first, channel=True),
            interaction(first + 1, touchpoint={"key": "checkout"}),
            interaction(first + 2, loyalty={"tier": "gold"}),  # an extra: kept as an attribute
            interaction(first + 3, value=True),  # a boolean among numbers: not 1.0
            interaction(first + 4, value=1.5),
        ]
        return b"".join(orjson.dumps(r) + b"\n" for r in records)

    r = client.post("/api/v1/interactions", content=body(11), headers={"content-type": NDJSON})
    assert (r.json()["accepted"], r.json()["rejected"]) == (2, 3), r.text
    api = sorted((e["field"], e["reason"]) for e in r.json()["errors"])
    f = tmp_path / "interactions.ndjson"
    f.write_bytes(body(1))
    s = import_file(ingestor, f, "interactions", quarantine=tmp_path / "q.csv")
    assert (s.accepted, s.rejected) == (2, 3)
    with (tmp_path / "q.csv").open() as q:
        quarantined = sorted((row["field"], row["reason"]) for row in csv.DictReader(q))
    assert quarantined == api and [f for f, _ in quarantined] == ["channel", "touchpoint", "value"]
    assert "expected a single value, got an object" in quarantined[1][1]
    assert "not a number" in quarantined[2][1]
    assert attributes_of(ingestor.store, "i3") == {"loyalty": {"tier": "gold"}}


@pytest.mark.parametrize("name", ["e", "x", "v", "_item", "E"])
def test_an_extra_field_named_like_the_validators_own_names_is_kept(
    client: TestClient, store: Store, name: str
) -> None:
    """Schemathesis found a 500: an extra field named ``e`` shadowed the validator's SQL
    lambda parameter (DuckDB's binder refused the batch). Any extra field name is data."""
    body = [interaction(1, **{name: {"k": 1}, "channels_seen": "web;app"}), interaction(2)]
    r = client.post("/api/v1/interactions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2
    assert attributes_of(store, "i1")[name] == {"k": 1}
