"""File import (CSV, NDJSON, Parquet): good rows land, bad rows are quarantined with their line
number, field and reason, re-imports store nothing twice, and whole-file problems are refused
before anything is imported. Runs on DuckDB and PostgreSQL through the fixtures."""

from __future__ import annotations

import csv
import gzip
import random
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import SMALL_MAP
from corridor.errors import ContractError, CorridorError, PayloadError
from corridor.ingest import csv_reader
from corridor.ingest.files import ImportSummary, import_dataset, import_file
from corridor.ingest.pipeline import Ingestor

HEADER = "interaction_id,person_id,occurred_at,touchpoint,channel,value,duration_minutes,note"


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def quarantine_rows(path: Path | None) -> list[dict[str, str]]:
    assert path is not None
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def stored_ids(ingestor: Ingestor, table: str = "interactions", id_field: str = "") -> list[str]:
    col = id_field or {"interactions": "interaction_id", "feedback": "feedback_id"}.get(
        table, "person_id"
    )
    return sorted(r[0] for r in ingestor.store.query(f"SELECT {col} FROM {table}"))


# -- happy paths ------------------------------------------------------------------------------
def test_csv_happy_path(ingestor: Ingestor, tmp_path: Path) -> None:
    f = write(
        tmp_path / "interactions.csv",
        f"{HEADER}\n"
        "i1,p1,2025-03-01T10:00:00Z,checkout,web,12.5,2.5,first\n"
        "i2,p2,2025-03-01T11:00:00+01:00,support_call,VOICE,,,\n"
        'i3,p1,2025-03-02 09:30:00,ad_click,social,3,,"quoted, with comma"\n',
    )
    calls: list[tuple[str, float]] = []
    s = import_file(ingestor, f, "interactions", progress=lambda lbl, x: calls.append((lbl, x)))
    assert isinstance(s, ImportSummary)
    assert (s.rows, s.accepted, s.inserted, s.duplicates, s.rejected) == (3, 3, 3, 0, 0)
    assert s.quarantine is None and not (tmp_path / "interactions.csv.quarantine.csv").exists()
    assert s.kind == "interactions" and s.path == f and s.seconds > 0 and s.merges == 0
    assert calls and calls[-1][1] == pytest.approx(1.0)
    rows = ingestor.store.query(
        "SELECT interaction_id, person_id, touchpoint, channel, value, duration_minutes, "
        "CAST(occurred_at AS VARCHAR), CAST(attributes AS VARCHAR) FROM interactions "
        "ORDER BY interaction_id"
    )
    assert [r[:6] for r in rows] == [
        ("i1", "p1", "checkout", "web", 12.5, 2.5),
        ("i2", "p2", "support_call", "voice", None, None),
        ("i3", "p1", "ad_click", "social", 3.0, None),
    ]
    assert rows[1][6].startswith("2025-03-01 10:00:00")  # +01:00 stored as UTC
    assert orjson.loads(rows[2][7]) == {"note": "quoted, with comma"}
    # events before profiles: the persons exist now
    assert stored_ids(ingestor, "people") == ["p1", "p2"]


def test_ndjson_happy_path(ingestor: Ingestor, tmp_path: Path) -> None:
    lines = [
        {"interaction_id": "n1", "person_id": "p1", "occurred_at": "2025-03-01T10:00:00Z",
         "touchpoint": "checkout", "channel": "web", "value": 10, "duration_minutes": 1.5},
        {"interaction_id": "n2", "email": "Ann@Example.com", "occurred_at": "2025-03-01T10:05:00Z",
         "touchpoint": "home_delivery", "channel": "partner", "value": "7.25",
         "extra": {"a": 1}},
    ]  # fmt: skip
    f = write(tmp_path / "events.jsonl", "\n".join(orjson.dumps(x).decode() for x in lines) + "\n")
    s = import_file(ingestor, f, "interactions")
    assert (s.rows, s.inserted, s.rejected, s.quarantine) == (2, 2, 0, None)
    rows = ingestor.store.query(
        "SELECT interaction_id, value, duration_minutes FROM interactions ORDER BY 1"
    )
    assert rows == [("n1", 10.0, 1.5), ("n2", 7.25, None)]
    # a person known only by e-mail got a derived id and the identity (normalised) is stored
    assert ingestor.store.query("SELECT id_type, id_value FROM identities") == [
        ("email", "ann@example.com")
    ]


def test_parquet_happy_path(ingestor: Ingestor, tmp_path: Path) -> None:
    table = pa.table(
        {
            "feedback_id": ["f1", "f2"],
            "person_id": ["p1", None],
            "occurred_at": pa.array([1_740_823_200_000_000, 1_740_826_800_000_000]).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "source": ["survey", "review"],
            "touchpoint": ["checkout", None],
            "nps": pa.array([9, 3], pa.int64()),
            "expectation": [8.0, 7.5],
            "experience": [9.0, 2.0],
            "text": ["great", "slow delivery"],
        }
    )
    f = tmp_path / "feedback.parquet"
    pq.write_table(table, f)
    s = import_file(ingestor, f, "feedback")
    assert (s.rows, s.inserted, s.rejected) == (2, 2, 0)
    assert ingestor.store.query("SELECT feedback_id, nps, experience FROM feedback ORDER BY 1") == [
        ("f1", 9, 9.0),
        ("f2", 3, 2.0),
    ]


def test_csv_gz_and_bom(ingestor: Ingestor, tmp_path: Path) -> None:
    text = "\ufeff" + HEADER + "\ni1,p1,2025-03-01T10:00:00Z,checkout,web,1,1,x\n"
    f = tmp_path / "interactions.csv.gz"
    f.write_bytes(gzip.compress(text.encode()))
    s = import_file(ingestor, f, "interactions")
    assert (s.rows, s.inserted, s.rejected) == (1, 1, 0)


def test_identity_column_instead_of_person_id(ingestor: Ingestor, tmp_path: Path) -> None:
    f = write(
        tmp_path / "i.csv",
        "interaction_id,email,occurred_at,touchpoint,channel\n"
        "i1,a@example.com,2025-03-01T10:00:00Z,checkout,web\n"
        "i2,a@example.com,2025-03-02T10:00:00Z,checkout,web\n",
    )
    s = import_file(ingestor, f, "interactions")
    assert (s.inserted, s.rejected) == (2, 0)
    persons = {r[0] for r in ingestor.store.query("SELECT person_id FROM interactions")}
    assert len(persons) == 1 and next(iter(persons)).startswith("anon-")


# -- bad rows -----------------------------------------------------------------------------------
BAD_CSV = (
    f"{HEADER}\n"  # line 1
    "g1,p1,2025-03-01T10:00:00Z,checkout,web,10,1,ok\n"  # 2
    'g2,p2,2025-03-01T10:00:00Z,checkout,web,10,1,"two\nlines"\n'  # 3-4
    "b1,p3,2025-03-01T10:00:00Z,checkout,web,ten,1,bad number\n"  # 5
    "b2,p4,2025-03-01T10:00:00Z,teleport,web,1,1,unknown touch point\n"  # 6
    "\n"  # 7: a blank line is not a record
    "b3,p5,yesterday,checkout,web,1,1,bad time\n"  # 8
    "b4,p6,2025-03-01T10:00:00Z,checkout\n"  # 9: too few fields
    "g3,p7,2025-03-01T10:00:00Z,checkout,web,1,1,ok\n"  # 10
    "b5,p8,2025-03-01T10:00:00Z,checkout,web,1,1,x,surplus\n"  # 11: too many fields
    "b6,p9,2025-03-01T10:00:00Z,checkout,fax,1,-4,two problems\n"  # 12
    'g4,p1,2025-03-01T10:00:00Z,home_delivery,partner,1,1,"three\nline\nnote"\n'  # 13-15
    "b7,,2025-03-01T10:00:00Z,checkout,web,1,1,no person\n"  # 16
    "g5,p1,2025-03-01T10:00:00Z,checkout,web,1,1,last\n"  # 17
)
EXPECTED_BAD = [
    ("5", "b1", "value", "'ten' is not a number"),
    ("6", "b2", "touchpoint", "unknown touch point 'teleport'"),
    ("8", "b3", "occurred_at", "cannot read 'yesterday' as a time"),
    ("9", "b4", "(record)", "expected 8 fields, found 4"),
    ("11", "b5", "(record)", "expected 8 fields, found 9"),
    ("12", "b6", "channel", "unknown channel 'fax'"),
    ("12", "b6", "duration_minutes", "'-4' must be at least 0"),
    ("16", "b7", "person_id", "name the person"),
]


def _check_bad(rows: list[dict[str, str]]) -> None:
    got = [(r["row"], r["id"], r["field"], r["reason"]) for r in rows]
    assert [g[:3] for g in got] == [e[:3] for e in EXPECTED_BAD]
    for g, e in zip(got, EXPECTED_BAD, strict=True):
        assert e[3] in g[3], (g, e)


def test_csv_line_numbers_across_blocks(
    ingestor: Ingestor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many small pyarrow blocks (it parses ahead of what it returns), multi-line values, blank
    lines and malformed rows: every problem still names the physical line it starts on."""
    monkeypatch.setattr(csv_reader, "CSV_BLOCK", 2048)
    rng = random.Random(7)
    text, line, expected = [HEADER], 2, []
    for i in range(1500):
        pick = rng.random()
        row = f"r{i},p{i % 40},2025-03-01T10:00:00Z,checkout,web,1,1"
        if pick < 0.08:
            text.append("")  # blank line
            line += 1
        elif pick < 0.16:
            text.append(row)  # 7 fields of 8
            expected.append((line, f"r{i}", "(record)"))
            line += 1
        elif pick < 0.24:
            text.append(f"r{i},p1,2025-03-01T10:00:00Z,nowhere,web,1,1,x")
            expected.append((line, f"r{i}", "touchpoint"))
            line += 1
        elif pick < 0.32:
            text.append(f'r{i},p1,2025-03-01T10:00:00Z,nowhere,web,1,1,"a\nb\n\nc"')
            expected.append((line, f"r{i}", "touchpoint"))
            line += 4
        elif pick < 0.40:
            text.append(f'{row},"multi\nline",extra')  # 9 fields, over two lines
            expected.append((line, f"r{i}", "(record)"))
            line += 2
        elif pick < 0.55:
            text.append(f'{row},"two\nlines"')
            line += 2
        else:
            text.append(f"{row},plain")
            line += 1
    f = write(tmp_path / "big.csv", "\n".join(text) + "\n")
    for chunk_rows in (100_000, 97):
        s = import_file(ingestor, f, "interactions", chunk_rows=chunk_rows)
        got = [(int(r["row"]), r["id"], r["field"]) for r in quarantine_rows(s.quarantine)]
        assert got == expected
        assert s.rejected == len(expected)


@pytest.mark.parametrize("chunk_rows", [100_000, 2, 1])
def test_csv_bad_rows_quarantined(ingestor: Ingestor, tmp_path: Path, chunk_rows: int) -> None:
    f = write(tmp_path / "interactions.csv", BAD_CSV)
    s = import_file(ingestor, f, "interactions", chunk_rows=chunk_rows)
    assert (s.rows, s.accepted, s.inserted, s.rejected) == (12, 5, 5, 7)
    assert s.quarantine == tmp_path / "interactions.csv.quarantine.csv"
    rows = quarantine_rows(s.quarantine)
    _check_bad(rows)
    # the record column holds the original row: the parsed fields, or the raw text
    assert orjson.loads(rows[0]["record"])["value"] == "ten"
    assert orjson.loads(rows[3]["record"]) == "b4,p6,2025-03-01T10:00:00Z,checkout"
    assert stored_ids(ingestor) == ["g1", "g2", "g3", "g4", "g5"]
    note = ingestor.store.query(
        "SELECT CAST(attributes AS VARCHAR) FROM interactions WHERE interaction_id = 'g4'"
    )
    assert orjson.loads(note[0][0]) == {"note": "three\nline\nnote"}


def test_a_quote_left_open_is_named_as_the_cause(ingestor: Ingestor, tmp_path: Path) -> None:
    """A quote left open joins the next line to the record; when that leaves it with too many
    fields the reason says so (a quoted value over several lines stays allowed: g4 above)."""
    f = write(
        tmp_path / "interactions.csv",
        HEADER + "\n"
        'o1,p1,2025-03-01T10:00:00Z,checkout,web,1,1,"open\n'
        'o2,p2,2025-03-01T10:00:00Z,checkout,web,1,1",x\n'
        "o3,p3,2025-03-01T10:00:00Z,checkout,web,1,1,ok\n",
    )
    s = import_file(ingestor, f, "interactions")
    assert (s.accepted, s.rejected) == (1, 1)
    (bad,) = quarantine_rows(s.quarantine)
    assert bad["row"] == "2" and "expected 8 fields, found 9" in bad["reason"]
    assert 'a field opened with a double quote (") runs on over the next line' in bad["reason"]


def test_feedback_out_of_range_scores(ingestor: Ingestor, tmp_path: Path) -> None:
    f = write(
        tmp_path / "feedback.csv",
        "feedback_id,occurred_at,source,nps,csat,ces,emotion,text\n"
        "f1,2025-03-01T10:00:00Z,survey,10,5,7,3,fine\n"
        "f2,2025-03-01T10:00:00Z,survey,11,5,7,3,nps too high\n"
        "f3,2025-03-01T10:00:00Z,survey,7,0,7,3,csat too low\n"
        "f4,2025-03-01T10:00:00Z,survey,7.5,3,7,3,not whole\n"
        "f5,2025-03-01T10:00:00Z,poll,7,3,7,-4,bad source and emotion\n",
    )
    s = import_file(ingestor, f, "feedback")
    assert (s.rows, s.inserted, s.rejected) == (5, 1, 4)
    got = [(r["row"], r["id"], r["field"]) for r in quarantine_rows(s.quarantine)]
    assert got == [
        ("3", "f2", "nps"),
        ("4", "f3", "csat"),
        ("5", "f4", "nps"),
        ("6", "f5", "source"),
        ("6", "f5", "emotion"),
    ]
    reasons = [r["reason"] for r in quarantine_rows(s.quarantine)]
    assert "nps must be between 0 and 10" in reasons[0]
    assert "must be a whole number" in reasons[2]


def test_ndjson_bad_lines(ingestor: Ingestor, tmp_path: Path) -> None:
    good = {"interaction_id": "g1", "person_id": "p1", "occurred_at": "2025-03-01T10:00:00Z",
            "touchpoint": "checkout", "channel": "web"}  # fmt: skip
    lines = [
        orjson.dumps(good).decode(),  # 1
        "",  # 2: blank
        '{"interaction_id": "b1", "person_id": ',  # 3: invalid JSON
        "[1, 2]",  # 4: not an object
        orjson.dumps({**good, "interaction_id": "b2", "value": "lots"}).decode(),  # 5
        orjson.dumps({**good, "interaction_id": "g2", "value": 4}).decode(),  # 6
        orjson.dumps({**good, "interaction_id": "b3", "occurred_at": "1900-01-01"}).decode(),  # 7
        orjson.dumps({**good, "interaction_id": "g3"}).decode(),  # 8 (no newline at the end)
    ]
    f = write(tmp_path / "interactions.ndjson", "\n".join(lines))
    for chunk_rows in (100, 2):
        s = import_file(ingestor, f, "interactions", chunk_rows=chunk_rows)
        assert (s.rows, s.accepted, s.rejected) == (7, 3, 4)
        rows = quarantine_rows(s.quarantine)
        assert [(r["row"], r["id"], r["field"]) for r in rows] == [
            ("3", "", "(record)"),
            ("4", "", "(record)"),
            ("5", "b2", "value"),
            ("7", "b3", "occurred_at"),
        ]
        assert rows[0]["reason"].startswith("invalid JSON")
        assert "expected a JSON object" in rows[1]["reason"]
        assert "outside 1970-2100" in rows[3]["reason"]
        assert orjson.loads(rows[2]["record"]) == {**good, "interaction_id": "b2", "value": "lots"}
    assert stored_ids(ingestor) == ["g1", "g2", "g3"]


def test_parquet_bad_rows_use_row_index(ingestor: Ingestor, tmp_path: Path) -> None:
    f = tmp_path / "interactions.parquet"
    pq.write_table(
        pa.table(
            {
                "interaction_id": ["a", "b", "c", "d"],
                "person_id": ["p1", "p1", "p2", "p2"],
                "occurred_at": ["2025-03-01T10:00:00Z", "2025-03-01", "soon", "2025-03-02"],
                "touchpoint": ["checkout", "checkout", "checkout", "nope"],
                "channel": ["web", "web", "web", "web"],
                "value": [1.0, float("nan"), 2.0, 3.0],
            }
        ),
        f,
    )
    s = import_file(ingestor, f, "interactions", chunk_rows=3)
    assert (s.rows, s.inserted, s.rejected) == (4, 1, 3)
    got = [(r["row"], r["id"], r["field"]) for r in quarantine_rows(s.quarantine)]
    assert got == [("2", "b", "value"), ("3", "c", "occurred_at"), ("4", "d", "touchpoint")]


# -- idempotence and the quarantine file ---------------------------------------------------------
def test_reimport_is_idempotent(ingestor: Ingestor, tmp_path: Path) -> None:
    f = write(tmp_path / "interactions.csv", BAD_CSV)
    first = import_file(ingestor, f, "interactions", chunk_rows=3)
    again = import_file(ingestor, f, "interactions", chunk_rows=3)
    assert (again.accepted, again.inserted, again.duplicates, again.rejected) == (5, 0, 5, 7)
    assert ingestor.store.count("interactions") == first.inserted == 5
    assert ingestor.store.count("people") == 3  # p1, p2, p7: persons of the stored rows
    _check_bad(quarantine_rows(again.quarantine))  # replaced, not appended to

    # fixed file: the stale quarantine goes away
    lines = BAD_CSV.split("\n")
    write(f, "\n".join([lines[0], lines[1], lines[-2]]) + "\n")  # header, g1, g5
    fixed = import_file(ingestor, f, "interactions")
    assert fixed.quarantine is None and (fixed.inserted, fixed.duplicates) == (0, 2)
    assert not (tmp_path / "interactions.csv.quarantine.csv").exists()


def test_resume_after_partial_import(ingestor: Ingestor, tmp_path: Path) -> None:
    """A re-run after a crash: the stored chunks are skipped, the rest is stored once."""
    rows = [f"i{i},p{i % 3},2025-03-01T10:00:00Z,checkout,web,{i},1,x" for i in range(1, 9)]
    part = write(tmp_path / "part.csv", HEADER + "\n" + "\n".join(rows[:3]) + "\n")
    assert import_file(ingestor, part, "interactions").inserted == 3
    whole = write(tmp_path / "whole.csv", HEADER + "\n" + "\n".join(rows) + "\n")
    s = import_file(ingestor, whole, "interactions", chunk_rows=2)
    assert (s.accepted, s.inserted, s.duplicates, s.rejected) == (8, 5, 3, 0)
    assert stored_ids(ingestor) == sorted(f"i{i}" for i in range(1, 9))
    # one committed transaction (one ingest_batches line) per chunk
    batches = ingestor.store.query(
        "SELECT accepted, duplicates FROM ingest_batches WHERE source = 'file:whole.csv' "
        "ORDER BY received_at"
    )
    assert sorted(batches) == [(2, 0), (2, 0), (2, 1), (2, 2)]


def test_quarantine_argument_and_duplicates_within_file(ingestor: Ingestor, tmp_path: Path) -> None:
    f = write(
        tmp_path / "i.csv",
        f"{HEADER}\n"
        "i1,p1,2025-03-01T10:00:00Z,checkout,web,1,1,a\n"
        "i1,p1,2025-03-01T10:00:00Z,checkout,web,1,1,a\n"
        "i2,p1,2025-03-01T10:00:00Z,nowhere,web,1,1,a\n",
    )
    target = tmp_path / "out" / "bad.csv"
    s = import_file(ingestor, f, "interactions", quarantine=target)
    assert s.quarantine == target and len(quarantine_rows(target)) == 1
    assert (s.accepted, s.inserted, s.duplicates) == (2, 1, 1)
    assert ingestor.store.count("interactions") == 1


def test_header_only_imports_nothing(ingestor: Ingestor, tmp_path: Path) -> None:
    s = import_file(ingestor, write(tmp_path / "i.csv", HEADER + "\n"), "interactions")
    assert (s.rows, s.inserted, s.rejected, s.quarantine) == (0, 0, 0, None)
    pq.write_table(
        pa.table({n: pa.array([], pa.string()) for n in HEADER.split(",")}),
        tmp_path / "i.parquet",
    )
    assert import_file(ingestor, tmp_path / "i.parquet", "interactions").rows == 0


# -- whole-file problems -------------------------------------------------------------------------
def _refused(ingestor: Ingestor, path: Path, kind: str, **kw: object) -> CorridorError:
    with pytest.raises(CorridorError) as info:
        import_file(ingestor, path, kind, **kw)  # type: ignore[arg-type]
    assert ingestor.store.count(kind) == 0
    assert not Path(str(path) + ".quarantine.csv").exists()
    return info.value


def test_missing_and_empty_files(ingestor: Ingestor, tmp_path: Path) -> None:
    e = _refused(ingestor, tmp_path / "nope.csv", "interactions")
    assert isinstance(e, PayloadError) and "does not exist" in str(e)
    e = _refused(ingestor, write(tmp_path / "empty.csv", ""), "interactions")
    assert isinstance(e, PayloadError) and "empty" in str(e)
    e = _refused(ingestor, write(tmp_path / "blank.csv", "\n\n  \n"), "interactions")
    assert "empty" in str(e) and "header" in str(e)
    e = _refused(ingestor, write(tmp_path / "blank.ndjson", "\n\n"), "interactions")
    assert "empty" in str(e)


def test_unknown_format(ingestor: Ingestor, tmp_path: Path) -> None:
    e = _refused(ingestor, write(tmp_path / "data.xlsx", "x"), "interactions")
    assert isinstance(e, ContractError)
    for allowed in (".csv", ".ndjson", ".jsonl", ".parquet"):
        assert allowed in str(e)
    e = _refused(ingestor, write(tmp_path / "data.txt", HEADER), "interactions", fmt="excel")
    assert "csv, ndjson, parquet" in str(e)
    # an explicit format overrides the name
    f = write(tmp_path / "data.txt", HEADER + "\ni1,p1,2025-03-01T10:00:00Z,checkout,web,1,1,x\n")
    assert import_file(ingestor, f, "interactions", fmt="csv").inserted == 1


def test_missing_required_column_suggests(ingestor: Ingestor, tmp_path: Path) -> None:
    f = write(
        tmp_path / "i.csv",
        "interaction_id,person_id,occured_at,touch_point,channel\n"
        "i1,p1,2025-03-01T10:00:00Z,checkout,web\n",
    )
    e = _refused(ingestor, f, "interactions")
    msg = str(e)
    assert isinstance(e, ContractError)
    assert "missing required columns" in msg
    assert "'occurred_at' - did you mean 'occured_at'?" in msg
    assert "'touchpoint' - did you mean 'touch_point'?" in msg
    assert "'interaction_id', 'person_id', 'occured_at', 'touch_point', 'channel'" in msg


def test_person_or_identity_required(ingestor: Ingestor, tmp_path: Path) -> None:
    f = write(
        tmp_path / "i.csv",
        "interaction_id,occurred_at,touchpoint,channel\ni1,2025-03-01T10:00:00Z,checkout,web\n",
    )
    msg = str(_refused(ingestor, f, "interactions"))
    assert "person_id" in msg and "email, phone, device_id, crm_id" in msg


def test_semicolon_header_hint(ingestor: Ingestor, tmp_path: Path) -> None:
    f = write(tmp_path / "i.csv", "interaction_id;person_id;occurred_at\n1;2;3\n")
    assert "';'-separated" in str(_refused(ingestor, f, "interactions"))


def test_invalid_utf8_says_where(ingestor: Ingestor, tmp_path: Path) -> None:
    f = tmp_path / "i.csv"
    f.write_bytes(
        (HEADER + "\ni1,p1,2025-03-01T10:00:00Z,checkout,web,1,1,ok\n").encode()
        + b"i2,p1,2025-03-01T10:00:00Z,checkout,web,1,1,caf\xe9\n"
    )
    e = _refused(ingestor, f, "interactions")
    assert isinstance(e, PayloadError)
    assert "not valid UTF-8" in str(e) and "line 3" in str(e) and "column 48" in str(e)


def test_json_array_is_not_ndjson(ingestor: Ingestor, tmp_path: Path) -> None:
    f = write(tmp_path / "i.json", '[\n  {"interaction_id": "i1"}\n]\n')
    e = _refused(ingestor, f, "interactions")
    assert "JSON array" in str(e) and "one JSON object per line" in str(e)


def test_ndjson_byte_order_mark(ingestor: Ingestor, tmp_path: Path) -> None:
    line = (
        '{"interaction_id":"i1","person_id":"p1","occurred_at":"2025-03-01T10:00:00Z",'
        '"touchpoint":"checkout","channel":"web"}'
    )
    f = write(tmp_path / "i.ndjson", "\ufeff" + line + "\n")
    s = import_file(ingestor, f, "interactions")
    assert (s.inserted, s.rejected) == (1, 0)


def test_unreadable_parquet(ingestor: Ingestor, tmp_path: Path) -> None:
    e = _refused(ingestor, write(tmp_path / "i.parquet", "this is not parquet"), "interactions")
    assert isinstance(e, PayloadError) and "Parquet" in str(e)


def test_ndjson_missing_required_column(ingestor: Ingestor, tmp_path: Path) -> None:
    f = write(tmp_path / "i.ndjson", '{"interaction_id": "i1", "person_id": "p1"}\n')
    msg = str(_refused(ingestor, f, "interactions"))
    assert "occurred_at" in msg and "touchpoint" in msg


# -- a dataset folder ------------------------------------------------------------------------------
def test_import_dataset(store: object, tmp_path: Path) -> None:
    ing = Ingestor(store)  # type: ignore[arg-type]
    try:
        (tmp_path / "corridor.yaml").write_text(yaml.safe_dump(SMALL_MAP))
        write(
            tmp_path / "people.csv",
            "person_id,kind,email,segment\np1,customer,a@example.com,gold\np2,prospect,,\n",
        )
        write(
            tmp_path / "interactions.ndjson",
            '{"interaction_id":"i1","person_id":"p1","occurred_at":"2025-03-01T10:00:00Z",'
            '"touchpoint":"checkout","channel":"web"}\n'
            '{"interaction_id":"i2","email":"a@example.com","occurred_at":"2025-03-02T10:00:00Z",'
            '"touchpoint":"support_call","channel":"voice"}\n',
        )
        pq.write_table(
            pa.table(
                {
                    "feedback_id": ["f1"],
                    "person_id": ["p1"],
                    "occurred_at": ["2025-03-02T11:00:00Z"],
                    "source": ["survey"],
                    "nps": [3],
                }
            ),
            tmp_path / "feedback.parquet",
        )
        write(tmp_path / "truth.json", "{}")
        seen: list[float] = []
        out = import_dataset(ing, tmp_path, progress=lambda _label, x: seen.append(x))
        assert list(out) == ["people", "interactions", "feedback"]
        assert [s.inserted for s in out.values()] == [2, 2, 1]
        assert ing.corridor_map is not None and "checkout" in ing.corridor_map.touchpoint_keys
        # the e-mail-only interaction resolved to p1 through the people file's identity
        assert stored_ids(ing, "interactions", "person_id") == ["p1", "p1"]
        assert seen and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
        # again: nothing new (profiles are upserted), the unchanged map is not a new version
        again = import_dataset(ing, tmp_path)
        assert [again[k].duplicates for k in ("interactions", "feedback")] == [2, 1]
        for table, n in (("people", 2), ("interactions", 2), ("feedback", 1)):
            assert store.count(table) == n  # type: ignore[attr-defined]
        assert store.query("SELECT count(*) FROM corridor_maps") == [(1,)]  # type: ignore[attr-defined]
    finally:
        ing.close()


def test_import_dataset_refuses_ambiguous_or_empty(ingestor: Ingestor, tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="no corridor map"):
        import_dataset(ingestor, tmp_path)
    write(tmp_path / "people.csv", "person_id,kind\n")
    write(tmp_path / "people.ndjson", "")
    with pytest.raises(ContractError, match="keep one"):
        import_dataset(ingestor, tmp_path)
    with pytest.raises(PayloadError, match="not a folder"):
        import_dataset(ingestor, tmp_path / "missing")
