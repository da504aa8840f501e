"""Request bodies → records → Arrow: every shape of body, every way it can be wrong."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pyarrow as pa
import pytest

from corridor.domain.contract import get_kind
from corridor.domain.corridor_map import CorridorMap
from corridor.errors import CorridorMapError, PayloadError
from corridor.ingest.payload import (
    MAX_FIELDS,
    RECORD,
    parse_map,
    parse_records,
    records_to_batch,
    records_to_table,
)
from corridor.ingest.validate import ROW, Validator, Vocabularies

INTERACTIONS = get_kind("interactions")
FEEDBACK = get_kind("feedback")


def interaction(i: int, **extra: object) -> dict[str, object]:
    rec: dict[str, object] = {
        "interaction_id": f"i{i}",
        "person_id": f"p{i % 7}",
        "occurred_at": "2025-03-01T10:00:00Z",
        "touchpoint": "checkout",
        "channel": "web",
        "value": 10.5,
    }
    rec.update(extra)
    return rec


@pytest.fixture
def validator(small_map: CorridorMap) -> Iterator[Validator]:
    v = Validator(Vocabularies.from_map(small_map))
    yield v
    v.close()


# -- parse_records --------------------------------------------------------------------------
def test_one_object() -> None:
    parsed = parse_records(orjson.dumps(interaction(1)), "application/json")
    assert parsed.records == [interaction(1)]
    assert parsed.rows == [1]
    assert parsed.rejections == []


def test_array_numbers_items_from_one() -> None:
    parsed = parse_records(orjson.dumps([interaction(i) for i in range(3)]), None)
    assert [r["interaction_id"] for r in parsed.records] == ["i0", "i1", "i2"]
    assert parsed.rows == [1, 2, 3]


def test_array_element_that_is_not_an_object_is_rejected_alone() -> None:
    body = orjson.dumps([interaction(1), 5, "x", None, [1], interaction(2)])
    parsed = parse_records(body, "application/json")
    assert parsed.rows == [1, 6]
    assert [(r.row, r.field) for r in parsed.rejections] == [
        (2, RECORD),
        (3, RECORD),
        (4, RECORD),
        (5, RECORD),
    ]
    assert "got a number" in parsed.rejections[0].reason
    assert "got an array" in parsed.rejections[3].reason
    assert parsed.items == 6


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/jsonl", None])
def test_ndjson_rows_are_line_numbers(content_type: str | None) -> None:
    lines = [
        orjson.dumps(interaction(1)),
        b"",  # blank lines are skipped but still counted
        b'{"interaction_id": "bad", ',
        orjson.dumps(interaction(2)),
        b"[1, 2]",
        b"   ",
        orjson.dumps(interaction(3)) + b"\r",
    ]
    parsed = parse_records(b"\n".join(lines) + b"\n", content_type)
    assert parsed.rows == [1, 4, 7]
    assert [r["interaction_id"] for r in parsed.records] == ["i1", "i2", "i3"]
    bad = {r.row: r for r in parsed.rejections}
    assert set(bad) == {3, 5}
    assert bad[3].field == RECORD and bad[3].reason.startswith("invalid JSON: ")
    assert "line 3" in bad[3].reason
    assert "expected a JSON object" in bad[5].reason


def test_pretty_printed_json_is_not_mistaken_for_ndjson() -> None:
    body = orjson.dumps([interaction(1), interaction(2)], option=orjson.OPT_INDENT_2)
    parsed = parse_records(body, None)
    assert parsed.rows == [1, 2]


def test_byte_order_mark_is_ignored() -> None:
    assert parse_records(b"\xef\xbb\xbf" + orjson.dumps(interaction(1))).rows == [1]


@pytest.mark.parametrize(
    ("body", "content_type", "expect"),
    [
        (b"", None, "empty"),
        (b"  \n\t ", "application/json", "empty"),
        (b"\n\n", "application/x-ndjson", "empty"),
        (b'{"a": 1,}', None, "line 1, column 8"),
        (b'[\n  {"a": 1},\n  {"a": 2\n]', None, "line 4, column 1"),
        (b'"just a string"', None, "single JSON string"),
        (b"42", None, "single JSON number"),
        (b"null", None, "single JSON null"),
        (b"true", None, "single JSON boolean"),
        (b'{"a": "caf\xe9"}', None, "byte offset 10"),
        (b'{"a": 1}\n{"b": "\xff"}\n', "application/x-ndjson", "byte offset 16 (line 2)"),
    ],
)
def test_unreadable_bodies_raise_payload_error(
    body: bytes, content_type: str | None, expect: str
) -> None:
    with pytest.raises(PayloadError) as e:
        parse_records(body, content_type)
    assert expect in str(e.value)
    assert e.value.status_code == 400


def test_invalid_utf8_message_names_the_byte() -> None:
    with pytest.raises(PayloadError, match=r"not valid UTF-8: byte 0xe9 at byte offset 10"):
        parse_records(b'{"a": "caf\xe9"}')


# -- records_to_table -----------------------------------------------------------------------
def test_columns_for_every_key_and_row_numbers() -> None:
    recs = [interaction(1), interaction(2, basket=3), {"interaction_id": "i3", "note": "x"}]
    t = records_to_table(INTERACTIONS, recs, [1, 5, 9])
    assert t.column(ROW).to_pylist() == [1, 5, 9]
    assert t.schema.field(ROW).type == pa.int64()
    assert t.column("basket").to_pylist() == [None, 3, None]
    assert t.column("note").to_pylist() == [None, None, "x"]
    assert t.column("value").to_pylist() == [10.5, 10.5, None]
    assert t.column("interaction_id").to_pylist() == ["i1", "i2", "i3"]


def test_mixed_types_fall_back_to_text() -> None:
    recs = [interaction(1, value=3), interaction(2, value="4.5"), interaction(3, value="abc")]
    t = records_to_table(INTERACTIONS, recs, [1, 2, 3])
    assert t.column("value").to_pylist() == ["3", "4.5", "abc"]


@pytest.mark.parametrize("values", [[True, False], [1.5, True], [1, True], [True, "x"]])
def test_booleans_never_pass_as_numbers(values: list[object]) -> None:
    recs = [interaction(i, value=v) for i, v in enumerate(values)]
    col = records_to_table(INTERACTIONS, recs, list(range(1, len(values) + 1))).column("value")
    got = col.to_pylist()
    for v, g in zip(values, got, strict=True):
        if isinstance(v, bool):
            assert g == ("true" if v else "false")


def test_booleans_are_rejected_by_validation_as_not_a_number(validator: Validator) -> None:
    recs = [
        {
            "feedback_id": f"f{i}",
            "occurred_at": "2025-03-01",
            "source": "survey",
            "nps": v,
            "expectation": 7.5,
        }
        for i, v in enumerate([True, 9, False])
    ]
    recs[2]["expectation"] = True
    res = validator.validate(FEEDBACK, records_to_table(FEEDBACK, recs, [1, 2, 3]))
    reasons = {(r.row, r.field): r.reason for r in res.rejections}
    assert reasons == {
        (1, "nps"): "'true' is not a number",
        (3, "nps"): "'false' is not a number",
        (3, "expectation"): "'true' is not a number",
    }
    assert res.valid.column("nps").to_pylist() == [9]


def test_nested_attributes_merge_into_extras_and_keep_their_values(validator: Validator) -> None:
    recs = [
        interaction(1, attributes={"basket": 3, "tags": ["a", "b"], "meta": {"k": 1}}),
        interaction(2, basket="large", attributes=None),
        interaction(3, attributes={"basket": 1}, basket=2),  # top level wins
    ]
    t = records_to_table(INTERACTIONS, recs, [1, 2, 3])
    assert "attributes" not in t.column_names
    res = validator.validate(INTERACTIONS, t)
    assert res.rejections == []
    attrs = [orjson.loads(a) for a in res.valid.column("attributes").to_pylist()]
    assert attrs[0] == {"basket": 3, "tags": ["a", "b"], "meta": {"k": 1}}
    assert attrs[1]["basket"] == "large"
    assert attrs[2]["basket"] == 2


def test_attributes_cannot_fill_contract_fields() -> None:
    recs = [interaction(1), interaction(2, attributes={"channel": "tv", "x": 1})]
    table, rejections = records_to_batch(INTERACTIONS, recs, [1, 2])
    assert table.column("interaction_id").to_pylist() == ["i1"]
    assert [(r.row, r.id, r.field) for r in rejections] == [(2, "i2", "attributes.channel")]
    assert "top level" in rejections[0].reason


def test_object_where_a_value_belongs_is_rejected_alone() -> None:
    recs = [interaction(1), interaction(2, touchpoint={"key": "checkout"}), interaction(3)]
    table, rejections = records_to_batch(INTERACTIONS, recs, [1, 2, 3])
    assert table.column("interaction_id").to_pylist() == ["i1", "i3"]
    assert [(r.row, r.id, r.field) for r in rejections] == [(2, "i2", "touchpoint")]
    assert "expected a single value, got an object" in rejections[0].reason
    with pytest.raises(PayloadError, match="item 2, touchpoint"):
        records_to_table(INTERACTIONS, recs, [1, 2, 3])


def test_field_names_that_differ_only_in_case_are_named() -> None:
    recs = [interaction(1), interaction(2, Touchpoint="checkout"), interaction(3, Note="a")]
    recs.append(interaction(4, note="b"))
    table, rejections = records_to_batch(INTERACTIONS, recs, [1, 2, 3, 4])
    assert sorted(table.column("interaction_id").to_pylist()) == ["i1", "i3"]
    assert {(r.row, r.field) for r in rejections} == {(2, "Touchpoint"), (4, "note")}
    assert "only in letter case" in rejections[0].reason


@pytest.mark.parametrize("key", ["", "_row", "a\x00b", "x" * 300])
def test_field_names_that_cannot_be_columns_are_rejected(key: str) -> None:
    table, rejections = records_to_batch(
        INTERACTIONS, [interaction(1), interaction(2, **{key: 1})], [1, 2]
    )
    assert table.num_rows == 1
    assert [(r.row, r.field) for r in rejections] == [(2, key)]


def test_too_many_field_names() -> None:
    recs = [interaction(i, **{f"k{i}": 1}) for i in range(MAX_FIELDS + 1)]
    with pytest.raises(PayloadError, match="different field names"):
        records_to_table(INTERACTIONS, recs, list(range(1, len(recs) + 1)))


def test_empty_batch() -> None:
    table, rejections = records_to_batch(INTERACTIONS, [], [])
    assert table.num_rows == 0 and rejections == []


def test_large_batch_converts_whole() -> None:
    """50,000 records go through parse and conversion intact (their speed is measured by
    benchmarks/ingest.py, not asserted here)."""
    recs = [interaction(i, outcome="purchase", duration_minutes=i % 9) for i in range(50_000)]
    parsed = parse_records(orjson.dumps(recs), "application/json")
    table = records_to_table(INTERACTIONS, parsed.records, parsed.rows)
    assert table.num_rows == 50_000
    assert table.column("_row").to_pylist() == list(range(1, 50_001))
    assert table.column("duration_minutes").to_pylist()[:10] == [i % 9 for i in range(10)]


# -- parse_map ------------------------------------------------------------------------------
def test_map_from_yaml_and_json(small_map: CorridorMap) -> None:
    as_json = orjson.dumps(small_map.model_dump(exclude_none=True))
    assert parse_map(as_json, "application/json") == small_map
    assert parse_map(small_map.to_yaml().encode(), "application/yaml") == small_map
    assert parse_map(as_json, None) == small_map  # JSON is YAML too


@pytest.mark.parametrize(
    ("body", "content_type", "expect"),
    [
        (b"", None, "empty"),
        (b"stages: [a\n", "application/yaml", "not valid YAML at line 2"),
        (b'{"stages": [}', "application/json", "not valid JSON"),
        (b"- a\n- b\n", None, "expected a mapping"),
        (b"stages: [a]\ntouchpoints: []\n", None, "touchpoints"),
        (b"stages: [\xff]", None, "not valid UTF-8"),
    ],
)
def test_bad_maps(body: bytes, content_type: str | None, expect: str) -> None:
    with pytest.raises(CorridorMapError) as e:
        parse_map(body, content_type)
    assert expect in str(e.value)
